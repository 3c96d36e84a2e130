"""SQLite's bulk insert: every row lands as given, NULLs included, whatever the row count."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from prefactor.server._sqlite import SqliteDatabase

# Three columns: 333 rows fill a statement; fewer than 9 left over go in one statement,
# more go one row each.
COUNTS = [1, 5, 8, 9, 120, 333, 333 + 4, 333 + 40]


def _rows(count: int) -> list[tuple[object, ...]]:
    return [
        (f"id-{n:04d}", None if n % 2 else f"text {n}", None if n % 3 else "") for n in range(count)
    ]


@pytest.mark.parametrize("count", COUNTS)
def test_inserted_rows_read_back_with_their_nulls(tmp_path: Path, count: int) -> None:
    db = SqliteDatabase(str(tmp_path / "t.db"))
    db.connection.execute("CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT, b TEXT)")
    db.run(True, lambda: db.insert_rows("t", "id, a, b", _rows(count)))
    stored = db.connection.execute("SELECT id, a, b, typeof(a), typeof(b) FROM t ORDER BY id")
    expected = [
        (*row, "null" if row[1] is None else "text", "null" if row[2] is None else "text")
        for row in _rows(count)
    ]
    assert stored.fetchall() == expected
    db.close()


def test_a_null_in_a_not_null_column_is_still_refused(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "t.db"))
    db.connection.execute("CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT NOT NULL)")
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        db.run(True, lambda: db.insert_rows("t", "id, a", [("x", "ok"), ("y", None)]))
    assert db.connection.execute("SELECT count(*) FROM t").fetchone() == (0,)
    db.close()
