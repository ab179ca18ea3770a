"""Technicians' names on assignment's team log (a log kept forever), with a privacy master key: sealed under the
technician's data key on assignment.by_team, shown opened by every endpoint, "[erased]" once the technician is."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi.testclient import TestClient

from assignment.app import build_app
from assignment.settings import AssignmentSettings
from tests.integration.test_assignment_service import ready
from tests.integration.test_data_keys import MASTER_KEY, a_replica
from tests.keys import MANAGER, TEST_KEYS, bearer
from tests.polling import eventually
from ticketstream_shared.contract.topics import ASSIGNMENT_BY_TEAM, TEAM_PARTITIONS
from ticketstream_shared.privacy import ERASED
from ticketstream_shared.runtime.kafka import records_to_end

pytestmark = pytest.mark.integration


def team_log_records_about(kafka_bootstrap: str, technician: str) -> list[bytes]:
    """Every record of assignment.by_team that names `technician`, as written."""

    async def read() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = {TopicPartition(ASSIGNMENT_BY_TEAM, p): None for p in range(TEAM_PARTITIONS)}
            return [record.value async for record in records_to_end(consumer, partitions) if record.value]
        finally:
            await consumer.stop()

    return [value for value in asyncio.run(read()) if technician.encode() in value]


def test_a_technicians_name_is_sealed_on_the_team_log_shown_opened_and_erased_with_them(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    master = tmp_path / "master.key"
    master.write_text(base64.b64encode(MASTER_KEY).decode() + "\n")
    settings = AssignmentSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        api_keys_file="unused-keys-come-from-tests",
        consumer_group=f"assignment-{uuid.uuid4().hex[:8]}",
        privacy_master_key_file=master,
    )
    marker = uuid.uuid4().hex
    technician, team = f"tech-{marker[:8]}", f"team-{marker[:8]}"
    body = {"name": f"Tom {marker}", "team": team, "tier": 1, "skills": ["vpn"], "capacity": 5}
    manager = bearer(MANAGER)
    with TestClient(build_app(settings, TEST_KEYS)) as process:
        ready(process)
        put = process.put(f"/v1/technicians/{technician}", json=body, headers=manager)
        assert put.status_code == 200 and put.json()["name"] == body["name"], put.text
        again = process.put(f"/v1/technicians/{technician}", json=body, headers=manager)
        assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["name"] == body["name"]
        refused = process.put(
            f"/v1/technicians/{technician}", json={**body, "name": "sealed:v1:" + "ab" * 16 + ":QUJD"}, headers=manager
        )
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "name", refused.text

        (written,) = team_log_records_about(kafka_bootstrap, technician)
        assert marker.encode() not in written and b'"name":"sealed:v1:' in written
        shown = process.get(f"/v1/technicians/{technician}", headers=manager).json()
        assert shown["name"] == body["name"]
        listed = process.get("/v1/technicians", params={"team": team}, headers=manager).json()["technicians"]
        assert [each["name"] for each in listed] == [body["name"]]
        (change,) = process.get("/v1/roster/changes", params={"technician_id": technician}, headers=manager).json()[
            "changes"
        ]
        assert change["changes"]["name"] == {"before": None, "after": body["name"]}, change

        async def erase() -> None:
            async with a_replica(kafka_bootstrap) as keys:
                assert await keys.erase(technician)

        asyncio.run(erase())
        eventually(
            lambda: process.get(f"/v1/technicians/{technician}", headers=manager).json()["name"] == ERASED,
            what="the technician's name erased",
        )
        (change,) = process.get("/v1/roster/changes", params={"technician_id": technician}, headers=manager).json()[
            "changes"
        ]
        assert change["changes"]["name"]["after"] == ERASED
        assert process.get(f"/v1/technicians/{technician}", headers=manager).json()["tier"] == 1
