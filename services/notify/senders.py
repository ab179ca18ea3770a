"""Sending one delivery once: a signed POST to a webhook, or a mail over SMTP. Each attempt ends in a Result;
whether and when to try again is the dispatcher's business."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import aiosmtplib

from ticketstream_shared.contract.notify import DeliveryScheduled, MailMessage, SealedMail, WebhookPost
from ticketstream_shared.contract.personal import is_sealed
from ticketstream_shared.privacy import ERASED, KeyNotYetRead
from ticketstream_shared.runtime.data_keys import PLAIN, PersonalData
from ticketstream_shared.sealing import SecretBox, SecretNotOpened

from .addresses import AddressRefused, AllowedHosts
from .directory import Directory
from .mails import as_email
from .settings import NotifySettings

USER_AGENT = "ticketstream-notify/1"
CHECK_AGAIN_S = 30.0


@dataclass(frozen=True)
class Result:
    delivered: bool
    latency_ms: float
    status_code: int | None = None
    error: str | None = None
    #: No later attempt can succeed where this one failed (the webhook is gone, the mailbox does not exist).
    final: bool = False


def _took(started: float, **outcome: Any) -> Result:
    """The outcome of an attempt begun at `started` (time.perf_counter())."""
    return Result(latency_ms=round((time.perf_counter() - started) * 1000, 2), **outcome)


def signature(secret: str, timestamp: str, body: str) -> str:
    """X-Ticketstream-Signature: HMAC-SHA256 of '<timestamp>.<body>' with the webhook's secret."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookSender:
    """POSTs with aiohttp (a third of httpx's CPU per request here; it also sets TCP_NODELAY, without which each
    request's body would wait for the receiver's delayed ACK of its headers). Connections are kept alive per
    endpoint; redirects are never followed."""

    def __init__(self, settings: NotifySettings, directory: Directory, box: SecretBox, allowed: AllowedHosts) -> None:
        self._settings = settings
        self._directory = directory
        self._box = box
        self._allowed = allowed
        self._session: aiohttp.ClientSession | None = None
        #: Host -> until when its addresses are known to be allowed: resolving before every delivery would cost a
        #: thread hop each; a name that starts pointing inside is refused within CHECK_AGAIN_S.
        self._checked: dict[str, float] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            settings = self._settings
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=int(CHECK_AGAIN_S)),
                timeout=aiohttp.ClientTimeout(
                    sock_connect=settings.webhook_connect_timeout_s, sock_read=settings.webhook_read_timeout_s
                ),
                headers={"User-Agent": USER_AGENT},
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _check(self, url: str, host: str) -> None:
        if self._checked.get(host, 0.0) > time.monotonic():
            return
        await self._allowed.check_resolved(url)
        self._checked[host] = time.monotonic() + CHECK_AGAIN_S

    async def send(self, delivery: DeliveryScheduled) -> Result:
        started = time.perf_counter()

        webhook = self._directory.webhooks.get(delivery.target)
        if webhook is None:
            return _took(started, delivered=False, error="the webhook was removed", final=True)
        if not webhook.data.active:
            return _took(started, delivered=False, error="the webhook was deactivated", final=True)
        assert isinstance(delivery.content, WebhookPost)
        url = str(webhook.data.url)
        try:
            await self._check(url, webhook.data.url.host or "")
            secret = self._box.open(webhook.data.sealed_secret, webhook.webhook_id)
        except AddressRefused as refused:
            return _took(started, delivered=False, error=str(refused))
        except SecretNotOpened as error:
            return _took(started, delivered=False, error=f"cannot sign: {error}", final=True)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Ticketstream-Event-Id": delivery.source_event_id,
            "X-Ticketstream-Event-Type": delivery.source_event_type,
            "X-Ticketstream-Delivery-Id": delivery.delivery_id,
            "X-Ticketstream-Timestamp": timestamp,
            "X-Ticketstream-Signature": signature(secret, timestamp, delivery.content.body),
        }
        try:
            async with self._client().post(
                url, data=delivery.content.body.encode(), headers=headers, allow_redirects=False
            ) as answer:
                await answer.read()  # the connection goes back to the pool only once the answer is read
                status = answer.status
        except TimeoutError as error:
            return _took(started, delivered=False, error=f"no answer in time ({type(error).__name__})")
        except aiohttp.ClientError as error:
            return _took(started, delivered=False, error=f"{type(error).__name__}: {str(error)[:200]}")
        if 200 <= status < 300:
            return _took(started, delivered=True, status_code=status)
        why = "redirects are not followed" if 300 <= status < 400 else "the receiver did not accept it"
        return _took(started, delivered=False, status_code=status, error=f"HTTP {status}: {why}")


class MailSender:
    def __init__(self, settings: NotifySettings, personal: PersonalData = PLAIN) -> None:
        """`personal`: opens a mail sealed on notify.deliveries."""
        self._settings = settings
        self._personal = personal

    async def send(self, delivery: DeliveryScheduled) -> Result:
        settings = self._settings
        started = time.perf_counter()
        content = delivery.content
        if isinstance(content, SealedMail):
            try:
                opened = await self._personal.open(content.sealed)
            except KeyNotYetRead as error:
                return _took(started, delivered=False, error=str(error))
            if opened == ERASED:
                erased = "its recipient or someone it quotes was erased"
                return _took(started, delivered=False, error=erased, final=True)
            if is_sealed(opened):
                unopened = "sealed under a key notify does not open (no master key, or another deployment's)"
                return _took(started, delivered=False, error=unopened, final=True)
            content = MailMessage.model_validate_json(opened)
        assert isinstance(content, MailMessage)
        try:
            message = as_email(content, settings.mail_from, delivery.occurred_at)
        except (ValueError, UnicodeError) as error:  # written before the address rules of today
            return _took(started, delivered=False, error=f"cannot be written as a mail: {error}"[:300], final=True)
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                start_tls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                timeout=settings.smtp_timeout_s,
            )
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused) as error:
            # 5xx: the server will never take this mail (no such mailbox, refused); 4xx: later, perhaps.
            refused = error.recipients[0] if isinstance(error, aiosmtplib.SMTPRecipientsRefused) else error
            return _took(
                started,
                delivered=False,
                status_code=refused.code,
                error=_unaddressed(f"SMTP {refused.code}: {refused.message}", content.to)[:300],
                final=500 <= refused.code < 600,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            reason = _unaddressed(f"{type(error).__name__}: {error}", content.to)
            return _took(started, delivered=False, error=reason[:200])
        return _took(started, delivered=True, status_code=250)


def _unaddressed(reason: str, address: str) -> str:
    """An SMTP server's reason without the recipient's address, which it often repeats: the reason is kept on
    notify.deliveries, where no address is in plain text."""
    return re.sub(re.escape(address), "<the recipient>", reason, flags=re.IGNORECASE)
