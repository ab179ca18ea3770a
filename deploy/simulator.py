"""A help-desk day, simulated for `make demo`: clients of different sizes open tickets over HTTP at a
business-hours rate, technicians log their time. Everything goes through intake's public API, as a real
front end would, so the dashboards fill exactly as they would in production.

`python -m deploy.simulator --intake http://127.0.0.1:8001 --keys .local/dev-keys.json --rate 2`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger("simulator")


@dataclass(frozen=True)
class Client:
    client_id: str
    share: float  # of all tickets
    requesters: int


CLIENTS = (
    Client("acme", 0.45, 40),
    Client("globex", 0.25, 20),
    Client("initech", 0.15, 12),
    Client("umbrella", 0.10, 8),
    Client("hooli", 0.05, 4),
)
CATEGORIES = {
    "network": ("VPN drops every hour", "Wi-Fi slow on floor 3", "Cannot reach file share"),
    "hardware": ("Laptop will not boot", "Printer jams", "Second screen flickers"),
    "email": ("Mail bounces", "Shared mailbox missing", "Calendar not syncing"),
    "access": ("Password reset", "New starter needs accounts", "Locked out of ERP"),
}
PRIORITIES = {"P1": 0.05, "P2": 0.2, "P3": 0.5, "P4": 0.25}
TECHNICIANS = [f"tech-{n}" for n in range(1, 9)]


def a_ticket(rng: random.Random) -> dict:
    client = rng.choices(CLIENTS, weights=[c.share for c in CLIENTS])[0]
    category = rng.choice(list(CATEGORIES))
    return {
        "client_id": client.client_id,
        "requester_id": f"{client.client_id}-user-{rng.randrange(client.requesters)}",
        "title": rng.choice(CATEGORIES[category]),
        "category": category,
        "priority": rng.choices(list(PRIORITIES), weights=list(PRIORITIES.values()))[0],
        "channel": rng.choice(["portal", "email", "phone", "monitoring"]),
    }


def a_worklog(rng: random.Random) -> dict:
    return {
        "technician_id": rng.choice(TECHNICIANS),
        "minutes": rng.choice([10, 15, 20, 30, 45, 60, 90, 120]),
        "billable": rng.random() < 0.7,
    }


async def simulate(intake: str, key: str, rate: float, tickets: int | None, seed: int) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=intake, headers=headers, timeout=10) as http:
        while True:  # wait for intake rather than fail while the system starts
            try:
                if (await http.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(1)
        opened = 0
        while tickets is None or opened < tickets:
            answer = await http.post("/v1/tickets", json=a_ticket(rng))
            answer.raise_for_status()
            opened += 1
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                (await http.post(f"/v1/tickets/{answer.json()['id']}/worklogs", json=a_worklog(rng))).raise_for_status()
            if opened % 50 == 0:
                log.info("simulated %d tickets", opened)
            await asyncio.sleep(rng.expovariate(rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intake", default="http://127.0.0.1:8001")
    parser.add_argument("--keys", type=Path, default=Path(".local/dev-keys.json"))
    parser.add_argument("--rate", type=float, default=2.0, help="tickets per second")
    parser.add_argument("--tickets", type=int, default=None, help="stop after this many (default: never)")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(message)s")
    key = json.loads(options.keys.read_text())["integration"]
    asyncio.run(simulate(options.intake, key, options.rate, options.tickets, options.seed))


if __name__ == "__main__":
    main()
