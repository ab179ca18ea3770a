"""notify's webhook deliveries: one notify process (as deploy/Procfile starts it) delivering ticket events to a
local HTTP receiver.

    .venv/bin/python -m bench notify   (or bench/bench_notify.py [--rate 500] [--seconds 20] [--burst 20000] ...)

Issue #14's bar: at 500 events/s, p99 from event to delivered <= 1 s. Measured on a local broker, after --warm-up
seconds at the same rate to another webhook (the broker's JVM and notify just started):
  (a) paced: events written at --rate for --seconds (each ticket.created with occurred_at = the moment it is
      written); the receiver notes when each arrives: latency percentiles, and notify's CPU per 1,000 deliveries;
  (b) burst: --burst events written at once; deliveries per second from the first to the last arrival.
The receiver is a plain threaded HTTP/1.1 server in this process (keep-alive), answering 200 at once. Baseline,
same run: bare aiohttp POSTs of the same bodies to the same receiver from another process, 8 at a time (notify's
lanes per endpoint): what the receiver and the machine allow without notify's work.
Prints a table and writes bench/results/notify.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ is not an installed package

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from bench.percentiles import percentile  # noqa: E402
from bench.procfs import cpu_seconds, rss_bytes  # noqa: E402
from deploy.kafka.launcher import LocalKafka, free_ports  # noqa: E402
from deploy.processes import procfile_processes  # noqa: E402
from notify.sealing import write_key  # noqa: E402
from ticketstream_shared.contract import TicketCreated, encode  # noqa: E402
from ticketstream_shared.contract.topics import TICKETS_EVENTS  # noqa: E402
from ticketstream_shared.runtime.auth import write_dev_keys  # noqa: E402
from ticketstream_shared.runtime.kafka import make_producer  # noqa: E402
from ticketstream_shared.runtime.kafka_admin import ensure_topics  # noqa: E402
from ticketstream_shared.runtime.settings import KafkaSettings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "notify.json"
TICKETS = 200


class Arrivals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency_s: dict[str, float] = {}
        #: (when it occurred, latency) per event, for the latency over the run
        self.timeline: list[tuple[float, float]] = []
        self.at: list[float] = []


def serve_receiver(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            now = time.time()
            event = json.loads(body)
            occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
            with arrivals.lock:
                if event["event_id"] not in arrivals.latency_s:
                    arrivals.latency_s[event["event_id"]] = now - occurred
                    arrivals.timeline.append((occurred, now - occurred))
                arrivals.at.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # http.server's 5 would refuse a burst of new connections
        daemon_threads = True

    (port,) = free_ports(1)
    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}"


def an_event(number: int, client_id: str) -> TicketCreated:
    return TicketCreated(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        ticket_id=f"bench-{client_id}-{number % TICKETS}",
        client_id=client_id,
        aggregate_version=1,
        producer="bench",
        correlation_id="bench",
        data={"requester_id": "someone", "title": "Bench", "category": "bench", "priority": "P3"},
    )


async def write_paced(bootstrap: str, client_id: str, rate: float, seconds: float) -> int:
    producer = make_producer(KafkaSettings(kafka_bootstrap_servers=bootstrap), "bench-notify", linger_ms=2)
    await producer.start()
    try:
        began, sent = time.monotonic(), 0
        while (elapsed := time.monotonic() - began) < seconds:
            due = int(elapsed * rate) + 1
            while sent < due:
                event = an_event(sent, client_id)
                await producer.send(TICKETS_EVENTS, encode(event), key=event.ticket_id.encode())
                sent += 1
            await asyncio.sleep(0.005)
        await producer.flush()
        return sent
    finally:
        await producer.stop()


async def write_burst(bootstrap: str, client_id: str, count: int) -> None:
    producer = make_producer(KafkaSettings(kafka_bootstrap_servers=bootstrap), "bench-notify", linger_ms=5)
    await producer.start()
    try:
        for number in range(count):
            event = an_event(number, client_id)
            await producer.send(TICKETS_EVENTS, encode(event), key=event.ticket_id.encode())
        await producer.flush()
    finally:
        await producer.stop()


def wait_for(arrivals: Arrivals, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with arrivals.lock:
            if len(arrivals.latency_s) >= count:
                return
        time.sleep(0.05)
    raise SystemExit(f"only {len(arrivals.latency_s)} of {count} deliveries within {timeout_s}s")


async def bare_posts(url: str, count: int) -> float:
    """The baseline client: POSTs per second over 8 kept-alive connections (run in a process of its own)."""
    import aiohttp

    body = encode(an_event(0, "baseline")).decode()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def lane(posts: int) -> None:
            for _ in range(posts):
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
                    await answer.read()

        began = time.perf_counter()
        await asyncio.gather(*(lane(count // 8) for _ in range(8)))
        return (count // 8 * 8) / (time.perf_counter() - began)


def baseline(url: str, count: int) -> float:
    import subprocess

    done = subprocess.run(
        [sys.executable, __file__, "--baseline-client", url, "--burst", str(count)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def register(url: str, admin: str, receiver: str, client_id: str) -> None:
    body = {"url": f"{receiver}/{client_id}", "event_types": ["ticket.*"], "client_id": client_id,
            "secret": "bench-secret-of-16"}  # fmt: skip
    answer = httpx.put(f"{url}/v1/notify/webhooks/{client_id}", json=body, headers={"Authorization": f"Bearer {admin}"})
    answer.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--warm-up", type=float, default=5, help="seconds at --rate before measuring")
    parser.add_argument("--baseline-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_client:
        print(asyncio.run(bare_posts(args.baseline_client, args.burst)))
        return

    with tempfile.TemporaryDirectory(prefix="bench-notify-") as scratch, LocalKafka(Path(scratch, "kafka")) as kafka:
        bootstrap = kafka.bootstrap_servers
        asyncio.run(ensure_topics(bootstrap))
        dev_keys, api_keys = write_dev_keys(Path(scratch))
        admin = json.loads(dev_keys.read_text())["admin"]
        arrivals = Arrivals()
        server, receiver = serve_receiver(arrivals)
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "API_KEYS_FILE": str(api_keys),
            "NOTIFY_SECRETS_KEY_FILE": str(write_key(Path(scratch, "notify.key"))),
            "NOTIFY_ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
        (port,) = free_ports(1)
        notify = procfile_processes({"notify": 1}, environment, {"notify.1": port}, Path(scratch))["notify.1"]
        notify.start()
        try:
            deadline = time.monotonic() + 90
            while not notify.ready():
                if time.monotonic() > deadline:
                    raise SystemExit("notify did not become ready")
                time.sleep(0.2)
            register(notify.url, admin, receiver, "warm-up")
            register(notify.url, admin, receiver, "paced")
            register(notify.url, admin, receiver, "burst")
            # The broker and notify just started (the JVM's JIT, first connections): the first seconds under load
            # are slower than any later ones, and not what a running system sees.
            warm_up = asyncio.run(write_paced(bootstrap, "warm-up", args.rate, args.warm_up))
            wait_for(arrivals, warm_up, 120)
            arrivals.latency_s, arrivals.timeline, arrivals.at = {}, [], []

            cpu_before = cpu_seconds(notify.pid)
            sent = asyncio.run(write_paced(bootstrap, "paced", args.rate, args.seconds))
            wait_for(arrivals, sent, 120)
            paced_cpu = cpu_seconds(notify.pid) - cpu_before
            latencies = list(arrivals.latency_s.values())
            began = min(occurred for occurred, _ in arrivals.timeline)
            by_second: dict[int, list[float]] = {}
            for occurred, latency in arrivals.timeline:
                by_second.setdefault(int(occurred - began), []).append(latency)
            p99_by_second = [round(percentile(values, 0.99) * 1000) for _, values in sorted(by_second.items())]

            burst = Arrivals()
            arrivals.latency_s, arrivals.at = burst.latency_s, burst.at
            cpu_before = cpu_seconds(notify.pid)
            asyncio.run(write_burst(bootstrap, "burst", args.burst))
            wait_for(arrivals, args.burst, 300)
            burst_cpu = cpu_seconds(notify.pid) - cpu_before
            burst_rate = args.burst / (max(arrivals.at) - min(arrivals.at))
            rss_mb = rss_bytes(notify.pid) / 2**20
            bare_rate = baseline(f"{receiver}/baseline", args.burst)
        finally:
            notify.stop()
            server.shutdown()

    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "paced": {
            "rate_per_s": args.rate,
            "events": sent,
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "max_ms": round(max(latencies) * 1000, 1),
            "cpu_ms_per_1000": round(paced_cpu / sent * 1e6, 1),
            "p99_ms_by_second": p99_by_second,
        },
        "burst": {
            "events": args.burst,
            "deliveries_per_s": round(burst_rate),
            "cpu_ms_per_1000": round(burst_cpu / args.burst * 1e6, 1),
        },
        "rss_mb": round(rss_mb),
        "baseline_bare_posts_per_s": round(bare_rate),
    }
    print(f"paced {args.rate:.0f}/s x {args.seconds:.0f}s: {sent} events, event->delivered p50 "
          f"{result['paced']['p50_ms']} ms, p99 {result['paced']['p99_ms']} ms (bar 1000), max "
          f"{result['paced']['max_ms']} ms; notify CPU {result['paced']['cpu_ms_per_1000']} ms per 1,000")  # fmt: skip
    print(f"  p99 (ms) of the events of each second: {p99_by_second}")
    print(f"burst of {args.burst}: {result['burst']['deliveries_per_s']} deliveries/s, notify CPU "
          f"{result['burst']['cpu_ms_per_1000']} ms per 1,000; RSS {result['rss_mb']} MB")  # fmt: skip
    print(f"baseline, same receiver: bare aiohttp POSTs, 8 at a time, from another process: {round(bare_rate)}/s")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
