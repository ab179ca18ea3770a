"""Configuration of the reporting service, from environment variables only."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from ticketstream_shared.runtime.settings import GroupMemberSettings


def _default_migrations() -> Path:
    """deploy/clickhouse (the numbered SQL migrations applied at start-up) of the source tree this module runs
    from; for an installed package, as in the image, deploy/clickhouse under the working directory."""
    checkout = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"
    return checkout if checkout.is_dir() else Path("deploy/clickhouse").resolve()


class ReportingSettings(GroupMemberSettings):
    http_port: int = Field(default=8004, ge=1, le=65535)

    clickhouse_url: str | None = Field(
        default=None,
        description="A ClickHouse server, e.g. http://clickhouse:8123; unset means the embedded chDB at CHDB_PATH.",
    )
    chdb_path: Path = Field(
        default=Path(".local/clickhouse"),
        description="Directory of the embedded chDB engine; relative paths resolve against the working directory.",
    )
    clickhouse_migrations_dir: Path = Field(default_factory=_default_migrations)

    consumer_group: str = Field(default="reporting", min_length=1)
    batch_size: int = Field(default=20_000, ge=1, description="Events per insert, at most.")
    #: An event is in the reports within about this much plus one insert (the freshness bar is a p99 of 1 s);
    #: under load batches fill up to batch_size before it runs out.
    batch_max_wait_seconds: float = Field(
        default=0.1, gt=0, description="How long the first event of a batch waits for company before the insert."
    )

    @field_validator("clickhouse_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("CLICKHOUSE_URL must be an http:// or https:// URL of a ClickHouse server")
        return url

    @field_validator("chdb_path")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @field_validator("clickhouse_migrations_dir")
    @classmethod
    def _has_migrations(cls, path: Path) -> Path:
        if not any(path.glob("*.sql")):
            raise ValueError(f"no ClickHouse migrations (*.sql) in {path}")
        return path

    def clickhouse_dsn(self) -> str:
        """What clickhouse_connect.get_client(dsn=...) opens: the server if configured, else chDB on disk."""
        return self.clickhouse_url or f"chdb://{self.chdb_path}"
