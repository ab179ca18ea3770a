"""API keys for tests: one per role, a requester, a manager and an admin scoped to client acme, a manager scoped to
client umbrella (which only the test of the desk's queue uses), and two keys of a person (ann, a technician; maria, a
manager)."""

from pathlib import Path

from ticketstream_shared.contract import Role
from ticketstream_shared.runtime.auth import ApiKeyEntry, ApiKeys, ApiKeysFile, hash_key

ADMIN, MANAGER, TECHNICIAN, INTEGRATION = "key-admin", "key-manager", "key-technician", "key-integration"
REQUESTER = "key-requester-acme"  # alice of acme
ACME_MANAGER = "key-manager-acme"
ACME_ADMIN = "key-admin-acme"
UMBRELLA_MANAGER = "key-manager-umbrella"
ANN, MARIA = "key-technician-ann", "key-manager-maria"

_ENTRIES = [
    ApiKeyEntry(name="admin", sha256=hash_key(ADMIN), role=Role.ADMIN),
    ApiKeyEntry(name="manager", sha256=hash_key(MANAGER), role=Role.MANAGER),
    ApiKeyEntry(name="technician", sha256=hash_key(TECHNICIAN), role=Role.TECHNICIAN),
    ApiKeyEntry(name="integration", sha256=hash_key(INTEGRATION), role=Role.INTEGRATION),
    ApiKeyEntry(name="alice", sha256=hash_key(REQUESTER), role=Role.REQUESTER, client_id="acme", requester_id="alice"),
    ApiKeyEntry(name="acme-manager", sha256=hash_key(ACME_MANAGER), role=Role.MANAGER, client_id="acme"),
    ApiKeyEntry(name="acme-admin", sha256=hash_key(ACME_ADMIN), role=Role.ADMIN, client_id="acme"),
    ApiKeyEntry(name="umbrella-manager", sha256=hash_key(UMBRELLA_MANAGER), role=Role.MANAGER, client_id="umbrella"),
    ApiKeyEntry(name="ann-laptop", sha256=hash_key(ANN), role=Role.TECHNICIAN, subject="ann"),
    ApiKeyEntry(name="maria", sha256=hash_key(MARIA), role=Role.MANAGER, subject="maria"),
]
TEST_KEYS = ApiKeys(_ENTRIES)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keys_file(path: Path) -> Path:
    """These keys as a service run in its own process reads them (API_KEYS_FILE)."""
    path.write_text(ApiKeysFile(keys=_ENTRIES).model_dump_json())
    return path
