"""The settings every service shares; each service subclasses it once, read only from environment variables."""

from __future__ import annotations

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
    state_dir: Path | None = Field(
        default=None,
        description="Where the service keeps its local state store (RocksDB), one directory per process. Unset: a "
        "temporary one, so every start restores from the service's changelog topic.",
    )


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
