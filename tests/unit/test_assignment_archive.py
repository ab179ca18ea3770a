"""The desk's archive (a real RocksDB store in a temporary directory): a ticket put aside comes out the same, once,
from memory (the newest) or from disk; what a checkpoint wrote survives a restart, what came after it does not."""

from __future__ import annotations

from pathlib import Path

from assignment.archive import LAYOUT, DeskArchive
from assignment.domain import Ticket
from ticketstream_shared.contract import Priority, TicketStatus
from ticketstream_shared.runtime.store import LocalStore


def closed(ticket_id: str, version: int = 7) -> Ticket:
    return Ticket(ticket_id, "acme", Priority.P2, TicketStatus.CLOSED, "network", "network", tier=2, assignee=None,
                  previous_assignee="ann", version=version, routed_as="the owner team of service VPN",
                  service_id="vpn")  # fmt: skip


def test_a_ticket_put_aside_comes_back_the_same_once() -> None:
    store = LocalStore(None, layout=LAYOUT)
    try:
        archive, ticket = DeskArchive(store), closed("t1")
        archive.put("net-team", ticket)
        assert archive.get("t1") == ("net-team", ticket) and archive.get("t1") == ("net-team", ticket)
        assert isinstance(archive.get("t1")[1].priority, Priority)  # type: ignore[index]
        assert archive.take("t1") == ("net-team", ticket)
        assert archive.get("t1") is None and archive.take("t1") is None
    finally:
        store.close()


def test_a_restart_finds_what_the_last_checkpoint_wrote_and_nothing_after_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, layout=LAYOUT)
    archive = DeskArchive(store)
    assert archive.last_checkpoint() is None  # a new machine: fold the team log from its beginning
    archive.put("net-team", closed("t1"))
    archive.put("net-team", closed("t2"))
    archive.checkpoint(b"memory at 10", {0: 10, 1: 4})
    archive.take("t1")  # reopened after the checkpoint
    archive.put("net-team", closed("t3"))
    store.close()

    store = LocalStore(tmp_path, layout=LAYOUT)
    try:
        archive = DeskArchive(store)
        assert archive.last_checkpoint() == (b"memory at 10", {0: 10, 1: 4})
        assert archive.get("t1") == ("net-team", closed("t1"))  # as at the checkpoint: folded again from there
        assert archive.get("t2") == ("net-team", closed("t2"))
        assert archive.get("t3") is None
        archive.start_over()
        assert archive.last_checkpoint() is None and archive.get("t2") is None
    finally:
        store.close()


def test_a_store_written_in_another_layout_starts_over(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, layout="assignment-desk-0")
    archive = DeskArchive(store)
    archive.put("net-team", closed("t1"))
    archive.checkpoint(b"memory", {0: 1})
    store.close()
    store = LocalStore(tmp_path, layout=LAYOUT)
    try:
        assert DeskArchive(store).last_checkpoint() is None and DeskArchive(store).get("t1") is None
    finally:
        store.close()
