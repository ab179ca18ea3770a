"""Intake benchmark: tickets created per second over HTTP, and commands per second on one hot ticket.

    .venv/bin/python bench/bench_intake.py [--rates 250,500,...] [--hot-rates 50,100,...] [--duration 10]
                                           [--profile-rate R] [--profile-hot-rate R] [--no-profile | --profile-only]
    .venv/bin/python bench/bench_intake.py --report      # print the tables of bench/results/intake.json again
    .venv/bin/python bench/bench_intake.py --gc-threshold 100000,50,1000 --output bench/results/intake-gc-whatif.json
                                                         # what-if: intake with CPython's collector thresholds raised

Starts a local Kafka broker (LocalKafka, in a temp dir; or uses KAFKA_BOOTSTRAP_SERVERS when set), creates the
topics, starts ONE intake process as production does (`.venv/bin/python -m intake`, configured by environment
variables) and waits for /readyz. Then vegeta (an open-loop, constant-rate load generator, installed on demand
into .local/bin) offers each rate for --duration seconds after a warm-up:
  (a) POST /v1/tickets: every request opens a new ticket (no Idempotency-Key), answered 201 only once Kafka has
      acknowledged the event (acks=all, idempotent producer);
  (b) POST /v1/tickets/{id}/worklogs on a single ticket: intake decides each command against the ticket's
      current version and appends it before deciding the next one, so this measures the serialised path. A fresh
      ticket per rate keeps the steps comparable; afterwards the ticket's version must equal 1 + its worklogs (no
      gap, no repeat), and every acknowledged worklog must be among them.
  (c) two callers at once, each with its own key: one flooding (--flood-rate, past what one process serves), the
      other at a steady pace (--other-rate); whether one caller's flood shuts the other out.
For each rate: requests sent per second, successful responses per second, success ratio, p50/p99/max latency (of
every response, and the p99 of the successful ones alone: a request refused at once for load is fast), and
the CPU (in cores) of intake, the broker and vegeta, which share the machine. A rate passes when every request
succeeded, p99 <= 25 ms and vegeta really sent at the offered rate (>= 97 %); the bar is 2,000 tickets/s (issue #12).
If (a) misses the bar and py-spy is installed, intake is profiled for 30 s at the first failing rate of (a) and of
(b) (py-spy at 20 Hz: it pauses intake for each sample). Other work on the machine is watched: each step waits for
the rest of the machine to be quiet, and is run again (--retries) when other processes took > 0.25 cores meanwhile.
Prints a table and writes bench/results/intake.json (and py-spy's raw stacks next to it, intake-profile-*.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # deploy/ and bench/ are not installed packages

import bench  # noqa: E402,F401  (this tree's code first: see bench/__init__.py)
from bench.metrics import scraped  # noqa: E402
from bench.vegeta import Attack, AttackResult, Target, ensure_vegeta, json_target  # noqa: E402
from deploy.kafka.launcher import LocalKafka, free_ports  # noqa: E402
from ticketstream_shared.runtime.auth import write_dev_keys  # noqa: E402
from ticketstream_shared.runtime.kafka_admin import ensure_topics  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "intake.json"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

BAR_RATE = 2_000
P99_LIMIT_MS = 25.0
MIN_SENT_SHARE = 0.97
CREATE_RATES = (250, 500, 750, 1000, 1500, 2000, 2500, 3000, 4000)
HOT_RATES = (50, 100, 150, 200, 300, 500)
#: A step during which other processes used more CPU than this is run again (see Session.measured).
MAX_OTHER_CORES_DURING = 0.25
TICKET = {"client_id": "acme", "requester_id": "alice", "title": "VPN drops every hour", "category": "network",
          "priority": "P2"}  # fmt: skip
WORKLOG = {"technician_id": "tech-1", "minutes": 5, "billable": True}
CLK_TCK = os.sysconf("SC_CLK_TCK")

#: Process ids to account CPU for, by name (None: not on this machine).
Pids = dict[str, int | None]
#: Called with (kind, step) after each step, to show progress.
Reporter = Callable[[str, dict[str, Any]], None]


# --- processes ---------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec_fn: Linux SIGTERMs the child when this process dies, even by SIGKILL, so nothing is left over."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Intake:
    """One `python -m intake` process on a free port, stopped with SIGTERM (then SIGKILL) like production."""

    def __init__(
        self, bootstrap: str, api_keys_file: Path, log_path: Path, gc_threshold: tuple[int, ...] | None = None
    ) -> None:
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        python = VENV_PYTHON if VENV_PYTHON.is_file() else Path(sys.executable)
        environment = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "API_KEYS_FILE": str(api_keys_file),
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
        }
        command = [str(python), "-m", "intake"]
        if gc_threshold:  # a what-if experiment: the same service with CPython's collector thresholds raised
            command[1:] = ["-c", f"import gc, runpy; gc.set_threshold{tuple(gc_threshold)}; "
                           "runpy.run_module('intake', run_name='__main__', alter_sys=True)"]  # fmt: skip
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"intake exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if http("GET", f"{self.url}/readyz", timeout_s=2)[0] == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"intake not ready within {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def http(method: str, url: str, body: Any = None, key: str | None = None, timeout_s: float = 10) -> tuple[int, Any]:
    """A small JSON HTTP call for setup and checks (the load itself comes from vegeta)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def answered_within(url: str, key: str, method: str = "POST") -> dict[float, float]:
    """Intake's own count of the `method` requests it answered within each bucket's bound (seconds, cumulative;
    `ticketstream_http_request_seconds` over every route): the time inside the app, without what a request waits
    before the app sees it (the socket, the event loop's turn)."""
    counts: dict[float, float] = {}
    for sample in scraped(url, key):
        if sample.name == "ticketstream_http_request_seconds_bucket" and sample.labels["method"] == method:
            edge = float(sample.labels["le"])
            counts[edge] = counts.get(edge, 0.0) + sample.value
    return counts


def app_p99_bound_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The smallest bucket bound (ms) within which intake answered 99 % of a step's requests, by its histogram."""
    delta = {edge: after.get(edge, 0.0) - before.get(edge, 0.0) for edge in after}
    total = delta.get(math.inf, 0.0)
    if not total:
        return None
    return next(1000 * edge for edge in sorted(delta) if delta[edge] >= 0.99 * total)


def broker_pid() -> int | None:
    """The JVM that LocalKafka started: a child of this process running kafka.Kafka."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if (
                entry.name.isdigit()
                and _ppid_of(entry) == os.getpid()
                and b"kafka.Kafka" in (entry / "cmdline").read_bytes()
            ):
                return int(entry.name)
    return None


def _ppid_of(entry: Path) -> int:
    return int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1])


# --- CPU accounting ----------------------------------------------------------------------------------------------


def process_cpu_s(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK, sum(values[:8]) / CLK_TCK


class CpuMeter:
    """CPU cores used by intake, the broker and the machine as a whole between start() and stop()."""

    def __init__(self, pids: Pids) -> None:
        self.pids = pids

    def __enter__(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._before = {name: process_cpu_s(pid) for name, pid in self.pids.items()}
        self._machine = machine_cpu()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        after = {name: process_cpu_s(pid) for name, pid in self.pids.items()}
        busy, total = machine_cpu()
        self.cores = {
            name: None if before is None or after[name] is None else (after[name] - before) / self.wall_s
            for name, before in self._before.items()
        }
        self.cores["machine"] = (busy - self._machine[0]) / self.wall_s
        self.machine_busy_share = (busy - self._machine[0]) / max(total - self._machine[1], 1e-9)


# --- the measurements --------------------------------------------------------------------------------------------


def other_cores(pids: Pids, window_s: float = 1.0) -> float:
    """Cores busy on the machine over `window_s` outside the processes in `pids` (and this one)."""
    with CpuMeter({**pids, "bench": os.getpid()}) as cpu:
        time.sleep(window_s)
    return cpu.cores["machine"] - sum(v for name, v in cpu.cores.items() if name != "machine" and v is not None)


def wait_for_quiet_machine(pids: Pids, max_other_cores: float, timeout_s: float) -> float:
    """Wait (up to `timeout_s`) until nothing else on the machine uses more than `max_other_cores`: other work on
    2 cores (tests, another benchmark) would be measured as intake's latency. Returns the last reading."""
    deadline, told = time.monotonic() + timeout_s, False
    while (other := other_cores(pids)) > max_other_cores and time.monotonic() < deadline:
        if not told:
            print(f"  waiting for a quiet machine ({other:.2f} cores busy elsewhere) ...", flush=True)
            told = True
        time.sleep(2)
    return other


def _cores_with_other(cpu: CpuMeter, vegeta_cpu_s: float) -> dict[str, float | None]:
    cores: dict[str, float | None] = {**cpu.cores, "vegeta": vegeta_cpu_s / cpu.wall_s}
    ours = sum(v for name, v in cores.items() if name != "machine" and v)
    cores["other"] = max(0.0, (cores["machine"] or 0.0) - ours)
    return {name: None if v is None else round(v, 2) for name, v in cores.items()}


def passed(step: dict[str, Any]) -> bool:
    return (
        step["success"] == 1.0
        and step["latency_ms"]["p99"] <= P99_LIMIT_MS
        and step["rate"] >= MIN_SENT_SHARE * step["offered_rate"]
    )


def highest_passing(steps: list[dict[str, Any]]) -> float | None:
    """The highest offered rate that passed with every lower rate passing too (None if the first one failed)."""
    best = None
    for step in sorted(steps, key=lambda s: s["offered_rate"]):
        if not step["passed"]:
            break
        best = step["offered_rate"]
    return best


@dataclass
class Session:
    """A running intake under test, and how to load it."""

    intake: Intake
    vegeta: Path
    key: str
    pids: Pids
    duration_s: float
    quiet_timeout_s: float
    retries: int = 2
    max_other_cores: float = 0.15

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def settle(self, pause_s: float = 2.0, timeout_s: float = 300.0) -> float:
        """Let the previous step's backlog drain, then wait for a quiet machine; returns the cores busy outside this
        benchmark just before the step.

        Drained means intake idles (< 0.05 cores over 0.5 s): requests whose client gave up are still carried out
        (queued on a hot ticket's lock, thousands of them after an overloaded step), and /healthz answering fast
        does not show that, because the queue waits on Kafka acks between commands."""
        time.sleep(pause_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            before = process_cpu_s(self.intake.pid) or 0.0
            time.sleep(0.5)
            if (process_cpu_s(self.intake.pid) or 0.0) - before < 0.025:
                break
        else:
            print(f"  intake still busy after {timeout_s:.0f} s of waiting; going on", flush=True)
        return wait_for_quiet_machine(self.pids, self.max_other_cores, self.quiet_timeout_s)

    def attack(self, targets: Sequence[Target], rate: float, duration_s: float | None = None) -> dict[str, Any]:
        """One constant-rate step, with the CPU of each process over it."""
        inside_before = answered_within(self.intake.url, self.key)
        (step,), cpu = self._together([Attack(self.vegeta, targets, rate, duration_s or self.duration_s)])
        step["app_p99_bound_ms"] = app_p99_bound_ms(inside_before, answered_within(self.intake.url, self.key))
        step["machine_busy_share"] = round(cpu.machine_busy_share, 3)
        step["wall_s"] = round(cpu.wall_s, 2)
        created = sum(n for code, n in step["status_codes"].items() if code.startswith("2"))
        intake_cores = step["cpu_cores"]["intake"]
        step["intake_cpu_ms_per_ok"] = round(1000 * intake_cores * cpu.wall_s / created, 2) if created else None
        step["passed"] = passed(step)
        return step

    def create_target(self) -> Target:
        return json_target(f"{self.intake.url}/v1/tickets", TICKET, self.auth)

    def new_ticket(self) -> str:
        status, body = http("POST", f"{self.intake.url}/v1/tickets", TICKET, self.key)
        if status != 201:
            raise RuntimeError(f"could not open a ticket: {status} {body}")
        return body["id"]

    def measured(self, targets: Callable[[], Sequence[Target]], rate: int) -> dict[str, Any]:
        """One step at `rate`, run again (up to `retries` times, the cleanest kept) when other processes took more
        than MAX_OTHER_CORES_DURING of the machine during it: their CPU would show up as intake's latency."""
        attempts = []
        for _ in range(1 + self.retries):
            other_before = self.settle()
            chosen = targets()
            step = {**self.attack(chosen, rate), "other_cores_before": round(other_before, 2), "url": chosen[0].url}
            attempts.append(step)
            if (step["cpu_cores"]["other"] or 0) <= MAX_OTHER_CORES_DURING:
                break
            print(f"  (rerunning {rate}/s: other processes used {step['cpu_cores']['other']:.2f} cores)", flush=True)
        best = min(attempts, key=lambda s: s["cpu_cores"]["other"] or 0)
        best["attempts"] = len(attempts)
        return best

    def sweep_create(self, rates: Sequence[int], report: Reporter) -> list[dict[str, Any]]:
        steps = []
        for rate in rates:
            steps.append(self.measured(lambda: [self.create_target()], rate))
            report("create", steps[-1])
        return steps

    def flood(self, flood_rate: int, other_key: str, other_rate: int) -> dict[str, Any]:
        """Two callers at once, each with its own key: one offering `flood_rate` creations a second (past what one
        process serves), the other its steady `other_rate`. What each is served tells whether one caller's flood
        shuts the other out."""
        self.settle()
        other_target = json_target(f"{self.intake.url}/v1/tickets", TICKET, {"Authorization": f"Bearer {other_key}"})
        steps, _ = self._together(
            [
                Attack(self.vegeta, [self.create_target()], flood_rate, self.duration_s),
                Attack(self.vegeta, [other_target], other_rate, self.duration_s),
            ]
        )
        results = dict(zip(("flooding", "other"), steps, strict=True))
        print_flood(results)
        return results

    def _together(self, runs: Sequence[Attack]) -> tuple[list[dict[str, Any]], CpuMeter]:
        """`runs` at once; each one's report with the CPU of each process over them (`cpu_cores`)."""
        try:
            with CpuMeter({**self.pids, "bench": os.getpid()}) as cpu:
                for run in runs:
                    run.start()
                results: list[AttackResult] = [run.wait() for run in runs]
        finally:
            for run in runs:
                run.stop()
        steps = [result.as_dict() for result in results]
        for step, result in zip(steps, results, strict=True):
            step["cpu_cores"] = _cores_with_other(cpu, result.cpu_s)
        return steps, cpu

    def sweep_hot(self, rates: Sequence[int], report: Reporter) -> list[dict[str, Any]]:
        """Each attempt on a fresh ticket; afterwards its version must be 1 + its worklogs (no gap, no repeat), and
        at least 1 + the worklogs acknowledged (requests that timed out on the client may still have been done)."""
        steps = []

        def fresh_ticket() -> list[Target]:
            return [json_target(f"{self.intake.url}/v1/tickets/{self.new_ticket()}/worklogs", WORKLOG, self.auth)]

        for rate in rates:
            step = self.measured(fresh_ticket, rate)
            self.settle()
            step.update(self.check_versions(step))
            steps.append(step)
            report("hot ticket", step)
        return steps

    def check_versions(self, step: dict[str, Any]) -> dict[str, Any]:
        """The hot ticket after the step: version 1 + its worklogs, and every acknowledged worklog among them."""
        status, ticket = http("GET", step["url"].removesuffix("/worklogs"), key=self.key)
        if status != 200:
            return {"ticket_version": None, "worklogs_stored": None, "versions_consistent": False}
        worklogs = ticket["worklog_minutes"] // WORKLOG["minutes"]
        return {
            "ticket_version": ticket["version"],
            "worklogs_stored": worklogs,
            "versions_consistent": ticket["version"] == 1 + worklogs >= 1 + step["status_codes"].get("201", 0),
        }

    def profile(
        self, targets: Sequence[Target], rate: int, seconds: int, py_spy: Path, out: Path, hz: int, nonblocking: bool
    ) -> dict[str, Any]:
        """py-spy on intake for `seconds` while vegeta offers `rate` req/s of `targets`: where intake's time goes.

        py-spy stops intake's ~40 threads for each sample (unless `nonblocking`): at 100 Hz that cut intake's
        throughput by more than half, hence a low rate. --nonblocking costs intake nothing but reads stacks of a
        running thread: on intake it produced torn stacks (a third of the samples) and one stale stack repeated
        hundreds of times, so it is only an option."""
        self.settle()
        run = Attack(self.vegeta, targets, rate, seconds + 4)
        out.parent.mkdir(parents=True, exist_ok=True)
        spy: subprocess.Popen[bytes] | None = None
        try:
            run.start()
            time.sleep(2)  # past the ramp-up
            with CpuMeter({**self.pids, "bench": os.getpid()}) as cpu:
                spy = subprocess.Popen(
                    [str(py_spy), "record", "--pid", str(self.intake.pid), "--duration", str(seconds),
                     "--rate", str(hz), *(["--nonblocking"] if nonblocking else ["--native"]), "--threads", "--idle",
                     "--format", "raw", "--output", str(out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )  # fmt: skip
                _, spy_err = spy.communicate(timeout=seconds + 60)
            result = run.wait()
        finally:
            if spy is not None and spy.poll() is None:
                spy.kill()
                spy.wait()
            run.stop()
        if spy.returncode != 0 or not out.is_file():
            raise RuntimeError(f"py-spy failed ({spy.returncode}): {spy_err.decode(errors='replace')[-2000:]}")
        summary = summarise_stacks(out.read_text())
        summary.update(
            rate=rate,
            seconds=seconds,
            sampling={"hz": hz, "nonblocking": nonblocking, "native": not nonblocking},
            load=result.as_dict(),
            # vegeta's share is its average over the whole attack; "other" includes py-spy itself.
            cpu_cores_while_sampling=_cores_with_other(cpu, result.cpu_s * cpu.wall_s / (seconds + 4)),
            stacks_file=str(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out),
        )
        return summary


# --- profile -----------------------------------------------------------------------------------------------------

#: (category, substring of a frame's file) in priority order: a sample counts for the first category found walking
#: from the innermost frame outwards, so e.g. pydantic called by FastAPI counts as pydantic.
CATEGORIES = (
    ("JSON encoding/decoding (json, orjson)", ("json/", "orjson")),
    ("pydantic (validation, model_dump, serialisation)", ("pydantic/", "pydantic_core/")),
    ("event contract (ticketstream_shared.contract: encode)", ("ticketstream_shared/contract",)),
    ("aiokafka send path (producer, accumulator, sender)", ("aiokafka/",)),
    ("prometheus_client (metrics)", ("prometheus_client/",)),
    ("logging", ("logging/", "pythonjsonlogger/")),
    ("threadpool hop (anyio, for the sync auth dependency)", ("anyio/", "starlette/concurrency.py", "threading.py",
                                                               "concurrent/futures", "queue.py")),
    ("ticketstream_shared.runtime (auth, metrics middleware)", ("ticketstream_shared/runtime",)),
    ("intake code (api, ledger, domain, log)", ("(intake/",)),
    ("FastAPI (routing, dependency injection, encoders)", ("fastapi/",)),
    ("Starlette (request, response, routing, middleware)", ("starlette/",)),
    ("uvicorn (httptools protocol, ASGI glue)", ("uvicorn/", "httptools/")),
    ("asyncio / event loop machinery", ("asyncio/", "uvloop/")),
    ("stdlib other (uuid, datetime, contextlib, ...)", ("uuid.py", "datetime", "contextlib.py", "_collections_abc",
                                                         "typing.py", "inspect.py", "functools.py", "enum.py")),
)  # fmt: skip
#: Innermost frames of a thread with nothing to do: the main thread parked in the event loop (uvloop's
#: run_forever is C, so no Python callback shows), the threadpool's workers waiting for work.
IDLE_LEAVES = (
    "run (asyncio/runners.py",
    "run_until_complete (asyncio/base_events.py",
    "select (selectors.py",
    "Condition.wait (threading.py",
    "Event.wait (threading.py",
    "Queue.get (queue.py",
)
#: With --native the innermost frame of a waiting thread is the C call that blocks; any other native frame under
#: Runner.run is uvloop doing work (socket reads and writes, scheduling), which counts as busy.
NATIVE_WAITS = ("epoll_wait", "epoll_pwait", "pthread_cond_", "futex", "sem_wait", "sem_clockwait", "__select")
#: CPython's cyclic garbage collector, whatever allocation happened to trigger it.
GC_FRAMES = ("gc_collect", "collect_with_callback", "collect_generations")


GC_CATEGORY = "CPython garbage collector (full collections over the in-memory ledger)"


def _is_python(frame: str) -> bool:
    """Whether a (shortened) py-spy frame is Python code rather than a native function (with --native)."""
    where = frame.rpartition(" (")[2]
    return where.endswith(".py)") or where.startswith("<")


def find_py_spy() -> Path | None:
    for candidate in (Path(sys.executable).parent / "py-spy", VENV_PYTHON.parent / "py-spy"):
        if candidate.is_file():
            return candidate
    found = shutil.which("py-spy")
    return Path(found) if found else None


def _frames(stack: str) -> list[str]:
    return [frame for frame in stack.split(";") if frame]


def _short(frame: str) -> str:
    """`func (path/to/site-packages/pkg/mod.py:12)` -> `func (pkg/mod.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/services/", "/shared/", "lib/python3.11/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


def summarise_stacks(raw: str) -> dict[str, Any]:
    """Where intake's time goes, from py-spy's collapsed stacks with --threads --idle, one line per distinct stack:
    `thread (tid): name;frame;frame;... count`, innermost frame last.

    A sample is idle when its innermost frame is a wait (the main thread parked in the event loop, a worker thread
    waiting for work); with --native, when it is a blocking C call (epoll, futex). Busy samples of every thread are
    pooled: one busy sample is 1/rate s of a thread running (or waiting for the GIL or a core to run). Shares are of
    the busy samples; `busy_threads` is busy samples per main-thread sample, i.e. how many threads were busy on
    average. A sample with the garbage collector anywhere on its stack counts as garbage collection.
    """
    threads: collections.Counter[str] = collections.Counter()
    torn = 0
    busy_by_thread: collections.Counter[str] = collections.Counter()
    by_category: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        thread, _, rest = stack.partition(": ")
        name, _, stack = rest.partition(";")
        kind = "main" if name == "MainThread" else "worker threads"
        count, frames = int(count_text), [_short(f) for f in _frames(stack)]
        threads[kind] += count
        if kind == "main" and not any(frame.startswith("_run_module_as_main") for frame in frames[:4]):
            torn += count  # not rooted in `python -m intake`: read while it changed (nonblocking sampling)
        native_leaf = bool(frames) and not _is_python(frames[-1])
        if (
            not frames
            or (native_leaf and any(wait in frames[-1] for wait in NATIVE_WAITS))
            or (not native_leaf and any(marker in frames[-1] for marker in IDLE_LEAVES))
        ):
            continue
        busy_by_thread[kind] += count
        leaf[frames[-1]] += count
        for seen in set(frames):
            inclusive[seen] += count
        category = (
            GC_CATEGORY
            if any(g in frame for frame in frames for g in GC_FRAMES)
            else next(
                (c for frame in reversed(frames) for c, needles in CATEGORIES if any(n in frame for n in needles)),
                "other",
            )
        )
        by_category[category] += count
    busy = max(sum(busy_by_thread.values()), 1)
    main_samples = max(threads["main"], 1)

    def share(count: int, of: int = busy) -> float:
        return round(100 * count / of, 1)

    return {
        "samples_by_thread": dict(threads),
        "main_thread_busy_pct": share(busy_by_thread["main"], main_samples),
        "main_thread_torn_stacks_pct": share(torn, main_samples),
        "busy_threads": round(busy / main_samples, 2),
        "busy_share_by_thread_pct": {kind: share(n) for kind, n in busy_by_thread.items()},
        "self_time_by_category_pct_of_busy": {name: share(n) for name, n in by_category.most_common()},
        "top_self_functions_pct_of_busy": {name: share(n) for name, n in leaf.most_common(20)},
        "top_inclusive_functions_pct_of_busy": {name: share(n) for name, n in inclusive.most_common(60)},
    }


# --- report ------------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))  # fmt: skip
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def code_version() -> dict[str, Any]:
    """What was measured: the commit, whether intake's sources differ from it, and a digest of those sources."""

    def git(*command: str) -> str | None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True, timeout=10)
            return done.stdout.strip() if done.returncode == 0 else None
        return None

    sources = sorted((ROOT / "services" / "intake").glob("*.py")) + sorted(
        (ROOT / "shared" / "ticketstream_shared").rglob("*.py")
    )
    digest = hashlib.sha256(b"".join(path.read_bytes() for path in sources)).hexdigest()[:16]
    changed = git("status", "--porcelain", "--", "services/intake", "shared/ticketstream_shared")
    return {"commit": git("rev-parse", "--short", "HEAD"), "intake_and_shared_modified": bool(changed),
            "intake_and_shared_sha256_16": digest}  # fmt: skip


HEADER = ("offered/s", "sent/s", "ok/s", "success", "p50 ms", "p99 ms", "max ms", "ok p99 ms", "intake", "broker",
          "vegeta", "other", "intake ms/ok", "pass")  # fmt: skip


def row(step: dict[str, Any]) -> tuple[str, ...]:
    cores = step["cpu_cores"]

    def core(name: str) -> str:
        return "-" if cores.get(name) is None else f"{cores[name]:.2f}"

    latency = step["latency_ms"]
    ok_p99 = step["ok_latency_ms"]["p99"] if "ok_latency_ms" in step else None  # results before it have none
    return (
        f"{step['offered_rate']:,.0f}", f"{step['rate']:,.0f}", f"{step['throughput']:,.0f}",
        f"{100 * step['success']:.2f}%", f"{latency['p50']:.1f}", f"{latency['p99']:.1f}", f"{latency['max']:.0f}",
        "-" if ok_p99 is None else f"{ok_p99:.1f}", core("intake"), core("broker"), core("vegeta"), core("other"),
        per_ok(step), "yes" if step["passed"] else "no",
    )  # fmt: skip


def per_ok(step: dict[str, Any]) -> str:
    """Intake's CPU per successful request (ms); estimated from cores / ok/s for results without wall_s."""
    value = step.get("intake_cpu_ms_per_ok")
    if value is None and step["cpu_cores"].get("intake") and step["throughput"]:
        value = 1000 * step["cpu_cores"]["intake"] / step["throughput"]
    return "-" if value is None else f"{value:.2f}"


def table(steps: list[dict[str, Any]]) -> str:
    rows = [HEADER, *(row(step) for step in steps)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  " + "  ".join(cell.rjust(width) for cell, width in zip(r, widths, strict=True)) for r in rows)


def print_step(kind: str, step: dict[str, Any]) -> None:
    cells = dict(zip(HEADER, row(step), strict=True))
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(step["status_codes"].items()))
    print(f"  {kind:>10} {cells['offered/s']:>6}/s  sent {cells['sent/s']}/s ok {cells['ok/s']}/s "
          f"{cells['success']}  p50 {cells['p50 ms']} p99 {cells['p99 ms']} max {cells['max ms']} ms "
          f"(served p99 {cells['ok p99 ms']}; inside intake p99 <= {step.get('app_p99_bound_ms')})  "
          f"cores intake {cells['intake']} broker {cells['broker']} vegeta {cells['vegeta']}  [{codes}]"
          + (f"  errors: {step['errors'][:2]}" if step["errors"] else ""), flush=True)  # fmt: skip


# --- main --------------------------------------------------------------------------------------------------------


def _rates(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


@contextlib.contextmanager
def _terminated_cleanly() -> Iterator[None]:
    """SIGTERM / SIGHUP end the run through the `finally` blocks (stopping intake and the broker), like Ctrl-C."""

    def leave(signum: int, _: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_file_limit() -> None:
    """vegeta opens a connection per worker when the server falls behind; inherited by the children."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


def run_profiles(
    session: Session, args: argparse.Namespace, create: list[dict[str, Any]], hot: list[dict[str, Any]]
) -> dict[str, Any]:
    """py-spy profiles of intake at the given rates, or else just past each knee (the first failing rate)."""

    def first_failing(steps: list[dict[str, Any]]) -> int | None:
        return next((int(s["offered_rate"]) for s in steps if not s["passed"]), None)

    py_spy = find_py_spy()
    if py_spy is None:
        print("py-spy is not installed, so no profile (`.venv/bin/uv pip install --python .venv/bin/python py-spy`)")
        return {}
    plans = {
        "create": (args.profile_rate or first_failing(create), lambda: [session.create_target()]),
        "hot_ticket": (
            args.profile_hot_rate or first_failing(hot),
            lambda: [json_target(f"{session.intake.url}/v1/tickets/{session.new_ticket()}/worklogs", WORKLOG,
                                 session.auth)],
        ),
    }  # fmt: skip
    profiles = {}
    for kind, (rate, targets) in plans.items():
        if rate:
            print(f"profiling intake ({kind}) at {rate}/s for {args.profile_seconds} s ...", flush=True)
            stacks = args.output.resolve().with_name(f"{args.output.stem}-profile-{kind}.txt")
            profiles[kind] = session.profile(
                targets(), rate, args.profile_seconds, py_spy, stacks, args.profile_hz, args.profile_nonblocking
            )
    return profiles


def print_flood(callers: dict[str, dict[str, Any]]) -> None:
    for name, step in callers.items():
        print(f"  {name:>8}: offered {step['offered_rate']:,.0f}/s, served {step['throughput']:,.0f}/s "
              f"({100 * step['success']:.1f} %), served p99 {step['ok_latency_ms']['p99']:.1f} ms, "
              f"answers {dict(sorted(step['status_codes'].items()))}", flush=True)  # fmt: skip


def print_report(result: dict[str, Any]) -> None:
    """The tables (and profile summaries) of a result, as written to bench/results/intake.json."""
    create, hot, method = result["create"], result["hot_ticket"], result["method"]
    cpus = result["machine"]["nproc"]
    print(f"\nintake benchmark on {cpus} x {result['machine']['cpu_model']}, {method['seconds_per_rate']:g} s per "
          f"rate; CPU columns in cores (of {cpus}); 'intake ms/ok': intake's CPU per successful request")  # fmt: skip
    print("(a) POST /v1/tickets, a new ticket per request")
    print(table(create["steps"]))
    verdict = "meets" if create["bar_met"] else "MISSES"
    print(f"  highest passing rate: {create['highest_passing_rate'] or 0:,.0f} tickets/s ({verdict} the bar of "
          f"{BAR_RATE:,}/s: p99 <= {P99_LIMIT_MS:g} ms, all succeeded)")  # fmt: skip
    print("(b) POST /v1/tickets/{id}/worklogs, all on one ticket (a fresh one per rate)")
    print(table(hot["steps"]))
    print(f"  highest passing rate: {hot['highest_passing_rate'] or 0:,.0f} commands/s; "
          f"versions consistent: {hot['versions_consistent']}")  # fmt: skip
    if "flood" in result:
        print("(c) two callers at once, each with its key: one flooding, the other at its steady pace")
        print_flood(result["flood"])
    for kind, summary in result.get("profiles", {}).items():
        cores = summary["cpu_cores_while_sampling"]
        print(f"profile of {kind} at {summary['rate']}/s ({summary['load']['throughput']:,.0f} ok/s while sampling; "
              f"cores intake {cores['intake']}, broker {cores['broker']}, vegeta {cores['vegeta']}, "
              f"other {cores['other']}): main thread busy {summary['main_thread_busy_pct']}%; "
              "share of busy samples:")  # fmt: skip
        for name, pct in summary["self_time_by_category_pct_of_busy"].items():
            print(f"  {pct:5.1f}%  {name}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_intake", description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=_rates, default=CREATE_RATES, help="ticket creation rates, req/s")
    parser.add_argument("--hot-rates", type=_rates, default=HOT_RATES, help="worklog rates on one ticket, req/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--flood-rate", type=int, default=1500, help="(c): creations/s of the caller flooding "
                        "(0: skip (c))")  # fmt: skip
    parser.add_argument("--other-rate", type=int, default=50, help="(c): creations/s of the other caller")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of warm-up at the first rate (the "
                        "broker's JIT compiles for most of the first minute)")  # fmt: skip
    parser.add_argument("--profile-rate", type=int, help="profile intake at this creation rate (default: the "
                        "first failing rate, only if the bar is missed)")  # fmt: skip
    parser.add_argument("--profile-hot-rate", type=int, help="profile intake at this worklog rate on one ticket "
                        "(default: the first failing hot-ticket rate, only if the bar is missed)")  # fmt: skip
    parser.add_argument("--profile-seconds", type=int, default=30)
    parser.add_argument("--profile-hz", type=int, default=20, help="py-spy samples per second (it pauses intake)")
    parser.add_argument("--profile-nonblocking", action="store_true", help="py-spy --nonblocking (torn stacks)")
    parser.add_argument("--profile-only", action="store_true", help=f"only (re)do the profiles, into {RESULTS.name}")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--retries", type=int, default=2, help="reruns of a step disturbed by other processes")
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=300.0,
        help="seconds to wait before each step for other processes to use < 0.15 cores (then it runs anyway)",
    )
    parser.add_argument("--report", action="store_true", help=f"only print the tables of {RESULTS.name}")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"the JSON file (default {RESULTS.name})")
    parser.add_argument("--gc-threshold", type=_rates, help="what-if: start intake with gc.set_threshold(A,B,C) "
                        "(not how production runs it; write such runs to another --output)")  # fmt: skip
    args = parser.parse_args(argv)
    output: Path = args.output.resolve()
    if args.report:
        print_report(json.loads(output.read_text()))
        return

    vegeta = ensure_vegeta()
    _raise_file_limit()
    result: dict[str, Any] = {
        "benchmark": "intake",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(),
        "method": {
            "load_generator": "vegeta v12.12.0, open loop, constant rate, keep-alive, timeout 10 s",
            "seconds_per_rate": args.duration,
            "warmup_s": args.warmup,
            "intake": "one process, `python -m intake` (uvicorn, one event loop)"
            + (f"; what-if: gc.set_threshold{tuple(args.gc_threshold)}" if args.gc_threshold else ""),
            "pass": f"success 100 %, p99 <= {P99_LIMIT_MS:g} ms, sent >= {MIN_SENT_SHARE:.0%} of offered",
            "bar_tickets_per_s": BAR_RATE,
        },
    }
    with _terminated_cleanly(), tempfile.TemporaryDirectory(prefix="bench-intake-") as scratch_dir:
        scratch = Path(scratch_dir)
        with contextlib.ExitStack() as stack:
            bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
            if bootstrap:
                print(f"using the broker at {bootstrap} (KAFKA_BOOTSTRAP_SERVERS)", flush=True)
                broker = None
            else:
                print("starting a local Kafka broker ...", flush=True)
                kafka = stack.enter_context(LocalKafka(scratch / "kafka"))
                bootstrap, broker = kafka.bootstrap_servers, broker_pid()
            asyncio.run(ensure_topics(bootstrap))
            result["broker"] = "external (KAFKA_BOOTSTRAP_SERVERS)" if broker is None else "LocalKafka, same machine"
            dev_keys, api_keys = write_dev_keys(scratch / "keys")
            key = json.loads(dev_keys.read_text())["integration"]

            intake = Intake(bootstrap, api_keys, scratch / "intake.log", args.gc_threshold)
            stack.callback(intake.stop)
            intake.wait_ready()
            print(f"intake ready on {intake.url} (pid {intake.pid}); broker pid {broker}", flush=True)
            session = Session(intake, vegeta, key, {"intake": intake.pid, "broker": broker}, args.duration,
                              args.quiet_timeout, args.retries)  # fmt: skip

            if args.warmup > 0:
                session.settle()
                session.attack([session.create_target()], args.rates[0], args.warmup)
            if args.profile_only:
                earlier = json.loads(output.read_text())
                result = {**earlier, "profiles_code": result["code"], "profiles_date": result["date"]}
                create, hot = earlier["create"]["steps"], earlier["hot_ticket"]["steps"]
            else:
                print(f"(a) ticket creation, {args.duration:g} s per rate", flush=True)
                create = session.sweep_create(args.rates, print_step)
                print(f"(b) worklogs on one hot ticket, {args.duration:g} s per rate", flush=True)
                hot = session.sweep_hot(args.hot_rates, print_step)

            knee = highest_passing(create)
            result["create"] = {"steps": create, "highest_passing_rate": knee, "bar_met": (knee or 0) >= BAR_RATE}
            result["hot_ticket"] = {
                "steps": hot,
                "highest_passing_rate": highest_passing(hot),
                "max_ok_per_s": max((s["throughput"] for s in hot), default=0),
                "versions_consistent": all(s["versions_consistent"] for s in hot),
            }
            if args.flood_rate:
                print(f"(c) one caller floods at {args.flood_rate:,}/s, another keeps {args.other_rate}/s", flush=True)
                other_key = json.loads(dev_keys.read_text())["admin"]
                result["flood"] = session.flood(args.flood_rate, other_key, args.other_rate)

            if not args.no_profile and (args.profile_rate or args.profile_hot_rate or not result["create"]["bar_met"]):
                result["profiles"] = run_profiles(session, args, create, hot)
            intake.stop()
            if intake.process.returncode not in (0, -signal.SIGTERM):
                print(f"note: intake exited with {intake.process.returncode}:\n{intake.log_tail()}", flush=True)

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    print(f"written to {output}")


if __name__ == "__main__":
    main()
