"""Real receivers for notify's tests: an HTTP server that webhooks POST to, and an SMTP server (aiosmtpd) that
mail is sent to. Each runs in a thread of the test process and records what it was given."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from aiosmtpd.controller import Controller

from deploy.kafka.launcher import free_ports


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float


@dataclass
class Receiver:
    """Answers each path with the statuses set for it, in turn (then 200), or holds the answer for `hold_s`."""

    url: str
    requests: list[Received] = field(default_factory=list)
    plans: dict[str, list[int]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    hold_s: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_for(self, path: str) -> int:
        with self.lock:
            if path in self.always:
                return self.always[path]
            plan = self.plans.get(path)
            return plan.pop(0) if plan else 200

    def record(self, received: Received) -> None:
        with self.lock:
            self.requests.append(received)

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [request for request in self.requests if request.path == path]


class _Server(ThreadingHTTPServer):
    # Room for the connections of many lanes at once (http.server's default backlog is 5: a burst of them would be
    # refused by the kernel, and retried, which is not what these tests are about).
    request_queue_size = 128
    daemon_threads = True


@contextmanager
def http_receiver() -> Iterator[Receiver]:
    (port,) = free_ports(1)
    receiver = Receiver(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hold = receiver.hold_s.get(self.path, 0.0)
            if hold:
                time.sleep(hold)  # a slow endpoint, as the service under test meets it
            status = receiver.answer_for(self.path)
            receiver.record(Received(self.path, dict(self.headers.items()), body, status, time.monotonic()))
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", f"{receiver.url}/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = _Server(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, name=f"receiver-{port}", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    """Every message the SMTP server was given, parsed, with its envelope recipients."""

    port: int
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or envelope.content)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [message for recipients, message in self.messages if address in recipients]


M = TypeVar("M", bound=Mailbox)


@contextmanager
def smtp_server(kind: type[M] = Mailbox) -> Iterator[M]:  # type: ignore[assignment]
    """A real SMTP server on a free port, giving every message to a `kind` of Mailbox."""
    (port,) = free_ports(1)
    mailbox = kind(port)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
