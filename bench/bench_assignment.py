"""Assignment benchmark: decisions per second of one worker, without Kafka, on a desk of 1,000 technicians.

    .venv/bin/python bench/bench_assignment.py [--tickets 100000] [--teams 50] [--technicians 1000]

50 teams of 20 technicians (16 at tier 1, 4 at tier 2, capacity 30 open tickets each, all on shift), strategies
spread over the teams (least_loaded, round_robin, skills). 100k tickets arrive in round-robin order over the
teams' categories with priorities P1..P4; whenever a team holds 480 open tickets the oldest is resolved, so
capacity is freed and taken again all the time; every 1,000 tickets a technician goes off shift and comes back.

Two measurements, each over the same stream:
  (a) domain: `Desk.apply` as the team's owner runs it (fold, settle, strategy), records built beforehand;
  (b) worker: what one process spends per ticket besides Kafka's network: decode the ticket event, route it,
      encode and decode the team-log record, decide, encode the published decision and the outcome record.
Reports decisions/s, p50/p99 time from the ticket's record to its decision (per call, in process), the max-min
weighted load among each team's tier-1 technicians at the end, and capacity violations (checked after every
decision; must be 0). Prints a table and writes bench/results/assignment.json. Kafka itself is not in the loop.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assignment.desk import Desk, published, recorded  # noqa: E402
from assignment.domain import Assigned  # noqa: E402
from assignment.records import TicketRouted, decode_team_record  # noqa: E402
from assignment.routing import route  # noqa: E402
from ticketstream_shared.contract import TicketCreated, TicketStatusChanged, decode_ticket_event, encode  # noqa: E402
from ticketstream_shared.contract.assignment import (  # noqa: E402
    CategoryRouted,
    ShiftChanged,
    Strategy,
    TeamLogEvent,
    TeamStrategyChosen,
    TechnicianProfiled,
)

RESULTS = ROOT / "bench" / "results" / "assignment.json"
BAR_DECISIONS_PER_S = 10_000
BAR_P99_MS = 500.0
CAPACITY = 30
OPEN_PER_TEAM = 480
STRATEGIES = (Strategy.LEAST_LOADED, Strategy.ROUND_ROBIN, Strategy.SKILLS)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _envelope() -> dict[str, Any]:
    return {"event_id": uuid.uuid4(), "occurred_at": T0, "producer": "bench", "correlation_id": "bench"}


def roster(teams: int, technicians: int) -> list[TeamLogEvent]:
    records: list[TeamLogEvent] = []
    per_team = technicians // teams
    for number in range(teams):
        team = f"team-{number:02d}"
        records.append(CategoryRouted(**_envelope(), data={"category": f"cat-{number:02d}", "team": team,
                                                             "skill": f"cat-{number:02d}"}))  # fmt: skip
        records.append(TeamStrategyChosen(**_envelope(), data={"team": team, "strategy": STRATEGIES[number % 3]}))
        for member in range(per_team):
            technician = f"{team}-tech-{member:02d}"
            skills = [f"cat-{number:02d}"] if member % 2 == 0 or member >= per_team * 4 // 5 else ["other"]
            profile = {"technician_id": technician, "name": technician, "team": team, "capacity": CAPACITY,
                       "tier": 1 if member < per_team * 4 // 5 else 2, "skills": skills}  # fmt: skip
            records.append(TechnicianProfiled(**_envelope(), data=profile))
            records.append(ShiftChanged(**_envelope(), data={"technician_id": technician, "team": team,
                                                             "on_shift": True}))  # fmt: skip
    return records


def ticket_stream(tickets: int, teams: int) -> list[TicketCreated | TicketStatusChanged]:
    """Ticket events as intake writes them: creations, and resolutions that keep each team near OPEN_PER_TEAM."""
    events: list[TicketCreated | TicketStatusChanged] = []
    open_by_team: dict[int, list[str]] = {team: [] for team in range(teams)}
    for number in range(tickets):
        team = number % teams
        ticket_id = f"ticket-{number}"
        events.append(TicketCreated(
            **_envelope(), ticket_id=ticket_id, client_id="acme", aggregate_version=1,
            data={"requester_id": "alice", "title": "Printer on fire", "category": f"cat-{team:02d}",
                  "priority": f"P{1 + number % 4}"},
        ))  # fmt: skip
        open_by_team[team].append(ticket_id)
        if len(open_by_team[team]) > OPEN_PER_TEAM:
            oldest = open_by_team[team].pop(0)
            events.append(TicketStatusChanged(
                **_envelope(), ticket_id=oldest, client_id="acme", aggregate_version=2,
                data={"from_status": "new", "to_status": "resolved"},
            ))  # fmt: skip
    return events


def shift_changes(number: int, teams: int) -> list[TeamLogEvent]:
    """Every 1,000 tickets one technician goes off shift and comes back: their waiting tickets are redistributed."""
    team = f"team-{number % teams:02d}"
    technician = f"{team}-tech-{number % 16:02d}"
    return [ShiftChanged(**_envelope(), data={"technician_id": technician, "team": team, "on_shift": on})
            for on in (False, True)]  # fmt: skip


def check_capacity(desk: Desk, decisions: list, violations: list[str]) -> int:
    """Count capacity violations among `decisions`; returns how many of them are published (assigned,
    escalated, or newly unassignable: retries that find nobody for the same reason tell nothing new)."""
    for decision in decisions:
        outcome = decision.outcome
        if isinstance(outcome, Assigned) and outcome.strategy is not Strategy.MANUAL:
            team = desk.teams[decision.team]
            if team.load_of(outcome.technician_id).open_tickets > team.technicians[outcome.technician_id].capacity:
                violations.append(outcome.technician_id)
    return sum(1 for decision in decisions if getattr(decision.outcome, "announce", True))


def run(events: list, setup: list[TeamLogEvent], teams: int, through_codec: bool) -> dict[str, Any]:
    desk = Desk()
    for record in setup:
        desk.apply(record, decides=True, instance="bench")
    rules = desk.rules.get
    known: dict[str, Any] = {}
    if not through_codec:  # records built beforehand: only the domain is timed
        prepared = []
        for event in events:
            routing = route(event, known.get(event.ticket_id), rules)
            known[event.ticket_id] = routing.where
            prepared.append(routing.records)
    raw_events = [encode(event) for event in events] if through_codec else []
    now = datetime.now(UTC)
    latencies: list[float] = []
    violations: list[str] = []
    decisions_made = 0
    began = time.perf_counter()
    for index in range(len(events)):
        started = time.perf_counter()
        if through_codec:
            event = decode_ticket_event(raw_events[index])
            routing = route(event, known.get(event.ticket_id), rules)
            known[event.ticket_id] = routing.where
            records = [decode_team_record(encode(record)) for record in routing.records]
        else:
            records = prepared[index]
        for record in records:
            decisions = desk.apply(record, decides=True, instance="bench")
            if through_codec:
                for decision in decisions:
                    ticket = desk.teams[decision.team].tickets[decision.outcome.ticket_id]
                    if (event_out := published(decision, ticket, now)) is not None:
                        encode(event_out)
                    if (outcome_record := recorded(decision, "bench", now)) is not None:
                        encode(outcome_record)
            decisions_made += check_capacity(desk, decisions, violations)
            if isinstance(record, TicketRouted):
                latencies.append(time.perf_counter() - started)
        if index and index % 1_000 == 0:
            for shift in shift_changes(index // 1_000, teams):
                decisions = desk.apply(shift, decides=True, instance="bench")
                decisions_made += check_capacity(desk, decisions, violations)
    elapsed = time.perf_counter() - began
    latencies.sort()
    by_strategy: dict[str, list[int]] = {}
    counts_by_strategy: dict[str, list[int]] = {}
    for team in desk.teams.values():
        # Equally eligible: the tier-1 technicians (with the team's skill, for strategy skills).
        skill = team.name.replace("team", "cat")
        peers = [tech for tech in team.technicians.values() if tech.tier == 1
                 and (team.strategy is not Strategy.SKILLS or skill in tech.skills)]  # fmt: skip
        loads = [team.load_of(tech.technician_id) for tech in peers]
        weighted, counts = [load.weighted for load in loads], [load.open_tickets for load in loads]
        by_strategy.setdefault(team.strategy.value, []).append(max(weighted) - min(weighted))
        counts_by_strategy.setdefault(team.strategy.value, []).append(max(counts) - min(counts))
    return {
        "decisions": decisions_made,
        "seconds": round(elapsed, 3),
        "decisions_per_s": round(decisions_made / elapsed),
        "ticket_events_per_s": round(len(events) / elapsed),
        "p50_decision_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_decision_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "max_decision_ms": round(latencies[-1] * 1000, 3),
        "weighted_load_spread_max_by_strategy": {name: max(values) for name, values in by_strategy.items()},
        "weighted_load_spread_mean_by_strategy": {
            name: round(sum(values) / len(values), 2) for name, values in by_strategy.items()
        },
        "open_tickets_spread_max_by_strategy": {name: max(vals) for name, vals in counts_by_strategy.items()},
        "capacity_violations": len(violations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--technicians", type=int, default=1_000)
    args = parser.parse_args()
    setup = roster(args.teams, args.technicians)
    events = ticket_stream(args.tickets, args.teams)
    results = {
        "tickets": args.tickets,
        "teams": args.teams,
        "technicians": args.technicians,
        "ticket_events": len(events),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "domain": run(events, setup, args.teams, through_codec=False),
        "worker_without_kafka": run(events, setup, args.teams, through_codec=True),
        "bar": {"decisions_per_s": BAR_DECISIONS_PER_S, "p99_ms": BAR_P99_MS, "capacity_violations": 0},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(f"{'run':<22}{'decisions/s':>12}{'events/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'violations':>11}  spread max")
    for name in ("domain", "worker_without_kafka"):
        row = results[name]
        print(f"{name:<22}{row['decisions_per_s']:>12,}{row['ticket_events_per_s']:>10,}{row['p50_decision_ms']:>8}"
              f"{row['p99_decision_ms']:>8}{row['capacity_violations']:>11}  "
              f"{row['weighted_load_spread_max_by_strategy']}")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
