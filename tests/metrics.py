"""What a service running as its own process counts, read from its /metrics as an operator would."""

import httpx

from tests.keys import ADMIN, bearer

#: Members a replica removed from its groups on behalf of a process found gone (runtime/presence.py).
EVICTED = "ticketstream_group_members_evicted_total"


def metric(url: str, name: str) -> float:
    """The sum of a metric's samples over its labels (0 before it is first counted)."""
    response = httpx.get(f"{url}/metrics", headers=bearer(ADMIN), timeout=10)
    assert response.status_code == 200, response.text
    lines = response.text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith((f"{name} ", f"{name}{{")))
