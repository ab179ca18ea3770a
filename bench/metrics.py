"""What a service running as its own process exposes on /metrics, read as an operator's scraper reads it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def scraped(url: str, key: str) -> list[Sample]:
    """Every sample of the service at `url` (counters under their `_total` names, histograms as their buckets)."""
    answer = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    answer.raise_for_status()
    return [sample for family in text_string_to_metric_families(answer.text) for sample in family.samples]
