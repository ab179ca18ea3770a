"""What a service process costs, read from /proc: the benchmarks measure the worker, not the loaded machine."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time the process (or one of its threads, by native id) has used (user + system): unlike wall time,
    others' load leaves it be."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of the process now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")
