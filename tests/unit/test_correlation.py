"""Correlation ids on the consuming side: a log line written while handling a record carries the id the record was
written under, and what the handler writes to Kafka passes it on (one flow) or passes none (a batch of several)."""

import asyncio
import logging
from types import SimpleNamespace

from aiokafka.structs import ConsumerRecord

from tests.builders import a_ticket_created
from ticketstream_shared.runtime.consumer import Delivery
from ticketstream_shared.runtime.kafka import CORRELATION_HEADER, correlation_headers, dead_letter
from ticketstream_shared.runtime.logging import BATCH_IDS_LOGGED, correlated, correlation_id

log = logging.getLogger("tests.correlation")


def a_record(value: bytes, correlation: str | None) -> ConsumerRecord:
    headers = [(CORRELATION_HEADER, correlation.encode())] if correlation else []
    return ConsumerRecord("tickets.events", 3, 41, 0, 0, b"key", value, None, len(value), len(b"key"), headers)


def test_a_log_line_written_while_handling_one_flow_carries_its_id_and_headers_pass_it_on(log_lines) -> None:
    with correlated(["flow-1", "flow-1"]):
        log.info("handling")
        assert correlation_headers() == [(CORRELATION_HEADER, b"flow-1")]
    log.info("done")
    handling, done = log_lines()
    assert handling["correlation_id"] == "flow-1" and handling["service"] == "test-service"
    assert done["correlation_id"] is None, "the id of a handled record must not leak into what follows"


def test_a_batch_of_several_flows_logs_each_id_and_passes_none_on(log_lines) -> None:
    token = correlation_id.set("the-request")
    try:
        with correlated(["flow-1", None, "flow-2", "flow-1"]):
            log.info("handling a batch")
            assert correlation_headers() == []
        assert correlation_id.get() == "the-request", "what was set before is restored"
    finally:
        correlation_id.reset(token)
    [line] = log_lines()
    assert line["correlation_id"] == "flow-1,flow-2"


def test_a_batch_logs_the_ids_of_its_first_flows_read_no_further(log_lines) -> None:
    flows = iter([f"flow-{number // 3}" for number in range(3 * (BATCH_IDS_LOGGED + 5))])  # each flow three times
    with correlated(flows):
        log.info("handling a batch")
    [line] = log_lines()
    assert line["correlation_id"] == ",".join(f"flow-{number}" for number in range(BATCH_IDS_LOGGED))
    assert next(flows) == f"flow-{BATCH_IDS_LOGGED - 1}", "read past the first of the last flow logged"


def test_a_delivery_belongs_to_the_flow_of_its_header_else_of_its_event() -> None:
    event = a_ticket_created()  # correlation_id "test" in its payload
    headed = Delivery(event, "tickets.events", 3, 41, a_record(b"{}", "from-header"))
    bare = Delivery(event, "tickets.events", 3, 42, a_record(b"{}", None))
    request = Delivery(("a request", "its body"), "tickets.inbound", 0, 7, a_record(b"{}", None))
    assert headed.correlation_id == "from-header"
    assert bare.correlation_id == "test"
    assert request.correlation_id is None


def test_a_dead_letter_keeps_the_id_and_its_log_line_carries_it(log_lines) -> None:
    sent = []

    async def send_and_wait(topic, value, key, headers):  # what a producer is asked: no broker in a unit test
        sent.append(SimpleNamespace(topic=topic, value=value, headers=dict(headers)))

    producer = SimpleNamespace(send_and_wait=send_and_wait)
    asyncio.run(dead_letter(producer, a_record(b"not json {", "flow-9"), "not JSON: boom", "sla"))
    [parked] = sent
    assert parked.topic == "tickets.events.dlq" and parked.value == b"not json {"
    assert parked.headers[CORRELATION_HEADER] == b"flow-9" and parked.headers["dlq.reason"] == b"not JSON: boom"
    [line] = [line for line in log_lines() if line["message"] == "dead-lettered a message"]
    assert line["correlation_id"] == "flow-9"
