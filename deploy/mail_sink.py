"""The local mailbox of `make run`: a real SMTP server (aiosmtpd) that keeps every message it is given as an .eml
file, so what notify sends can be read without a mail account. A message sent again under the same Message-ID
(notify's ids derive from the event and the recipient) overwrites its file: one file per mail.

`python -m deploy.mail_sink --dir .local/mail --port 2525`; open the files with any mail client, or
`python -m deploy.mail_sink --list --dir .local/mail` for recipient, subject and file of each.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP


class Keeper:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw: bytes = envelope.original_content or envelope.content
        headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        message_id = str(headers.get("Message-ID") or "").strip("<> ")
        name = re.sub(r"[^A-Za-z0-9._@-]", "_", message_id)[:200] or f"no-id-{id(envelope)}"
        (self.directory / f"{name}.eml").write_bytes(raw)
        return "250 OK"


def listing(directory: Path) -> list[str]:
    lines = []
    for path in sorted(directory.glob("*.eml"), key=lambda found: found.stat().st_mtime):
        headers = BytesParser(policy=policy.default).parsebytes(path.read_bytes(), headersonly=True)
        lines.append(f"{headers.get('Date', '')}  {headers.get('To', '')}  {headers.get('Subject', '')}  {path}")
    return lines


async def serve(directory: Path, host: str, port: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Keeper(directory), hostname="mail-sink.localhost"), host, port)
    print(f"mail sink on {host}:{port}, keeping messages in {directory}", flush=True)
    stop = asyncio.Event()
    for sent in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sent, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(".local/mail"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--list", action="store_true", help="list the kept messages and exit")
    arguments = parser.parse_args()
    if arguments.list:
        print("\n".join(listing(arguments.dir)) or f"no mail in {arguments.dir}")
        return
    asyncio.run(serve(arguments.dir, arguments.host, arguments.port))


if __name__ == "__main__":
    main()
