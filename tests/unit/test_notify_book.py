"""The book of deliveries folded from notify.deliveries: what waits for each target, each attempt's outcome,
whether an endpoint is failing, redeliveries asked for, and memory bounded to the recent finished deliveries."""

from __future__ import annotations

from datetime import timedelta

from notify.book import RECENT_PER_TARGET, Book, Delivery, Status
from tests.builders import T0
from ticketstream_shared.contract.notify import (
    DeliveryAttempted,
    DeliveryChannel,
    DeliveryScheduled,
    Outcome,
    RedeliveryRequested,
    WebhookPost,
)

WEBHOOK = DeliveryChannel.WEBHOOK
HOOK = "wh-1"


def scheduled(delivery_id: str, target: str = HOOK, minute: int = 0) -> DeliveryScheduled:
    return DeliveryScheduled(
        delivery_id=delivery_id,
        occurred_at=T0 + timedelta(minutes=minute),
        channel=WEBHOOK,
        target=target,
        ticket_id="tk-1",
        source_event_id=f"event-{delivery_id}",
        source_event_type="ticket.created",
        content=WebhookPost(body='{"event_type": "ticket.created"}'),
    )


def attempted(
    delivery_id: str,
    attempt: int,
    outcome: Outcome,
    target: str = HOOK,
    minute: int = 1,
    error: str | None = None,
) -> DeliveryAttempted:
    failed = outcome is not Outcome.DELIVERED
    return DeliveryAttempted(
        delivery_id=delivery_id,
        occurred_at=T0 + timedelta(minutes=minute),
        channel=WEBHOOK,
        target=target,
        attempt=attempt,
        outcome=outcome,
        status_code=503 if failed else 200,
        error=(error or "503 Service Unavailable") if failed else None,
        latency_ms=12.5,
        next_attempt_at=T0 + timedelta(minutes=minute + 5) if outcome is Outcome.WILL_RETRY else None,
    )


def redelivery(delivery_id: str, target: str = HOOK, minute: int = 60) -> RedeliveryRequested:
    return RedeliveryRequested(
        delivery_id=delivery_id,
        occurred_at=T0 + timedelta(minutes=minute),
        channel=WEBHOOK,
        target=target,
        requested_by="admin-key",
    )


class Log:
    """A book fed as the follower feeds it: each record at the next offset of its partition."""

    def __init__(self) -> None:
        self.book = Book()
        self.offsets: dict[int, int] = {}

    def fold(self, record, partition: int = 0) -> Delivery | None:
        offset = self.offsets.get(partition, 0)
        self.offsets[partition] = offset + 1
        return self.book.fold(record, partition, offset, record.model_dump_json().encode())

    def delivery(self, delivery_id: str, target: str = HOOK) -> Delivery:
        return self.book.target(WEBHOOK, target).deliveries[delivery_id]


def test_a_scheduled_delivery_waits_and_is_due():
    log = Log()
    record = scheduled("d1")

    due = log.fold(record, partition=3)

    assert due is not None
    assert due.delivery_id == "d1"
    assert due.scheduled == record
    assert due.status is Status.WAITING
    assert (due.partition, due.offset) == (3, 0)
    assert due.raw == record.model_dump_json().encode()
    assert due.since == record.occurred_at
    assert due.next_attempt_at is None
    assert log.book.waiting(WEBHOOK, HOOK) == 1


def test_a_schedule_seen_again_changes_nothing():
    log = Log()
    log.fold(scheduled("d1"))

    assert log.fold(scheduled("d1")) is None

    assert log.book.waiting(WEBHOOK, HOOK) == 1
    assert list(log.book.target(WEBHOOK, HOOK).deliveries) == ["d1"]
    assert log.delivery("d1").offset == 0


def test_an_unknown_target_has_nothing_waiting():
    assert Book().waiting(WEBHOOK, "nobody") == 0
    assert Book().waiting(DeliveryChannel.MAIL, HOOK) == 0


def test_a_failed_attempt_that_will_be_retried_keeps_it_waiting():
    log = Log()
    log.fold(scheduled("d1"))

    assert log.fold(attempted("d1", 1, Outcome.WILL_RETRY, error="connection refused")) is None

    target = log.book.target(WEBHOOK, HOOK)
    delivery = log.delivery("d1")
    assert delivery.status is Status.WAITING
    assert [a.attempt for a in delivery.attempts] == [1]
    assert delivery.next_attempt_at == T0 + timedelta(minutes=6)
    assert target.waiting == 1
    assert target.last_error == "connection refused"
    assert target.failing_since is None


def test_a_delivered_attempt_finishes_it():
    log = Log()
    log.fold(scheduled("d1"))
    log.fold(attempted("d1", 1, Outcome.WILL_RETRY, minute=1))

    log.fold(attempted("d1", 2, Outcome.DELIVERED, minute=7))

    target = log.book.target(WEBHOOK, HOOK)
    delivery = log.delivery("d1")
    assert delivery.status is Status.DELIVERED
    assert delivery.next_attempt_at is None
    assert target.waiting == 0
    assert target.failing_since is None
    assert target.last_error is None
    assert target.last_delivered_at == T0 + timedelta(minutes=7)
    assert log.book.waiting_in({0}) == []


def test_giving_up_fails_it_and_marks_the_endpoint_failing_until_a_delivery_succeeds():
    log = Log()
    log.fold(scheduled("d1"))
    log.fold(scheduled("d2"))

    log.fold(attempted("d1", 1, Outcome.GAVE_UP, minute=3, error="410 Gone"))

    target = log.book.target(WEBHOOK, HOOK)
    assert log.delivery("d1").status is Status.FAILED
    assert target.waiting == 1
    assert target.failing_since == T0 + timedelta(minutes=3)
    assert target.last_error == "410 Gone"

    log.fold(attempted("d2", 1, Outcome.GAVE_UP, minute=9))
    assert target.failing_since == T0 + timedelta(minutes=3)  # since the first failure
    assert target.waiting == 0

    log.fold(scheduled("d3"))
    log.fold(attempted("d3", 1, Outcome.DELIVERED, minute=20))

    assert target.failing_since is None
    assert target.last_error is None
    assert target.waiting == 0


def test_an_attempt_at_or_below_the_last_one_is_ignored():
    log = Log()
    log.fold(scheduled("d1"))
    log.fold(attempted("d1", 1, Outcome.WILL_RETRY, minute=1, error="first"))
    log.fold(attempted("d1", 2, Outcome.WILL_RETRY, minute=6, error="second"))

    log.fold(attempted("d1", 2, Outcome.DELIVERED, minute=7))
    log.fold(attempted("d1", 1, Outcome.GAVE_UP, minute=8, error="stale"))

    target = log.book.target(WEBHOOK, HOOK)
    delivery = log.delivery("d1")
    assert [a.attempt for a in delivery.attempts] == [1, 2]
    assert delivery.attempts[-1].outcome is Outcome.WILL_RETRY
    assert delivery.status is Status.WAITING
    assert target.waiting == 1
    assert target.last_error == "second"
    assert target.failing_since is None


def test_an_attempt_applied_twice_counts_once():
    log = Log()
    log.fold(scheduled("d1"))
    record = attempted("d1", 1, Outcome.DELIVERED)

    log.fold(record)
    log.fold(record)

    assert log.book.waiting(WEBHOOK, HOOK) == 0
    assert len(log.delivery("d1").attempts) == 1


def test_records_of_an_unknown_delivery_are_ignored():
    log = Log()

    assert log.fold(attempted("ghost", 1, Outcome.DELIVERED)) is None
    assert log.fold(redelivery("ghost")) is None

    assert log.book.waiting(WEBHOOK, HOOK) == 0
    assert log.book.waiting_in({0}) == []


def test_a_redelivery_of_a_finished_delivery_makes_it_due_again():
    log = Log()
    log.fold(scheduled("d1"))
    log.fold(scheduled("d2"))
    log.fold(attempted("d1", 1, Outcome.GAVE_UP, minute=3))

    due = log.fold(redelivery("d1", minute=60))

    assert due is log.delivery("d1")
    assert due.status is Status.WAITING
    assert due.since == T0 + timedelta(minutes=60)
    assert log.book.waiting(WEBHOOK, HOOK) == 2
    assert [d.delivery_id for d in log.book.waiting_in({0})] == ["d2", "d1"]

    log.fold(attempted("d1", 2, Outcome.DELIVERED, minute=61))
    assert log.delivery("d1").status is Status.DELIVERED
    assert log.book.waiting(WEBHOOK, HOOK) == 1


def test_a_redelivery_of_a_delivered_delivery_makes_it_due_again():
    log = Log()
    log.fold(scheduled("d1"))
    log.fold(attempted("d1", 1, Outcome.DELIVERED))

    due = log.fold(redelivery("d1"))

    assert due is not None
    assert due.status is Status.WAITING
    assert log.book.waiting(WEBHOOK, HOOK) == 1


def test_a_redelivery_of_a_waiting_delivery_changes_nothing():
    log = Log()
    log.fold(scheduled("d1"))
    log.fold(attempted("d1", 1, Outcome.WILL_RETRY))

    assert log.fold(redelivery("d1")) is None

    assert log.book.waiting(WEBHOOK, HOOK) == 1
    assert log.delivery("d1").since == T0


def test_waiting_in_gives_the_partitions_waiting_deliveries_in_schedule_order():
    log = Log()
    log.fold(scheduled("a1", target="hook-a", minute=0), partition=0)
    log.fold(scheduled("b1", target="hook-b", minute=1), partition=1)
    log.fold(scheduled("a2", target="hook-a", minute=2), partition=0)
    log.fold(scheduled("c1", target="hook-c", minute=3), partition=2)
    log.fold(scheduled("a3", target="hook-a", minute=4), partition=0)
    log.fold(scheduled("b2", target="hook-b", minute=5), partition=1)
    log.fold(attempted("a2", 1, Outcome.DELIVERED, target="hook-a"), partition=0)
    log.fold(attempted("b1", 1, Outcome.WILL_RETRY, target="hook-b"), partition=1)

    assert [d.delivery_id for d in log.book.waiting_in({0})] == ["a1", "a3"]
    assert [d.delivery_id for d in log.book.waiting_in({1})] == ["b1", "b2"]
    assert [d.delivery_id for d in log.book.waiting_in({2, 5})] == ["c1"]
    assert log.book.waiting_in({4}) == []
    assert log.book.waiting_in(set()) == []
    both = [d.delivery_id for d in log.book.waiting_in({0, 1})]
    assert sorted(both) == ["a1", "a3", "b1", "b2"]
    assert both.index("a1") < both.index("a3")
    assert both.index("b1") < both.index("b2")


def test_targets_of_the_two_channels_are_apart():
    book = Book()
    mail = scheduled("m1").model_copy(update={"channel": DeliveryChannel.MAIL})

    book.fold(scheduled("w1"), 0, 0, b"")
    book.fold(mail, 0, 1, b"")

    assert book.waiting(WEBHOOK, HOOK) == 1
    assert book.waiting(DeliveryChannel.MAIL, HOOK) == 1
    assert list(book.target(DeliveryChannel.MAIL, HOOK).deliveries) == ["m1"]


def test_only_the_recent_finished_deliveries_are_kept():
    log = Log()
    finished = RECENT_PER_TARGET + 50
    for number in range(finished):
        log.fold(scheduled(f"f{number}"))
        if number % 100 == 0:
            log.fold(scheduled(f"w{number}"))  # never attempted: waits throughout
        outcome = Outcome.GAVE_UP if number % 3 == 0 else Outcome.DELIVERED
        log.fold(attempted(f"f{number}", 1, outcome))

    deliveries = log.book.target(WEBHOOK, HOOK).deliveries
    kept_finished = [d.delivery_id for d in deliveries.values() if d.status is not Status.WAITING]
    waiting = [d.delivery_id for d in deliveries.values() if d.status is Status.WAITING]
    assert len(kept_finished) == RECENT_PER_TARGET
    assert kept_finished == [f"f{number}" for number in range(50, finished)]  # the oldest forgotten
    assert waiting == [f"w{number}" for number in range(0, finished, 100)]
    assert log.book.waiting(WEBHOOK, HOOK) == len(waiting)
    assert [d.delivery_id for d in log.book.waiting_in({0})] == waiting


def test_a_redelivered_old_delivery_is_not_forgotten_while_it_waits():
    log = Log()
    log.fold(scheduled("old"))
    log.fold(attempted("old", 1, Outcome.GAVE_UP))
    log.fold(redelivery("old"))

    for number in range(RECENT_PER_TARGET + 50):
        log.fold(scheduled(f"f{number}"))
        log.fold(attempted(f"f{number}", 1, Outcome.DELIVERED))

    assert log.delivery("old").status is Status.WAITING
    assert [d.delivery_id for d in log.book.waiting_in({0})] == ["old"]
    assert log.book.waiting(WEBHOOK, HOOK) == 1

    log.fold(attempted("old", 2, Outcome.DELIVERED))

    assert log.delivery("old").status is Status.DELIVERED
    assert log.book.waiting(WEBHOOK, HOOK) == 0


def test_a_delivery_finished_twice_is_kept_as_long_as_the_recent_ones():
    """Finished, redelivered and finished again: it is as recent as its last finish, and the book still keeps
    RECENT_PER_TARGET finished deliveries."""
    log = Log()
    log.fold(scheduled("again"))
    log.fold(attempted("again", 1, Outcome.GAVE_UP))
    log.fold(redelivery("again"))
    log.fold(attempted("again", 2, Outcome.DELIVERED))

    for number in range(RECENT_PER_TARGET - 1):
        log.fold(scheduled(f"f{number}"))
        log.fold(attempted(f"f{number}", 1, Outcome.DELIVERED))

    deliveries = log.book.target(WEBHOOK, HOOK).deliveries
    assert "again" in deliveries
    assert len(deliveries) == RECENT_PER_TARGET
