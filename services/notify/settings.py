"""The notify service's configuration, from environment variables only."""

from pathlib import Path

from pydantic import Field, SecretStr

from ticketstream_shared.runtime.settings import GroupMemberSettings, PrivacySettings


class NotifySettings(GroupMemberSettings, PrivacySettings):
    http_port: int = Field(default=8005, ge=1, le=65535)
    consumer_group: str = "notify"

    notify_secrets_key_file: Path = Field(
        description="File holding the key (32 bytes, base64) that seals webhook secrets; `python -m notify.sealing "
        "FILE` writes a new one. Older keys, one per line after it, still open what they sealed (rotation)."
    )
    notify_allowed_hosts: str = Field(
        default="",
        description="Comma-separated hosts, IP addresses or networks (CIDR) that webhooks may reach although they "
        "are private, loopback or link-local (refused otherwise).",
    )
    webhook_retry_budget_s: float = Field(default=24 * 3600, gt=0, description="How long a delivery is retried.")
    webhook_first_retry_s: float = Field(default=1.0, gt=0)
    webhook_longest_retry_s: float = Field(default=3600.0, gt=0)
    webhook_connect_timeout_s: float = Field(default=5.0, gt=0)
    webhook_read_timeout_s: float = Field(default=10.0, gt=0)
    webhook_lanes: int = Field(
        default=8, ge=1, le=64, description="Deliveries in flight per endpoint (each ticket keeps to one lane)."
    )
    webhook_max_waiting: int = Field(
        default=50_000,
        ge=1,
        description="Deliveries a target may have waiting (about 1 KB of memory each); beyond, new ones go to the "
        "DLQ of their event's topic, naming the target.",
    )

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    mail_from: str = "IT help desk <help@desk.localhost>"
    mail_domain: str = Field(default="desk.localhost", description="Of Message-IDs; the gateway takes mail for it.")
    portal_url: str = Field(default="http://127.0.0.1:8001", description="Where links in mails point to.")

    mail_gateway_port: int = Field(default=0, ge=0, le=65535, description="Inbound SMTP for mail to ticket; 0: off.")
    mail_gateway_host: str = "127.0.0.1"
    mail_category: str = Field(default="email", description="The category of tickets opened by mail.")
    mail_priority: str = Field(default="P3", pattern=r"^P[1-4]$")
    mail_client_domains: str = Field(
        default="", description="sender-domain=client_id pairs, comma-separated, for people without a client."
    )

    @property
    def client_domains(self) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in self.mail_client_domains.split(",") if "=" in item)
        return {domain.strip().lower(): client.strip() for domain, client in pairs}
