"""ClickHouse migrations: numbered files, read in order, split into the statements ClickHouse runs one by one."""

from __future__ import annotations

from pathlib import Path

import pytest

from reporting.migrations import read_migrations, split_statements
from reporting.settings import ReportingSettings


def test_statements_end_with_a_semicolon_at_the_end_of_a_line() -> None:
    sql = """
    -- why this table exists; a comment may hold semicolons
    CREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Null;

    -- trailing comment only
    CREATE TABLE b (x UInt8) ENGINE = Null;
    -- nothing after this
    """

    assert [statement.splitlines()[-1].strip() for statement in split_statements(sql)] == [
        "CREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Null",
        "CREATE TABLE b (x UInt8) ENGINE = Null",
    ]


def test_the_checked_in_migrations_are_read_in_version_order() -> None:
    migrations = read_migrations(ReportingSettings(api_keys_file=Path("keys.json")).clickhouse_migrations_dir)

    assert [migration.version for migration in migrations] == list(range(1, len(migrations) + 1))
    assert all(migration.statements for migration in migrations)
    # repeatable: tables and views are created IF NOT EXISTS, backfills write WHERE NOT EXISTS (rows in the target),
    # columns are dropped IF EXISTS, a setting modified is the same setting twice, and so is a view's query, and a
    # projection materialized again is written again the same
    repeatable = (" NOT EXISTS ", " IF EXISTS ", " MODIFY SETTING ", " MODIFY QUERY", " MATERIALIZE PROJECTION ")
    assert all(any(word in s for word in repeatable) for m in migrations for s in m.statements)


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["001_tickets.sql", "1_worklogs.sql"], "named NNN_lowercase_name.sql"),
        (["001_tickets.sql", "001_worklogs.sql"], "version 1 is taken by 001_tickets"),
    ],
)
def test_a_stray_file_stops_the_start_up(tmp_path: Path, names: list[str], problem: str) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;\n")

    with pytest.raises(ValueError, match=problem):
        read_migrations(tmp_path)
