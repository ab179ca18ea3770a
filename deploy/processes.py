"""The services as separate processes from deploy/Procfile, expanded by honcho itself as `make run SCALE=N` does
(honcho -c name=N), for the chaos test and the benchmarks. Each runs as its own subprocess rather than under honcho:
honcho stops every process as soon as one exits, and a kill -9 must leave the others running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from honcho.environ import expand_processes, parse_procfile

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServiceProcess:
    """One service process: its shell command (the Procfile's commands exec the service, so the shell's pid is
    the service's), environment, HTTP port and log file (None: this process's own output, e.g. a test's)."""

    name: str
    command: str
    env: dict[str, str]
    port: int
    log: Path | None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def start(self) -> None:
        with self.log.open("a") if self.log else contextlib.nullcontext() as out:
            errors = subprocess.STDOUT if out else None
            self.popen = subprocess.Popen(["/bin/sh", "-c", self.command], cwd=ROOT, env=self.env, stdout=out,
                                          stderr=errors, start_new_session=True)  # fmt: skip

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill9(self) -> None:
        assert self.running(), f"{self.name} is not running"
        os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)  # type: ignore[union-attr]

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops it; returns at once."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]

    def stop(self, timeout_s: float = 30) -> bool:
        """SIGTERM, then SIGKILL if it has not stopped within `timeout_s`; whether it stopped by itself."""
        if not self.running():
            return True
        self.terminate()
        try:
            self.popen.wait(timeout=timeout_s)  # type: ignore[union-attr]
            return True
        except subprocess.TimeoutExpired:
            self.popen.kill()  # type: ignore[union-attr]
            self.popen.wait()  # type: ignore[union-attr]
            return False


def port_variable(name: str) -> str:
    """The variable deploy/Procfile reads a replica's HTTP port from, by honcho's name for it (`sla.2`: SLA2_PORT)."""
    service, replica = name.split(".")
    return f"{service.upper()}{'2' if replica == '2' else ''}_PORT"


def procfile_processes(
    counts: Mapping[str, int], environment: Mapping[str, str], ports: Mapping[str, int], logs: Path
) -> dict[str, ServiceProcess]:
    """`counts[service]` processes of each service, by honcho name (`intake.1`, ...), each on `ports[name]` and
    logging to `logs/<name>.log`; none started."""
    environment = {**environment, **{port_variable(name): str(port) for name, port in ports.items()}}
    procfile = parse_procfile((ROOT / "deploy" / "Procfile").read_text())
    commands = {name: command for name, command in procfile.processes.items() if name in counts}
    expanded = expand_processes(commands, concurrency=dict(counts), env=environment)
    return {p.name: ServiceProcess(p.name, p.cmd, p.env, ports[p.name], logs / f"{p.name}.log") for p in expanded}


def replica_names(counts: Mapping[str, int]) -> list[str]:
    """honcho's names for `counts[service]` processes of each service."""
    return [f"{service}.{i + 1}" for service, count in counts.items() for i in range(count)]
