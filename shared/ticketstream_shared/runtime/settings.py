"""The settings every service shares; each service subclasses it once, read only from environment variables."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach the brokers, securely: every Kafka client of the system is configured from these."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError("SASL needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        return self

    def kafka_client_config(self) -> dict[str, Any]:
        """Connection and security options for every aiokafka client of the service."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if "SSL" in self.kafka_security_protocol:
            from aiokafka.helpers import create_ssl_context

            config["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            )
        if self.kafka_sasl_mechanism:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            config["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return config


class ServiceSettings(KafkaSettings):
    """Fails fast at start-up: a missing or malformed variable stops the service with the variable named."""

    api_keys_file: Path = Field(description="JSON file of API key hashes with their roles (see README).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    http_max_in_flight: int = Field(
        default=32,
        ge=0,
        description="Requests one process carries out at once; the next is refused at once with 503 and "
        "Retry-After (nothing recorded, safe to retry). Bounds the latency of what is admitted when a replica is "
        "offered more than its core can serve. A caller (API key) with few requests in progress (an eighth of the "
        "bound) is admitted past it, into a reserve of a quarter, so one caller's flood does not shut out the others. "
        "0: no bound. Health, readiness and metrics are always answered.",
    )
    http_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="The largest request body a service takes; a larger one is refused with 413 before more of it "
        "is read (nothing recorded). The largest a request of the API can be is a knowledge article (50,000 "
        "characters), well below the default.",
    )
    state_dir: Path | None = Field(
        default=None,
        description="Where the service keeps its local state store (RocksDB), one directory per process. Unset: a "
        "temporary one, so every start restores from the service's changelog topic.",
    )


class GroupMemberSettings(ServiceSettings):
    """For the services whose replicas share a consumer group's partitions and watch each other's presence
    (runtime/presence.py): every service's groups."""

    session_timeout_seconds: float = Field(
        default=10.0,
        ge=1,
        le=300,
        description="How long the group waits for a silent replica before its partitions go to another; their work "
        "waits meanwhile (sla: alarms due; intake: commands on those tickets answer 503). A replica whose process is "
        "gone is removed sooner (PEER_PROBE_SECONDS). The broker's group.min.session.timeout.ms must allow it (6 s by "
        "default).",
    )
    peer_probe_seconds: float = Field(
        default=0.25,
        ge=0,
        le=10,
        description="How often each other replica's presence port is probed (0: never). A replica whose process is "
        "gone (nothing listens on its presence port or its HTTP port) is removed from the group at once, without "
        "waiting for its session timeout; one that does not answer is left to the session timeout.",
    )
    advertised_url: str | None = Field(
        default=None,
        description="How the other replicas reach this one's HTTP API, e.g. http://$(POD_IP):8002. By default "
        "http://<HTTP_HOST>:<HTTP_PORT>, with the host name when listening on every interface.",
    )

    @property
    def own_url(self) -> str:
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        host = socket.gethostname() if self.http_host in ("0.0.0.0", "::") else self.http_host
        return f"http://{host}:{self.http_port}"

    def group_timing(self) -> dict[str, int]:
        """The consumer's session and heartbeat: a heartbeat often enough that a member removed by a peer's watch is
        noticed at once by the others (at most every 250 ms, at least every 100 ms)."""
        session_ms = int(self.session_timeout_seconds * 1000)
        return {"session_timeout_ms": session_ms, "heartbeat_interval_ms": max(min(session_ms // 5, 250), 100)}


class PrivacySettings(BaseSettings):
    """For the services that seal or open people's personal fields (intake, notify, assignment): all of them use the
    same master key."""

    model_config = KafkaSettings.model_config

    privacy_master_key_file: Path | None = Field(
        default=None,
        description="File holding the master key (32 bytes, base64; `python -m notify.sealing FILE` writes one) that "
        "wraps people's data keys on privacy.keys. Older keys, one per line after it, still open what they wrapped. "
        "Unset: personal fields are written in plain text and no one can be erased. Losing it loses every sealed "
        "field.",
    )
