"""vegeta (github.com/tsenart/vegeta), the open-loop constant-rate HTTP load generator the benchmarks drive.

Open loop: vegeta sends at the offered rate whether or not earlier requests have been answered (it adds workers
when all are busy), so a slow server shows up as latency and errors instead of quietly lowering the rate, as a
closed-loop client (N connections, one request each in flight) would.

The binary is installed on demand into <repo>/.local/bin (gitignored) with `go install`, pinned to VERSION.
"""

from __future__ import annotations

import base64
import csv
import ctypes
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.percentiles import percentiles

ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = ROOT / ".local" / "bin"
MODULE = "github.com/tsenart/vegeta/v12"
VERSION = "v12.12.0"
INSTALL_TIMEOUT_S = 600


def _die_with_parent() -> None:
    """preexec_fn: Linux SIGKILLs the attack when the benchmark dies, however it dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class VegetaError(RuntimeError):
    """vegeta could not be installed or run; the message says why."""


def ensure_vegeta(bin_dir: Path = BIN_DIR) -> Path:
    """Path of a vegeta VERSION binary, `go install`ing it first (about 35 s on 2 cores) when missing or stale."""
    binary = bin_dir / "vegeta"
    go = shutil.which("go")
    if binary.is_file() and (go is None or _module_version(go, binary) == VERSION):
        return binary
    if go is None:
        raise VegetaError(f"{binary} is missing and there is no `go` on PATH to install {MODULE}@{VERSION}")
    bin_dir.mkdir(parents=True, exist_ok=True)
    print(f"installing {MODULE}@{VERSION} into {bin_dir} (go install, ~35 s) ...", flush=True)
    result = subprocess.run(
        [go, "install", f"{MODULE}@{VERSION}"],
        env={**os.environ, "GOBIN": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0 or not binary.is_file():
        raise VegetaError(f"`go install {MODULE}@{VERSION}` failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return binary


def _module_version(go: str, binary: Path) -> str | None:
    """The module version a Go binary was built from, per `go version -m` (a `go install`ed vegeta prints an
    empty `-version`: that comes from release ldflags)."""
    try:
        output = subprocess.run([go, "version", "-m", str(binary)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "mod" and parts[1] == MODULE:
            return parts[2]
    return None


@dataclass(frozen=True)
class Target:
    """One HTTP request for vegeta's JSON target format."""

    method: str
    url: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        target: dict[str, Any] = {"method": self.method, "url": self.url}
        if self.body:
            target["body"] = base64.b64encode(self.body).decode()
        if self.headers:
            target["header"] = {name: [value] for name, value in self.headers.items()}
        return json.dumps(target)


def json_target(url: str, body: Any, headers: Mapping[str, str]) -> Target:
    """A POST of `body` as JSON."""
    return Target("POST", url, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})


@dataclass(frozen=True)
class AttackResult:
    """vegeta's report of one attack (times in ms), and the CPU seconds the attack process used."""

    offered_rate: float
    duration_s: float
    requests: int
    rate: float  # requests sent per second (vegeta "rate")
    throughput: float  # successful responses per second, until the last one arrived (vegeta "throughput")
    success: float  # share of responses with a 2xx/3xx status
    latency_ms: dict[str, float]  # min, mean, p50, p90, p95, p99, max
    ok_latency_ms: dict[str, float]  # p50, p99, max of the successful responses alone (a fast refusal is not served)
    status_codes: dict[str, int]
    errors: list[str]
    cpu_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "offered_rate": self.offered_rate,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "rate": round(self.rate, 1),
            "throughput": round(self.throughput, 1),
            "success": round(self.success, 5),
            "latency_ms": {name: round(value, 2) for name, value in self.latency_ms.items()},
            "ok_latency_ms": {name: round(value, 2) for name, value in self.ok_latency_ms.items()},
            "status_codes": self.status_codes,
            "errors": self.errors,
            "vegeta_cpu_s": round(self.cpu_s, 2),
        }


class Attack:
    """`vegeta attack` at a constant rate over `targets` (round robin), running in the background.

    start() returns at once, so the caller can sample other processes meanwhile; wait() reaps the process (with
    its rusage, for the CPU it used) and returns the report. The process is killed by stop() if still running.
    """

    def __init__(
        self,
        binary: Path,
        targets: Sequence[Target],
        rate: float,
        duration_s: float,
        *,
        timeout_s: float = 10.0,
        workers: int = 32,
        max_workers: int = 4096,
        scratch: Path | None = None,
    ) -> None:
        self.binary, self.targets, self.rate, self.duration_s = binary, list(targets), rate, duration_s
        self.timeout_s, self.workers, self.max_workers = timeout_s, workers, max_workers
        self._scratch = Path(tempfile.mkdtemp(prefix="vegeta-", dir=scratch))
        self._process: subprocess.Popen[bytes] | None = None
        self._cpu_s = 0.0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        targets = self._scratch / "targets.jsonl"
        targets.write_text("".join(target.to_json() + "\n" for target in self.targets))
        command = [
            str(self.binary), "attack",
            "-format=json", f"-targets={targets}",
            f"-rate={self.rate:g}/1s", f"-duration={self.duration_s:g}s",
            f"-timeout={self.timeout_s:g}s",
            f"-workers={self.workers}", f"-max-workers={self.max_workers}",
            f"-output={self._scratch / 'results.bin'}",
        ]  # fmt: skip
        with (self._scratch / "stderr").open("wb") as stderr:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=_die_with_parent
            )

    def wait(self) -> AttackResult:
        process = self._process
        assert process is not None, "start() first"
        _, wait_status, usage = os.wait4(process.pid, 0)  # rusage of the attack process only
        process.returncode = os.waitstatus_to_exitcode(wait_status)
        self._cpu_s = usage.ru_utime + usage.ru_stime
        if process.returncode != 0:
            raise VegetaError(
                f"vegeta attack exited with {process.returncode}: {(self._scratch / 'stderr').read_text()[-2000:]}"
            )
        report = subprocess.run(
            [str(self.binary), "report", "-type=json", str(self._scratch / "results.bin")],
            capture_output=True,
            check=True,
        )
        encoded = subprocess.run(
            [str(self.binary), "encode", "-to=csv", str(self._scratch / "results.bin")],
            capture_output=True,
            check=True,
        )
        result = self._parse(json.loads(report.stdout), _ok_latencies_ms(encoded.stdout.decode()))
        shutil.rmtree(self._scratch, ignore_errors=True)
        return result

    def stop(self) -> None:
        """Kill the attack if it still runs; safe to call at any time, also after wait()."""
        process = self._process
        if process is not None and process.returncode is None and process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _parse(self, report: dict[str, Any], ok_latencies_ms: list[float]) -> AttackResult:
        latencies = report["latencies"]
        names = {"min": "min", "mean": "mean", "50th": "p50", "90th": "p90", "95th": "p95", "99th": "p99", "max": "max"}
        errors = sorted(set(report.get("errors") or []))
        return AttackResult(
            offered_rate=self.rate,
            duration_s=self.duration_s,
            requests=report["requests"],
            rate=report["rate"],
            throughput=report["throughput"],
            success=report["success"],
            latency_ms={name: latencies[key] / 1e6 for key, name in names.items()},
            ok_latency_ms=percentiles(ok_latencies_ms),  # exact; vegeta's own are estimates
            status_codes=dict(report.get("status_codes") or {}),
            errors=errors[:5],
            cpu_s=self._cpu_s,
        )


def _ok_latencies_ms(csv_text: str) -> list[float]:
    """The latencies of the 2xx/3xx responses in `vegeta encode -to=csv` (timestamp, code, latency in ns, ...)."""
    latencies = []
    for fields in csv.reader(io.StringIO(csv_text)):
        if fields and 200 <= int(fields[1]) < 400:
            latencies.append(int(fields[2]) / 1e6)
    return latencies
