"""Configuration that changes nothing adds nothing: what "nothing changed" means for versions effective later, a
change read twice counted once, and event ids that are the same for the same change only."""

from __future__ import annotations

import uuid
from datetime import timedelta

from assignment.dispatcher import roster_change_id
from assignment.domain import Team, Technician, Ticket
from sla.agreements import Agreements, History
from sla.configuration import CALENDARS, change_id
from tests.builders import T0
from ticketstream_shared.contract import Priority, TicketStatus
from ticketstream_shared.contract.assignment import ShiftChanged, ShiftChangedData, Strategy
from ticketstream_shared.contract.sla import CalendarChanged, CalendarData

DAY = timedelta(days=1)
ALWAYS = CalendarData(timezone="UTC", always_open=True)
OFFICE = CalendarData(timezone="Europe/Berlin", week={"monday": [{"start": "09:00", "end": "17:00"}]})


def a_history(*versions: tuple[timedelta, CalendarData]) -> History[CalendarData]:
    history: History[CalendarData] = History()
    for after, value in versions:
        history.add(T0 + after, T0, "admin", value)
    return history


# --- sla: the rule for versions effective later -----------------------------------------------------------------


def test_the_terms_in_force_from_now_on_again_change_nothing() -> None:
    history = a_history((timedelta(0), ALWAYS))
    assert history.in_force_from(T0 + DAY, ALWAYS) is history.versions[0]
    assert history.in_force_from(T0 + DAY, OFFICE) is None


def test_todays_terms_again_while_a_change_is_pending_take_it_back() -> None:
    history = a_history((timedelta(0), ALWAYS), (7 * DAY, OFFICE))
    assert history.in_force_from(T0 + DAY, ALWAYS) is None, "made last, it would undo next week's change"
    assert history.in_force_from(T0 + 7 * DAY, OFFICE) is history.versions[1], "the pending change, repeated"
    assert history.in_force_from(T0 + 8 * DAY, OFFICE) is history.versions[1], "in force by then already"
    assert history.in_force_from(T0 + 6 * DAY, OFFICE) is None, "a day earlier than promised is a change"


def test_a_version_made_later_but_effective_earlier_is_what_counts() -> None:
    history = a_history((timedelta(0), ALWAYS), (7 * DAY, OFFICE), (DAY, ALWAYS))  # the third takes the second back
    assert history.in_force_from(T0 + 2 * DAY, ALWAYS) is history.versions[2]
    assert history.in_force_from(T0 + 7 * DAY, OFFICE) is None


def a_calendar_change(event_id: uuid.UUID, data: CalendarData = ALWAYS) -> CalendarChanged:
    return CalendarChanged(
        event_id=event_id, occurred_at=T0, effective_at=T0, producer="sla", correlation_id="test",
        changed_by="admin", calendar_id="berlin", data=data,
    )  # fmt: skip


def test_a_change_read_twice_is_one_version() -> None:
    agreements = Agreements.with_defaults()
    twin = uuid.uuid4()
    first = agreements.apply(a_calendar_change(twin))
    assert first is not None and first.number == 1
    assert agreements.apply(a_calendar_change(twin)) is None
    assert agreements.apply(a_calendar_change(uuid.uuid4(), OFFICE)) is not None
    assert [version.number for version in agreements.calendars["berlin"].versions] == [1, 2]
    assert agreements.change_moments == [T0, T0], "the twin re-times no clock"


def test_a_change_id_is_the_same_for_the_same_change_only() -> None:
    history = a_history((timedelta(0), ALWAYS))
    retry = change_id(CALENDARS, "berlin", history, OFFICE, None)
    assert retry == change_id(CALENDARS, "berlin", history, OFFICE.model_copy(), None)
    assert retry != change_id(CALENDARS, "berlin", history, ALWAYS, None)
    assert retry != change_id(CALENDARS, "paris", history, OFFICE, None)
    assert retry != change_id(CALENDARS, "berlin", history, OFFICE, T0 + DAY)
    history.add(T0, T0, "admin", ALWAYS)  # the same body again after another change is a change of its own
    assert retry != change_id(CALENDARS, "berlin", history, OFFICE, None)


# --- assignment: a roster record folded twice -----------------------------------------------------------------


def ann(capacity: int = 2) -> Technician:
    return Technician("ann", "Ann", "desk", 1, frozenset({"network"}), capacity)


def test_an_unchanged_roster_record_folds_to_nothing() -> None:
    team = Team("desk")
    team.profile(ann())
    team.shift("ann", True)
    team.choose_strategy(Strategy.ROUND_ROBIN)
    assert team.roster_revision == 3
    for number in range(3):
        team.route(Ticket(f"t{number}", "acme", Priority.P3, TicketStatus.NEW, "network", "network", version=1))
    team.settle()
    assert list(team.backlog) == ["t2"], "ann is at capacity"

    team.profile(ann())
    team.shift("ann", True)
    team.choose_strategy(Strategy.ROUND_ROBIN)
    assert team.roster_revision == 3 and not team.awaiting, "nothing to decide again"

    team.profile(ann(capacity=3))
    assert team.roster_revision == 4 and list(team.awaiting) == ["t2"]


def test_a_roster_change_id_is_the_same_for_the_same_change_only() -> None:
    on = ShiftChangedData(technician_id="ann", team="desk", on_shift=True)
    off = on.model_copy(update={"on_shift": False})
    assert roster_change_id(ShiftChanged, "ann", "desk@3", on) == roster_change_id(ShiftChanged, "ann", "desk@3", on)
    assert roster_change_id(ShiftChanged, "ann", "desk@3", on) != roster_change_id(ShiftChanged, "ann", "desk@5", on)
    assert roster_change_id(ShiftChanged, "ann", "desk@3", on) != roster_change_id(ShiftChanged, "ann", "desk@3", off)
