"""notify as `make run` starts it (deploy/Procfile), killed with SIGKILL while it sends: each (event, recipient)
still gives exactly one mail (one Message-ID, derived from both; a mail in flight at the kill may be sent again
under the same id, which the receiving side keeps once), and each event reaches the webhook at least once."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from deploy.kafka.launcher import free_ports
from deploy.processes import procfile_processes
from notify.notices import delivery_id
from tests.builders import a_ticket_created
from tests.e2e.test_system import processes_marked
from tests.polling import eventually
from tests.publishing import publish
from tests.receivers import http_receiver, smtp_server
from ticketstream_shared.contract.notify import DeliveryChannel
from ticketstream_shared.runtime.auth import write_dev_keys
from ticketstream_shared.sealing import write_key

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

DOMAIN = "crash.test"
REQUESTERS = 5
TICKETS = 300


def test_a_kill_9_mid_sending_gives_each_mail_once_and_each_webhook_delivery_at_least_once(
    kafka_bootstrap: str, tmp_path
) -> None:
    _, api_keys = write_dev_keys(tmp_path)
    admin = json.loads((tmp_path / "dev-keys.json").read_text())["admin"]
    run_id = str(uuid.uuid4())
    client_id = f"crash-{run_id[:8]}"
    with smtp_server() as mailbox, http_receiver() as receiver:
        environment = {
            **os.environ,
            "TICKETSTREAM_E2E_RUN": run_id,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "API_KEYS_FILE": str(api_keys),
            "CONSUMER_GROUP": f"notify-{run_id[:8]}",
            "NOTIFY_SECRETS_KEY_FILE": str(write_key(tmp_path / "notify.key")),
            "NOTIFY_ALLOWED_HOSTS": "127.0.0.1",
            "SMTP_PORT": str(mailbox.port),
            "MAIL_DOMAIN": DOMAIN,
        }
        (port,) = free_ports(1)
        notify = procfile_processes({"notify": 1}, environment, {"notify.1": port}, tmp_path)["notify.1"]
        notify.start()
        try:
            eventually(notify.ready, timeout_s=90, what="notify ready")
            headers = {"Authorization": f"Bearer {admin}"}
            people = [f"{client_id}-person-{n}" for n in range(REQUESTERS)]
            for person in people:
                body = {"name": f"Person {person}", "email": f"{person}@example.org", "client_id": client_id}
                assert (
                    httpx.put(f"{notify.url}/v1/notify/people/{person}", json=body, headers=headers).status_code == 200
                )
            hook = {"url": f"{receiver.url}/crash", "event_types": ["ticket.created"], "client_id": client_id,
                    "secret": "a-secret-of-16-chars"}  # fmt: skip
            assert httpx.put(f"{notify.url}/v1/notify/webhooks/crash", json=hook, headers=headers).status_code == 200

            now = datetime.now(UTC)
            events = [
                a_ticket_created(client_id=client_id, requester_id=people[n % REQUESTERS], occurred_at=now)
                for n in range(TICKETS)
            ]
            expected = {
                f"<{delivery_id(DeliveryChannel.MAIL, event.data.requester_id, f'{event.event_id}/received')}@{DOMAIN}>"
                for event in events
            }
            publish(kafka_bootstrap, events)

            eventually(lambda: len(mailbox.messages) >= TICKETS // 5, timeout_s=60, what="the first mails")
            notify.kill9()
            assert notify.pid not in processes_marked(run_id)
            sent_before_the_kill = len(mailbox.messages)
            notify.start()
            eventually(notify.ready, timeout_s=90, what="notify ready again")

            def message_ids() -> list[str]:
                with mailbox.lock:
                    return [str(message["Message-ID"]) for _, message in mailbox.messages]

            eventually(lambda: set(message_ids()) >= expected, timeout_s=120, what="every mail")
            eventually(
                lambda: (
                    {json.loads(r.body)["event_id"] for r in receiver.to("/crash")} >= {str(e.event_id) for e in events}
                ),
                timeout_s=60,
                what="every webhook delivery",
            )
        finally:
            notify.stop()
        ids = message_ids()
        assert set(ids) == expected, "a mail that no (event, recipient) explains, or one missing"
        resent = len(ids) - len(expected)
        # Sent again can only be what was in flight at the kill: one mail per recipient's lane.
        assert resent <= REQUESTERS, f"{resent} mails sent twice"
        assert sent_before_the_kill < TICKETS, "the kill came after everything was sent: it proved nothing"
        delivered = [
            json.loads(request.body)["event_id"] for request in receiver.to("/crash") if request.answered == 200
        ]
        assert set(delivered) == {str(event.event_id) for event in events}
