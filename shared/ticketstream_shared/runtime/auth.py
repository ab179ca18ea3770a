"""API keys: who is calling, in which role, scoped to which client.

The services read only SHA-256 hashes of the keys (API_KEYS_FILE), so the keys file holds no secret; the
plaintext keys go to the people and systems that call. The file is read again within a second of changing (a key
added or revoked, a Kubernetes Secret updated), without a restart; a file that does not parse is refused, logged,
and the keys in use stay. `python -m ticketstream_shared.runtime.auth DIR` writes
a development pair into DIR: dev-keys.json (role -> key, for people) and api-keys.json (hashes, for services).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from starlette.requests import HTTPConnection

from ticketstream_shared.contract import Actor, Role
from ticketstream_shared.runtime.refusals import Forbidden

log = logging.getLogger(__name__)

#: How often the keys file is looked at for a change (one stat call).
RELOAD_CHECK_S = 1.0


class ApiKeyEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sha256: str
    role: Role
    client_id: str | None = None
    requester_id: str | None = None
    #: The person the key belongs to (a technician's own key, say); a requester's key belongs to its requester.
    #: A technician's key that names its person acts as that person only.
    subject: str | None = None

    @model_validator(mode="after")
    def _one_person(self) -> ApiKeyEntry:
        if self.requester_id is not None and self.subject not in (None, self.requester_id):
            raise ValueError(f"key {self.name}: a requester's key belongs to its requester_id")
        return self


class ApiKeysFile(BaseModel):
    keys: list[ApiKeyEntry]


@dataclass(frozen=True)
class Principal:
    """The caller behind a key. client_id None means every client."""

    name: str
    role: Role
    client_id: str | None = None
    requester_id: str | None = None
    #: The person the key belongs to, if it names one.
    subject: str | None = None

    def may_see_client(self, client_id: str) -> bool:
        return self.client_id is None or self.client_id == client_id

    @property
    def actor(self) -> Actor:
        """This key as the actor of the changes it makes."""
        return Actor(key_name=self.name, role=self.role, subject=self.subject)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The registry of known keys, by hash; when loaded from a file, it follows the file's changes."""

    def __init__(
        self, entries: list[ApiKeyEntry], source: Path | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._use(entries)
        self._source = source
        self._clock = clock
        self._stamp = _stamp(source) if source else None
        self._next_check = clock() + RELOAD_CHECK_S

    @classmethod
    def load(cls, path: Path, clock: Callable[[], float] = time.monotonic) -> ApiKeys:
        """The keys of `path` (fails if it cannot be read: a service does not start without keys)."""
        return cls(ApiKeysFile.model_validate_json(path.read_bytes()).keys, path, clock)

    def identify(self, key: str) -> Principal | None:
        self._follow_the_file()
        return self._by_hash.get(hash_key(key))

    def _use(self, entries: list[ApiKeyEntry]) -> None:
        self._by_hash = {
            entry.sha256: Principal(
                entry.name, entry.role, entry.client_id, entry.requester_id, entry.subject or entry.requester_id
            )
            for entry in entries
        }

    def _follow_the_file(self) -> None:
        if self._source is None or self._clock() < self._next_check:
            return
        self._next_check = self._clock() + RELOAD_CHECK_S
        stamp = _stamp(self._source)
        if stamp == self._stamp:
            return
        try:
            entries = ApiKeysFile.model_validate_json(self._source.read_bytes()).keys
        except (OSError, ValidationError) as error:
            log.error("API keys file refused; the keys in use stay", extra={"error": str(error).splitlines()[0]})
        else:
            self._use(entries)
            log.info("API keys reloaded", extra={"keys": len(entries)})
        self._stamp = stamp  # a refused version is not tried again until the file changes once more


def _stamp(path: Path) -> tuple[int, int] | None:
    """What tells one version of the file from the next (following symlinks, as a Kubernetes Secret swaps them)."""
    try:
        status_ = path.stat()
    except OSError:
        return None
    return status_.st_mtime_ns, status_.st_size


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


#: The cookie a browser signed in to a dashboard carries its key in (HttpOnly, SameSite=Strict): a browser cannot
#: send a bearer header when it navigates.
KEY_COOKIE = "ticketstream_key"


def key_sent(request: HTTPConnection) -> str:
    """The key a request carries: `Authorization: Bearer <key>`, or, from a signed-in browser, the KEY_COOKIE
    cookie; "" for none."""
    header = request.headers.get("authorization", "")
    if not header:
        return request.cookies.get(KEY_COOKIE, "").strip()
    scheme, _, key = header.partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


#: Methods that change nothing: a signed-in browser's key is taken for them whichever page sent them, since a page
#: of another origin cannot read the answer.
_METHODS_THAT_CHANGE_NOTHING = frozenset({"GET", "HEAD", "OPTIONS"})


def from_another_page(request: HTTPConnection) -> bool:
    """Whether a browser sent `request` from a page that is not this service's own: another site's, or a sibling
    host's (SameSite=Strict lets the cookie go with those). Told by the browser's Fetch Metadata (Sec-Fetch-Site);
    from a browser without it, by the Origin it sends with every POST against the Host asked. A request with
    neither came from no browser's page."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host")


def identify(keys: ApiKeys, request: Request) -> Principal:
    """The caller's Principal; 401 without a known key, and 403 for a signed-in browser's key on a request that
    would change something, sent from another site's page (cross-site request forgery)."""
    key = key_sent(request)
    if not key:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    found = keys.identify(key)
    if found is None:
        raise _unauthorized("unknown API key")
    if (
        request.method not in _METHODS_THAT_CHANGE_NOTHING
        and not request.headers.get("authorization")
        and from_another_page(request)
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "a signed-in browser's key acts only from this service's own pages, and this request came from another "
            "site's; nothing was recorded (integrations send 'Authorization: Bearer <key>')",
        )
    return found


def authenticated(keys: ApiKeys) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the caller's Principal, or 401. Async, so FastAPI calls it on the event loop instead
    of hopping to a worker thread for every request (5% of intake's time under load)."""

    async def principal(request: Request) -> Principal:
        return identify(keys, request)

    return principal


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(role.value for role in roles)
        raise Forbidden(f"role {principal.role.value} may not do this ({allowed} may)")


def require_client(principal: Principal, client_id: str) -> None:
    if not principal.may_see_client(client_id):
        raise Forbidden(f"this key is scoped to client {principal.client_id}")


def require_unscoped(principal: Principal, what: str) -> None:
    """`what` is shared by every client (a calendar, the roster, the catalogue): a key scoped to one client may read
    it, not change it, since a change would reach every other client's tickets."""
    if principal.client_id is not None:
        raise Forbidden(
            f"this key is scoped to client {principal.client_id}; {what} is shared by every client, and only a key of "
            "no client changes it"
        )


def require_visible(principal: Principal, client_id: str, requester_id: str | None) -> None:
    """A ticket of `client_id` raised by `requester_id` (a ticket's clocks, its history) is the caller's to see: a
    key scoped to a client sees that client's, and a requester only their own."""
    require_client(principal, client_id)
    if principal.role is Role.REQUESTER and principal.requester_id not in (None, requester_id):
        raise Forbidden("requesters see only their own tickets")


#: The development keys of `make run` (product.md): one per role, the requester scoped to client acme.
DEV_SCOPES: dict[Role, dict[str, str]] = {
    Role.ADMIN: {},
    Role.MANAGER: {},
    Role.TECHNICIAN: {},
    Role.REQUESTER: {"client_id": "acme", "requester_id": "acme-requester"},
    Role.INTEGRATION: {},
}


def write_dev_keys(directory: Path) -> tuple[Path, Path]:
    """Create (once; kept across runs) dev-keys.json and the matching api-keys.json in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    dev_keys_path, api_keys_path = directory / "dev-keys.json", directory / "api-keys.json"
    if dev_keys_path.exists():
        dev_keys = json.loads(dev_keys_path.read_text())
    else:
        dev_keys = {role.value: f"ts_{secrets.token_urlsafe(32)}" for role in DEV_SCOPES}
        dev_keys_path.write_text(json.dumps(dev_keys, indent=2) + "\n")
        dev_keys_path.chmod(0o600)
    entries = [
        ApiKeyEntry(name=f"dev-{role.value}", sha256=hash_key(dev_keys[role.value]), role=role, **scope)
        for role, scope in DEV_SCOPES.items()
    ]
    api_keys_path.write_text(ApiKeysFile(keys=entries).model_dump_json(indent=2) + "\n")
    return dev_keys_path, api_keys_path


if __name__ == "__main__":
    for written in write_dev_keys(Path(sys.argv[1])):
        print(written)
