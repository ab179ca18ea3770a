"""The two numbers an operator watches in production, as docs/benchmarks.md measures them on a bench: how many
events a process gets through per second, and how much CPU each thousand cost it.

Each service counts its own unit of work in one place (`THROUGHPUT.processed(n)`): intake the commands it decides,
sla the ticket events it times, assignment the ticket events it routes, reporting the events it projects, notify
the events it fans out to webhooks and mail. Both figures are over the last `WINDOW_S` seconds, computed when
/metrics is read, so they need no timer of their own. `ticketstream_events_processed_total` is there too, for a
rate() over any window Prometheus likes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from prometheus_client import Counter, Gauge

#: The window both figures are taken over: long enough to smooth batching, short enough to show a change at once.
WINDOW_S = 60.0

PROCESSED = Counter("ticketstream_events_processed_total", "Events (or commands) this process has processed")


class Throughput:
    """Events processed and CPU used, sampled whenever a figure is read. A figure runs from the last sample taken at
    or before the window's start (or the first one, if none is that old) to now: about the last `window_s` seconds
    when /metrics is scraped more often than that, and all the time since the last scrape otherwise."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self._window_s = window_s
        self._clock = clock
        self._cpu = cpu
        self._processed = 0
        self._samples: deque[tuple[float, int, float]] = deque([(clock(), 0, cpu())])

    def processed(self, events: int = 1) -> None:
        self._processed += events
        PROCESSED.inc(events)

    def _over_window(self) -> tuple[float, int, float]:
        """Seconds, events and CPU seconds from the oldest sample of the window to now."""
        now = (self._clock(), self._processed, self._cpu())
        while len(self._samples) > 1 and self._samples[1][0] <= now[0] - self._window_s:
            self._samples.popleft()
        if now[0] > self._samples[-1][0]:
            self._samples.append(now)
        oldest = self._samples[0]
        return now[0] - oldest[0], now[1] - oldest[1], now[2] - oldest[2]

    def events_per_second(self) -> float:
        seconds, events, _ = self._over_window()
        return events / seconds if seconds > 0 else 0.0

    def cpu_seconds_per_1000_events(self) -> float:
        """0 while nothing was processed in the window (there is nothing to divide the CPU by)."""
        _, events, cpu_seconds = self._over_window()
        return 1000 * cpu_seconds / events if events else 0.0


THROUGHPUT = Throughput()

Gauge("ticketstream_events_per_second", f"Events processed per second over the last {WINDOW_S:.0f} s").set_function(
    THROUGHPUT.events_per_second
)
Gauge(
    "ticketstream_cpu_seconds_per_1000_events",
    f"CPU seconds of this process per 1,000 events processed, over the last {WINDOW_S:.0f} s",
).set_function(THROUGHPUT.cpu_seconds_per_1000_events)
