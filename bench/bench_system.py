"""System benchmark: sustained end-to-end throughput with SCALE=1 and SCALE=2, and recovery after a kill -9.

    .venv/bin/python -m bench system            # or: .venv/bin/python bench/bench_system.py [--duration 60]

For each scale, a fresh LocalKafka (temp dir) and the services of deploy/Procfile, expanded as `make run SCALE=N`
does (intake, sla and assignment N times, reporting once). Closed-loop HTTP clients (--clients, spread over the
intake replicas) create tickets for --duration seconds in a category routed to an on-shift technician, so each
ticket is also timed by sla, assigned by assignment and projected by reporting. Reported: tickets/s acknowledged
(201), the consumer lag on tickets.events of the sla, assignment and reporting groups (committed offsets; maximum
over the run, sampled every second, and at its end) and how long they took to drain once the load stopped.
Then, under a light load (one client), one replica of each service is killed with SIGKILL and started again:
recovery is the time from the kill until the restarted replica answers /readyz 200 and its group's lag is back to
its level before the kill (the most of five samples: under load a batching consumer's lag is rarely exactly 0).
Writes bench/results/system.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ is not an installed package

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from deploy.kafka.launcher import LocalKafka, free_ports  # noqa: E402
from deploy.processes import ServiceProcess, procfile_processes, replica_names  # noqa: E402
from ticketstream_shared.contract.topics import TICKET_PARTITIONS, TICKETS_EVENTS  # noqa: E402
from ticketstream_shared.runtime.auth import write_dev_keys  # noqa: E402
from ticketstream_shared.runtime.kafka_admin import ensure_topics  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "system.json"
#: The consumer groups that follow tickets.events: the system keeps up when their lag stays bounded.
GROUPS = {"sla": "sla", "assignment": "assignment", "reporting": "reporting"}
SERVICES = ("intake", "sla", "assignment", "reporting")


def wait_for(probe, timeout_s: float, what: str) -> float:
    """Seconds until `probe()` is true (polled every 0.1 s); SystemExit after `timeout_s`."""
    began = time.monotonic()
    while not probe():
        if time.monotonic() - began > timeout_s:
            raise SystemExit(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - began


def start_system(scale: int, bootstrap: str, work: Path) -> tuple[dict[str, ServiceProcess], dict[str, str]]:
    dev_keys, api_keys = write_dev_keys(work)
    counts = {"intake": scale, "sla": scale, "assignment": scale, "reporting": 1}
    names = replica_names(counts)
    environment = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "API_KEYS_FILE": str(api_keys),
        "CHDB_PATH": str(work / "clickhouse"),
        "STATE_ROOT": str(work / "state"),
    }
    processes = procfile_processes(counts, environment, dict(zip(names, free_ports(len(names)), strict=True)), work)
    for process in processes.values():
        process.start()
    for process in processes.values():
        wait_for(process.ready, 120, f"{process.name} ready")
    return processes, json.loads(dev_keys.read_text())


def lags(bootstrap: str) -> dict[str, int]:
    """Messages of tickets.events each group has not committed yet."""

    async def ask() -> dict[str, int]:
        partitions = [TopicPartition(TICKETS_EVENTS, p) for p in range(TICKET_PARTITIONS)]
        admin, reader = AIOKafkaAdminClient(bootstrap_servers=bootstrap), AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await admin.start()
        await reader.start()
        try:
            ends = await reader.end_offsets(partitions)
            found = {}
            for service, group in GROUPS.items():
                committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
                found[service] = sum(
                    ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0)
                    for tp in partitions
                )
            return found
        finally:
            await reader.stop()
            await admin.close()

    return asyncio.run(ask())


class Load:
    """Closed-loop clients creating tickets through the intake replicas until stopped."""

    def __init__(self, urls: list[str], token: str, category: str, clients: int) -> None:
        self.created = 0
        self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(urls[n % len(urls)], token, category), daemon=True)
            for n in range(clients)
        ]

    def _run(self, url: str, token: str, category: str) -> None:
        body = {"client_id": "bench", "requester_id": "carol", "title": "Printer", "category": category,
                "priority": "P3"}  # fmt: skip
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=15) as client:
            while not self._stop.is_set():
                try:
                    ok = client.post(f"{url}/v1/tickets", json=body).status_code == 201
                except httpx.TransportError:
                    ok = False
                with self._lock:
                    self.created += ok
                    self.failed += not ok

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


#: Technicians on the benchmark's team, each holding at most 1,000 open tickets: room for every ticket of a run.
TECHNICIANS = 30


def set_up_routing(processes: dict[str, ServiceProcess], keys: dict[str, str]) -> str:
    category = f"bench-{uuid.uuid4().hex[:6]}"
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    url = processes["assignment.1"].url
    calls = [("PUT", f"/v1/routing/categories/{category}", {"team": category})]
    for n in range(TECHNICIANS):
        profile = {"name": f"Bench {n}", "team": category, "tier": 1, "skills": [category], "capacity": 1000}
        calls += [
            ("PUT", f"/v1/technicians/{category}-{n}", profile),
            ("POST", f"/v1/technicians/{category}-{n}/shift", {"on_shift": True}),
        ]
    for method, path, body in calls:
        httpx.request(method, f"{url}{path}", json=body, headers=admin, timeout=15).raise_for_status()
    return category


def throughput(processes, keys, bootstrap: str, category: str, clients: int, duration_s: float) -> dict[str, Any]:
    urls = [p.url for name, p in processes.items() if name.startswith("intake.")]
    peak = dict.fromkeys(GROUPS, 0)
    with Load(urls, keys["integration"], category, clients) as load:
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < duration_s:
            for service, lag in lags(bootstrap).items():
                peak[service] = max(peak[service], lag)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - began - elapsed)))
        created, failed, load_s = load.created, load.failed, time.monotonic() - began
    at_end = lags(bootstrap)
    drained_s = wait_for(lambda: not any(lags(bootstrap).values()), 600, "lag back to 0 after the load")
    return {"clients": clients, "seconds": round(load_s, 1), "tickets": created, "failed": failed,
            "tickets_per_s": round(created / load_s, 1), "max_lag": peak, "lag_at_end": at_end,
            "drain_s": round(drained_s, 1)}  # fmt: skip


def recovery(processes, keys, bootstrap: str, category: str) -> dict[str, float]:
    """Seconds from a kill -9 of one replica of each service until it serves again with its group's lag back to
    where it was before the kill."""
    urls = [p.url for name, p in processes.items() if name.startswith("intake.")]
    found = {}
    with Load(urls, keys["integration"], category, clients=1):
        for service in SERVICES:
            victim = processes[f"{service}.1"]
            steady = max(lags(bootstrap).get(service, 0) for _ in range(5))
            killed = time.monotonic()
            victim.kill9()
            victim.start()
            wait_for(victim.ready, 180, f"{victim.name} ready again")
            if service in GROUPS:
                wait_for(lambda s=service, at=steady: lags(bootstrap)[s] <= at, 180, f"{service} lag back to {steady}")
            found[service] = round(time.monotonic() - killed, 1)
            print(f"  kill -9 {victim.name}: serving, lag <= {steady} after {found[service]} s", flush=True)
    return found


def run_scale(scale: int, clients: int, duration_s: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix=f"bench-system-{scale}-") as temp,
        LocalKafka(Path(temp) / "kafka") as kafka,
    ):
        asyncio.run(ensure_topics(kafka.bootstrap_servers))
        processes, keys = start_system(scale, kafka.bootstrap_servers, Path(temp))
        try:
            category = set_up_routing(processes, keys)
            measured = throughput(processes, keys, kafka.bootstrap_servers, category, clients, duration_s)
            print(f"SCALE={scale}: {json.dumps(measured)}", flush=True)
            measured["recovery_s"] = recovery(processes, keys, kafka.bootstrap_servers, category)
            return measured
        finally:
            for process in processes.values():
                process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,2")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop HTTP clients")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per scale")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the services on the way out
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "scales": {scale: run_scale(int(scale), args.clients, args.duration) for scale in args.scales.split(",")},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'scale':>5} {'tickets/s':>9} {'max lag sla/asg/rep':>22} {'drain s':>7}  recovery s (intake/sla/asg/rep)")
    for scale, r in results["scales"].items():
        peak = "/".join(str(r["max_lag"][s]) for s in GROUPS)
        recovered = "/".join(str(r["recovery_s"][s]) for s in SERVICES)
        print(f"{scale:>5} {r['tickets_per_s']:>9} {peak:>22} {r['drain_s']:>7}  {recovered}")


if __name__ == "__main__":
    main()
