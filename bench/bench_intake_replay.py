"""Intake's log replay: how fast a starting intake process reads tickets.events back into its ledger.

    .venv/bin/python -m bench intake_replay      (or bench/bench_intake_replay.py [--tickets 20000])

A new intake process with an empty store and no changelog (an upgrade) reads the whole ticket log into its local
store before it answers; otherwise it reads only past its store's checkpoint (bench_history.py measures those
starts). Issue #12's bar for the replay itself is 50k events/s. TICKETS tickets of ten
events each (created, in progress, six worklogs, a comment, resolved: the reporting benchmark's mix) are written to
a local broker, then measured:
  (a) through Kafka: `intake.log.follow` with a fresh consumer, from the first message until the ledger is caught
      up, with the process's RSS before and after;
  (b) without Kafka: the codec's decoding and the ledger's write into its store, as `intake.log.follow` does them.
Prints a table and writes bench/results/intake_replay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ is not an installed package

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from bench.bench_reporting import a_ticket_day, produce  # noqa: E402
from deploy.kafka.launcher import LocalKafka  # noqa: E402
from intake.idempotency import RequestKeys  # noqa: E402
from intake.ledger import TicketLedger  # noqa: E402
from intake.log import follow  # noqa: E402
from intake.ticket_store import TicketStore  # noqa: E402
from ticketstream_shared.contract import encode, read_logged  # noqa: E402
from ticketstream_shared.contract.topics import TICKETS_EVENTS  # noqa: E402
from ticketstream_shared.runtime.kafka import make_consumer  # noqa: E402
from ticketstream_shared.runtime.kafka_admin import ensure_topics  # noqa: E402
from ticketstream_shared.runtime.memory import tune_garbage_collection  # noqa: E402
from ticketstream_shared.runtime.settings import ServiceSettings  # noqa: E402
from ticketstream_shared.runtime.store import Changes, LocalStore  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "intake_replay.json"


def a_ledger() -> TicketLedger:
    """An intake ledger as the service builds one, over a temporary local store; replay appends nothing, so it has
    no log to write to."""
    store = LocalStore(None)
    return TicketLedger(None, RequestKeys(timedelta(hours=168), lambda: datetime.now(UTC), store), TicketStore(store))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_memory(messages: list[bytes]) -> float:
    """(b): events per second of decoding and folding alone."""
    ledger = a_ledger()
    started = time.perf_counter()
    for first in range(0, len(messages), 5_000):
        changes = Changes()
        for message in messages[first : first + 5_000]:
            ledger.apply(changes, read_logged(TICKETS_EVENTS, message), message)
        ledger.tickets.store.write(changes)
    seconds = time.perf_counter() - started
    ledger.tickets.store.close()
    return len(messages) / seconds


async def through_kafka(settings: ServiceSettings) -> dict[str, float]:
    """(a): `follow` from the first message until caught up, as a starting intake process does."""
    ledger = a_ledger()
    consumer = make_consumer(settings, group_id=None, client_id="bench-intake-replay")
    await consumer.start()
    before = rss_mb()
    started = time.perf_counter()
    store = ledger.tickets.store
    following = asyncio.create_task(follow(consumer, TICKETS_EVENTS, store, ledger.apply, ledger.caught_up))
    try:
        await ledger.caught_up.wait()
        seconds = time.perf_counter() - started
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await consumer.stop()
    held = sum(1 for _ in ledger.tickets.ticket_ids())
    figures = {"seconds": seconds, "tickets": held, "rss_mb_before": before, "rss_mb_after": rss_mb()}
    store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    args = parser.parse_args()
    events = [event for number in range(args.tickets) for event in a_ticket_day(number)]
    keyed = [(event.ticket_id.encode(), encode(event)) for event in events]
    del events
    # The messages to produce are the benchmark's, not the service's: out of the collector's walks, or the one
    # intake makes once caught up would walk them (a second of the replay's time at 40k tickets).
    tune_garbage_collection()
    with tempfile.TemporaryDirectory(prefix="bench-intake-replay-") as scratch, LocalKafka(Path(scratch)) as kafka:
        settings = ServiceSettings(
            kafka_bootstrap_servers=kafka.bootstrap_servers, api_keys_file=Path(scratch, "unused.json")
        )
        asyncio.run(ensure_topics(kafka.bootstrap_servers))
        asyncio.run(produce(settings, keyed))
        replayed = asyncio.run(through_kafka(settings))  # first: its memory figure is the ledger's alone
    memory_per_s = in_memory([value for _, value in keyed])
    if replayed["tickets"] != args.tickets:
        raise AssertionError(f"the ledger holds {replayed['tickets']} tickets, {args.tickets} were written")
    result = {
        "events": len(keyed),
        "tickets": args.tickets,
        "in_memory_events_per_s": round(memory_per_s),
        "through_kafka_events_per_s": round(len(keyed) / replayed["seconds"]),
        "through_kafka_seconds": round(replayed["seconds"], 2),
        "rss_mb_growth": round(replayed["rss_mb_after"] - replayed["rss_mb_before"]),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nintake log replay ({result['tickets']:,} tickets, {result['events']:,} events)")
    print(f"  follow() through Kafka (a)         {result['through_kafka_events_per_s']:,} events/s "
          f"({result['through_kafka_seconds']} s; bar: 50,000)")  # fmt: skip
    print(f"  decode + store, no Kafka (b)       {result['in_memory_events_per_s']:,} events/s")
    print(f"  memory growth of the process       {result['rss_mb_growth']:,} MB")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
