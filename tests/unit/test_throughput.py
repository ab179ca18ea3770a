"""The runtime figures of /metrics: events per second and CPU seconds per 1,000 events over the last minute."""

from __future__ import annotations

from ticketstream_shared.runtime.throughput import Throughput


class Stopwatch:
    def __init__(self) -> None:
        self.now = 0.0
        self.cpu = 0.0

    def work(self, seconds: float, cpu_seconds: float) -> None:
        self.now += seconds
        self.cpu += cpu_seconds


def a_meter(window_s: float = 60.0) -> tuple[Throughput, Stopwatch]:
    watch = Stopwatch()
    return Throughput(window_s, clock=lambda: watch.now, cpu=lambda: watch.cpu), watch


def test_the_figures_are_the_work_of_the_window() -> None:
    meter, watch = a_meter()
    watch.work(10, 2.0)
    meter.processed(5_000)
    assert meter.events_per_second() == 500
    assert meter.cpu_seconds_per_1000_events() == 0.4


def test_work_older_than_the_window_no_longer_counts() -> None:
    """Scraped every 15 s: a burst long gone drops out, and the figures show what the process does now."""
    meter, watch = a_meter()
    watch.work(15, 9.0)
    meter.processed(90_000)  # a busy quarter of a minute
    for _ in range(5):  # then an hour's worth of quiet scrapes
        meter.events_per_second()
        watch.work(15, 0.15)
        meter.processed(150)
    assert meter.events_per_second() == 10
    assert round(meter.cpu_seconds_per_1000_events(), 6) == 1.0


def test_a_process_that_did_nothing_reads_zero_not_a_division_by_zero() -> None:
    meter, watch = a_meter()
    assert meter.events_per_second() == 0 and meter.cpu_seconds_per_1000_events() == 0
    watch.work(30, 0.1)
    assert meter.events_per_second() == 0 and meter.cpu_seconds_per_1000_events() == 0
