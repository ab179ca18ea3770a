"""The ids of decisions and routed records: the standard uuid5, so every process and every retry agrees."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from ticketstream_shared.runtime.ids import IdSpace

NAMESPACE = uuid.UUID("5b1f0c7e-3d2a-4e6b-9f8c-a1d2e3f4a505")


@given(st.text(st.characters(codec="utf-8")))
def test_an_id_space_makes_the_standard_uuid5(name: str) -> None:
    made, standard = IdSpace(NAMESPACE)(name), uuid.uuid5(NAMESPACE, name)
    assert made == standard
    # filled in without the constructor: every view of it must still be the standard one's
    assert (str(made), made.bytes, made.version, made.variant, hash(made)) == (
        str(standard), standard.bytes, 5, uuid.RFC_4122, hash(standard))  # fmt: skip
    assert made.is_safe is uuid.SafeUUID.unknown


def test_the_namespace_hashed_once_is_not_changed_by_the_ids_made_under_it() -> None:
    ids = IdSpace(NAMESPACE)
    ids("ticket-1:recorded")
    assert ids("ticket-2:recorded") == uuid.uuid5(NAMESPACE, "ticket-2:recorded")
