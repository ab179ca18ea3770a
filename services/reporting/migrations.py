"""Numbered SQL migrations (deploy/clickhouse/NNN_name.sql), applied in order, each once.

A migration's statements are written to be repeatable (IF NOT EXISTS): if the service dies between a statement and
the record of the migration, or two replicas start at once, running them again does no harm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

_FILE_NAME = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+)\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|$)")

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """The statements of a file, one per `;` at the end of a line; ClickHouse runs one statement per call."""
    statements = []
    for chunk in _STATEMENT_END.split(sql):
        code = [line for line in chunk.splitlines() if line.strip() and not line.strip().startswith("--")]
        if code:
            statements.append(chunk.strip())
    return tuple(statements)


def read_migrations(directory: Path) -> list[Migration]:
    """Every migration in `directory`, in version order; a stray or duplicate file stops the start-up."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: a migration file is named NNN_lowercase_name.sql")
        version = int(match["version"])
        if version in migrations:
            raise ValueError(f"{path.name}: version {version} is taken by {migrations[version].name}")
        migrations[version] = Migration(version, path.stem, split_statements(path.read_text()))
    return [migrations[version] for version in sorted(migrations)]


def apply_migrations(client: Client, migrations: list[Migration]) -> list[str]:
    """Apply those not yet recorded in schema_migrations; returns the names applied now."""
    client.command(_LEDGER)
    applied = {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}
    done = []
    for migration in migrations:
        if migration.version in applied:
            continue
        for statement in migration.statements:
            client.command(statement)
        client.insert("schema_migrations", [(migration.version, migration.name)], column_names=("version", "name"))
        done.append(migration.name)
    return done
