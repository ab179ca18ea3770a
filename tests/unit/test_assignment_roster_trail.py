"""The roster's audit trail: every change folded from the team log, who made it, and what it replaced."""

from __future__ import annotations

import pickle
import uuid

from assignment.desk import Desk
from tests.builders import T0
from ticketstream_shared.contract import Actor, Role
from ticketstream_shared.contract.assignment import (
    CategoryRouted,
    RosterChange,
    ShiftChanged,
    TeamStrategyChosen,
    TechnicianProfiled,
    TechnicianTransferred,
)

MARIA = Actor(key_name="maria", role=Role.MANAGER, subject="maria")


def change(kind: type[RosterChange], actor: Actor | None = MARIA, **data: object) -> RosterChange:
    return kind(event_id=uuid.uuid4(), occurred_at=T0, producer="assignment", correlation_id="t", actor=actor,
                data=data)  # fmt: skip


def profile(**changes: object) -> RosterChange:
    data = {"technician_id": "ann", "name": "Ann", "team": "network", "tier": 1, "skills": ["vpn", "wifi"],
            "capacity": 5, **changes}  # fmt: skip
    return change(TechnicianProfiled, **data)


def folded(*changes: RosterChange) -> Desk:
    desk = Desk()
    for each in changes:
        desk.apply(each, decides=False, instance="me")
    return desk


def test_each_change_says_who_made_it_and_what_it_replaced():
    desk = folded(
        profile(),
        change(ShiftChanged, technician_id="ann", team="network", on_shift=True),
        profile(tier=2, skills=["wifi", "vpn"]),  # the same skills in another order: no change of them
        change(CategoryRouted, category="vpn", team="network", skill="vpn"),
        change(CategoryRouted, actor=None, category="vpn", team="remote", skill="vpn"),
        change(TeamStrategyChosen, team="network", strategy="round_robin"),
        change(TechnicianTransferred, technician_id="ann", from_team="network", to_team="remote"),
    )
    trail = [entry.view() for entry in desk.trail.newest_first()]
    assert [(view["what"], view["changes"]) for view in trail] == [
        ("moved technician ann from team network to remote", {"team": {"before": "network", "after": "remote"}}),
        ("team network distributes its tickets by round_robin",
         {"strategy": {"before": "least_loaded", "after": "round_robin"}}),
        ("routed category vpn to team remote", {"team": {"before": "network", "after": "remote"}}),
        ("routed category vpn to team network",
         {"team": {"before": None, "after": "network"}, "skill": {"before": None, "after": "vpn"}}),
        ("profiled technician ann in team network", {"tier": {"before": 1, "after": 2}}),
        ("put technician ann on shift", {"on_shift": {"before": False, "after": True}}),
        ("profiled technician ann in team network",
         {name: {"before": None, "after": value} for name, value in
          {"name": "Ann", "team": "network", "tier": 1, "skills": ["vpn", "wifi"], "capacity": 5}.items()}),
    ]  # fmt: skip
    assert trail[0]["by"] == "maria (manager, key maria)"
    assert trail[2]["by"] == "not recorded (before actors were)"
    assert [entry.view()["what"] for entry in desk.trail.newest_first(category="vpn")] == [
        "routed category vpn to team remote", "routed category vpn to team network"
    ]  # fmt: skip
    assert len(list(desk.trail.newest_first(technician_id="ann"))) == 4
    # a transfer is a change to both teams' rosters
    assert [entry.view()["what"] for entry in desk.trail.newest_first(team="remote")] == [
        "moved technician ann from team network to remote", "routed category vpn to team remote"
    ]  # fmt: skip
    network = [entry.view()["what"] for entry in desk.trail.newest_first(team="network")]
    assert network[0] == "moved technician ann from team network to remote" and len(network) == len(trail) - 1


def test_a_twin_is_one_entry_and_only_the_newest_are_kept():
    twin = profile()
    desk = folded(twin, twin)
    assert len(list(desk.trail.newest_first())) == 1
    desk.trail._kept = 2
    for tier in (2, 3, 1):
        desk.apply(profile(tier=tier), decides=False, instance="me")
    assert [entry.view()["changes"]["tier"]["after"] for entry in desk.trail.newest_first()] == [1, 3]


def test_the_trail_in_a_checkpoint_is_the_same_and_pickled_again_only_after_a_change():
    """A checkpoint of the desk (every 5 s) carries the trail: pickled once while no change comes."""
    desk = folded(profile(), change(ShiftChanged, technician_id="ann", team="network", on_shift=True))
    first = pickle.dumps(desk.trail)
    kept = desk.trail._pickled
    assert pickle.dumps(desk.trail) == first and desk.trail._pickled is kept  # nothing changed: not pickled again
    resumed = pickle.loads(first)
    assert [entry.view() for entry in resumed.newest_first()] == [entry.view() for entry in desk.trail.newest_first()]
    desk.apply(change(ShiftChanged, technician_id="ann", team="network", on_shift=False), decides=False, instance="me")
    views = [entry.view() for entry in pickle.loads(pickle.dumps(desk.trail)).newest_first()]
    assert [view["what"] for view in views] == [
        "took technician ann off shift",
        "put technician ann on shift",
        "profiled technician ann in team network",
    ]
    resumed.record(change(ShiftChanged, technician_id="bob", team="network", on_shift=True), desk)  # it goes on
    assert len(list(pickle.loads(pickle.dumps(resumed)).newest_first())) == 3
