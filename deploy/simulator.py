"""A help-desk day, simulated for `make demo`, through the public APIs only, as real front ends and people would.

It first sets the desk up: an office calendar (Europe/Berlin, Mon-Fri 08:00-18:00), SLA policies, client
agreements, a team of tier-1 and tier-2 technicians with skills, capacity and shifts, routing rules, a service
catalogue (e-mail, VPN, laptops, accounts, printing) and help articles. Then it runs a day at `--speed` times real
time: tickets arrive following a business-hours curve (peaks mid-morning and mid-afternoon) from clients of
different sizes; some requesters solve their problem with an article suggested to them, the other tickets live
their life (picked up, answered, sometimes waiting on the customer who then replies, time logged, resolved,
rated); technicians change shifts. The dashboard fills
within a minute at the default speed, and every requester and technician has an address with notify, so the
day's mail lands in the local mailbox (`make mail`).

`python -m deploy.simulator --keys .local/dev-keys.json --speed 120`
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
    tier: str


CLIENTS = (
    Client("acme", 0.40, "gold"),
    Client("globex", 0.25, "standard"),
    Client("initech", 0.15, "standard"),
    Client("umbrella", 0.12, "standard"),
    Client("hooli", 0.08, "bronze"),
)
CATEGORIES = {
    "network": ("VPN drops every hour", "Wi-Fi slow on floor 3", "Cannot reach file share"),
    "hardware": ("Laptop will not boot", "Printer jams", "Second screen flickers"),
    "email": ("Mail bounces", "Shared mailbox missing", "Calendar not syncing"),
    "access": ("Password reset", "New starter needs accounts", "Locked out of ERP"),
}
#: The service catalogue: what IT offers, the categories of each, and what it promises per priority (first answer,
#: next reply, solution, in working minutes). Printing has no category of its own: printer tickets name it.
SERVICES = {
    "email": ("E-mail", "Mailboxes, shared mailboxes, calendars and distribution lists.", ["email"]),
    "vpn": ("VPN and network", "Working from home, Wi-Fi in the offices and the file shares.", ["network"]),
    "laptop": ("Laptops and screens", "Your laptop, docking station and screens.", ["hardware"]),
    "accounts": ("Accounts and access", "Passwords, new starters and access to applications.", ["access"]),
    "printing": ("Printing", "The office printers and follow-me printing.", []),
}
SERVICE_TARGETS = {"P1": (30, 60, 240), "P2": (60, 120, 480), "P3": (240, 480, 1440), "P4": (480, 960, 2880)}
#: Help articles (id: title, body, service, keywords); some requesters solve their problem with one.
ARTICLES = {
    "kb-vpn-drops": ("VPN drops every hour", "Sign out of the VPN client, restart it and sign in again. If it "
                     "still drops, switch off your home router's power saving.", "vpn", ["vpn", "disconnects"]),
    "kb-printer-jam": ("Clearing a printer jam", "Open the front cover, pull the jammed paper out slowly in the "
                       "direction it feeds, close the cover and print again.", "printing", ["printer", "jams"]),
    "kb-password": ("Reset your password yourself", "Open the self-service portal, choose Forgot password and "
                    "confirm with your phone. The new password works everywhere within a minute.", "accounts",
                    ["password", "reset", "locked"]),
    "kb-calendar-sync": ("Calendar not syncing on your phone", "Remove the mail account from the phone and add "
                         "it again; calendars sync within a few minutes.", "email", ["calendar", "sync"]),
    "kb-laptop-boot": ("Laptop will not boot after an update", "Hold the power button for 15 seconds, plug in the "
                       "charger and start again.", "laptop", ["boot", "power", "laptop"]),
    "kb-shared-mailbox": ("Opening a shared mailbox", "In Outlook choose File, Open, Other user's folder and type "
                          "the shared mailbox's name.", "email", ["shared", "mailbox"]),
}  # fmt: skip
PRIORITIES = {"P1": 0.05, "P2": 0.2, "P3": 0.5, "P4": 0.25}
TECHNICIANS = [
    *({"id": f"tech-{n}", "tier": 1, "skills": list(CATEGORIES)[n % 4 : n % 4 + 2]} for n in range(1, 9)),
    *({"id": f"expert-{n}", "tier": 2, "skills": list(CATEGORIES)} for n in range(1, 4)),
]
#: Tickets per simulated hour at each hour of the working day (08:00-18:00), before the client shares.
ARRIVALS_PER_HOUR = [6, 14, 18, 12, 8, 10, 15, 13, 8, 4]
#: The one requester the development keys can act as (product.md: the requester key is scoped to acme).
DEV_REQUESTER = ("acme", "acme-requester")


class Desk:
    """The simulated people, each calling the APIs with the key of their role."""

    def __init__(self, urls: dict[str, str], keys: dict[str, str], speed: float, rng: random.Random) -> None:
        self.urls, self.keys, self.speed, self.rng = urls, keys, speed, rng
        self.http = httpx.AsyncClient(timeout=15)

    async def call(self, service: str, method: str, path: str, role: str, body: dict | None = None) -> dict:
        answer = await self.http.request(
            method, f"{self.urls[service]}{path}", json=body, headers={"Authorization": f"Bearer {self.keys[role]}"}
        )
        if answer.status_code >= 400 and answer.status_code not in (409,):  # 409: the ticket moved on meanwhile
            log.warning("%s %s -> %s %s", method, path, answer.status_code, answer.text[:200])
        return answer.json() if answer.content else {}

    async def wait(self, simulated_minutes: float) -> None:
        await asyncio.sleep(simulated_minutes * 60 / self.speed)

    async def until_ready(self) -> None:
        for service, url in self.urls.items():
            while True:
                try:
                    if (await self.http.get(f"{url}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                log.info("waiting for %s", service)
                await asyncio.sleep(1)

    async def set_up(self) -> None:
        office = {
            day: [{"start": "08:00", "end": "18:00"}]
            for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
        }
        await self.call(
            "sla",
            "PUT",
            "/v1/sla/calendars/office",
            "admin",
            {"name": "Office", "timezone": "Europe/Berlin", "week": office},
        )
        targets = {"P1": (30, 240), "P2": (60, 480), "P3": (240, 1440), "P4": (480, 2880)}
        for tier, factor in (("gold", 0.5), ("standard", 1.0), ("bronze", 2.0)):
            await self.call("sla", "PUT", f"/v1/sla/policies/{tier}", "admin", {
                "name": f"{tier.title()} support", "rank": 10, "match": {"tiers": [tier]}, "calendar_id": "office",
                "targets": {p: {"first_response_minutes": int(f * factor), "resolution_minutes": int(r * factor)}
                            for p, (f, r) in targets.items()},
            })  # fmt: skip
        for client in CLIENTS:
            await self.call(
                "sla",
                "PUT",
                f"/v1/sla/clients/{client.client_id}",
                "admin",
                {"calendar_id": "office", "tier": client.tier},
            )
        for technician in TECHNICIANS:
            await self.call("assignment", "PUT", f"/v1/technicians/{technician['id']}", "admin", {
                "name": technician["id"].replace("-", " ").title(), "team": "service-desk", "tier": technician["tier"],
                "skills": technician["skills"], "capacity": 8,
            })  # fmt: skip
        for category in CATEGORIES:
            await self.call(
                "assignment", "PUT", f"/v1/routing/categories/{category}", "admin", {"team": "service-desk"}
            )
        await self.call("assignment", "PUT", "/v1/routing/teams/service-desk", "admin", {"strategy": "least_loaded"})
        await self.shift_change(hour=0)
        await self.address_book()
        await self.catalogue()

    async def catalogue(self) -> None:
        """The services IT offers, with their promises, and the help articles requesters find before they ask."""
        for service_id, (name, description, categories) in SERVICES.items():
            await self.call("sla", "PUT", f"/v1/catalog/services/{service_id}", "admin", {
                "name": name, "description": description, "owner_team": "service-desk", "categories": categories,
                "calendar_id": "office", "published": True,
                "targets": {priority: {"first_response_minutes": first, "next_reply_minutes": reply,
                                       "resolution_minutes": solved}
                            for priority, (first, reply, solved) in SERVICE_TARGETS.items()},
            })  # fmt: skip
        for article_id, (title, body, service_id, keywords) in ARTICLES.items():
            await self.call("intake", "PUT", f"/v1/knowledge/articles/{article_id}", "technician", {
                "title": title, "body": body, "service_id": service_id, "categories": SERVICES[service_id][2],
                "keywords": keywords, "published": True,
            })  # fmt: skip

    async def address_book(self) -> None:
        """Everyone's address for notify, so the day's mail lands in `make run`'s mailbox (.local/mail, `make mail`)."""
        people = [
            (technician["id"], technician["id"].replace("-", " ").title(), "technician", None)
            for technician in TECHNICIANS
        ]
        people.append(("desk-manager", "Desk Manager", "manager", None))
        people.append((DEV_REQUESTER[1], "Anna Acme", "requester", DEV_REQUESTER[0]))
        for client in CLIENTS:
            client_id, name = client.client_id, client.client_id.title()
            people += [(f"{client_id}-user-{n}", f"User {n} of {name}", "requester", client_id) for n in range(30)]
        for person_id, name, role, client_id in people:
            email = f"{person_id}@{client_id or 'desk'}.example"
            body = {"name": name, "email": email, "role": role, "client_id": client_id}
            await self.call("notify", "PUT", f"/v1/notify/people/{person_id}", "admin", body)

    async def shift_change(self, hour: int) -> None:
        """Early shift 08-14, late shift 12-18; experts all day."""
        for n, technician in enumerate(TECHNICIANS):
            early = n % 2 == 0
            on = technician["tier"] == 2 or (hour < 6 if early else hour >= 4)
            await self.call(
                "assignment", "POST", f"/v1/technicians/{technician['id']}/shift", "admin", {"on_shift": on}
            )

    async def ticket_life(self) -> None:
        rng = self.rng
        client = rng.choices(CLIENTS, weights=[c.share for c in CLIENTS])[0]
        category = rng.choice(list(CATEGORIES))
        mine = client.client_id == DEV_REQUESTER[0] and rng.random() < 0.5
        requester_id = DEV_REQUESTER[1] if mine else f"{client.client_id}-user-{rng.randrange(30)}"
        title = rng.choice(CATEGORIES[category])
        requester = "requester" if mine else "integration"
        ticket = await self.call("intake", "POST", "/v1/tickets", requester, {
            "client_id": client.client_id, "requester_id": requester_id, "title": title, "category": category,
            "priority": rng.choices(list(PRIORITIES), weights=list(PRIORITIES.values()))[0],
            "channel": rng.choice(["portal", "email", "phone", "monitoring"]),
            **({"service_id": "printing"} if "Printer" in title else {}),
        })  # fmt: skip
        if "id" not in ticket:
            return
        path = f"/v1/tickets/{ticket['id']}"
        suggested = ticket.get("suggested_articles") or []
        if suggested and rng.random() < 0.3:  # the first suggestion helped: solved without anyone's work
            await self.wait(rng.uniform(1, 10))
            await self.call("intake", "POST", f"{path}/self-solved", requester, {"article_id": suggested[0]["id"]})
            return
        technician = rng.choice(TECHNICIANS)["id"]
        await self.wait(rng.uniform(5, 40))
        await self.call("intake", "POST", f"{path}/status", "technician", {"status": "in_progress"})
        await self.call(
            "intake",
            "POST",
            f"{path}/comments",
            "technician",
            {"author_id": technician, "body": "Looking into it.", "public": True},
        )
        if rng.random() < 0.3:
            await self.call(
                "intake",
                "POST",
                f"{path}/status",
                "technician",
                {"status": "waiting_on_customer", "reason": "need details"},
            )
            await self.wait(rng.uniform(10, 90))
            if mine:  # the requester's answer puts the ticket back in the queue by itself
                await self.call(
                    "intake",
                    "POST",
                    f"{path}/comments",
                    "requester",
                    {"author_id": requester_id, "body": "Here you go.", "public": True},
                )
            else:
                await self.call("intake", "POST", f"{path}/status", "technician", {"status": "in_progress"})
        for _ in range(rng.choice([1, 1, 2, 3])):
            await self.wait(rng.uniform(10, 60))
            minutes = rng.choice([10, 15, 20, 30, 45, 60, 90])
            worklog = {"technician_id": technician, "minutes": minutes, "billable": rng.random() < 0.7}
            await self.call("intake", "POST", f"{path}/worklogs", "technician", worklog)
        await self.call("intake", "POST", f"{path}/status", "technician", {"status": "resolved", "reason": "fixed"})
        if mine and rng.random() < 0.7:
            await self.wait(rng.uniform(5, 60))
            await self.call(
                "intake",
                "POST",
                f"{path}/csat",
                "requester",
                {"rating": rng.choices([5, 4, 3, 2, 1], [50, 30, 10, 6, 4])[0]},
            )

    async def run_day(self, days: int | None) -> None:
        lives: set[asyncio.Task[None]] = set()
        day = 0
        while days is None or day < days:
            for hour, per_hour in enumerate(ARRIVALS_PER_HOUR):
                if hour in (4, 6):
                    await self.shift_change(hour)
                log.info("day %d, %02d:00: %d tickets in flight", day + 1, 8 + hour, len(lives))
                for _ in range(per_hour):
                    life = asyncio.create_task(self.ticket_life())
                    lives.add(life)
                    life.add_done_callback(lives.discard)
                    await self.wait(60 / per_hour)
            day += 1
        await asyncio.gather(*lives)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=Path, default=Path(".local/dev-keys.json"))
    parser.add_argument("--host", default="http://127.0.0.1")
    parser.add_argument("--speed", type=float, default=120.0, help="simulated seconds per real second")
    parser.add_argument("--days", type=int, default=None, help="stop after this many days (default: never)")
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s simulator %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the story of the day
    urls = {
        name: f"{options.host}:{port}"
        for name, port in (("intake", 8001), ("sla", 8002), ("assignment", 8003), ("reporting", 8004), ("notify", 8005))
    }

    async def simulate() -> None:
        desk = Desk(urls, json.loads(options.keys.read_text()), options.speed, random.Random(options.seed))
        await desk.until_ready()
        await desk.set_up()
        await desk.run_day(options.days)

    asyncio.run(simulate())


if __name__ == "__main__":
    main()
