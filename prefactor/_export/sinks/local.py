"""The embedded destination: batches applied to a SQLite file through the server's own store."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from operator import itemgetter
from pathlib import Path

from prefactor._export.base import TransientExportError
from prefactor._export.sinks.bulk import BulkRequestError, BulkSink, Output
from prefactor._records import JSONDict
from prefactor.server.store import ApiProblem, Store

__all__ = ["LocalSink"]

# Stores opened before a fork: the child must neither use nor close the
# parent's SQLite connection, so it keeps them referenced and opens its own.
_inherited: list[Store] = []


class LocalSink(BulkSink[JSONDict]):
    """Applies each batch with :meth:`Store.bulk` on a local SQLite file.

    The store is the one ``prefactor serve`` uses, so the same rules apply as
    over HTTP, and the server can show what this sink wrote. The file and its
    parent directories are created on the first export.

    Args:
        path: the database file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        # The item itself. Encoded all the same (by the bulk sink), so that a value the API
        # could not be sent is set aside here too: the store would refuse it one field at a time.
        super().__init__(itemgetter(0))
        self._path = Path(path)
        self._store: Store | None = None
        self._pid = 0

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def _open(self) -> Store:
        if self._store is not None and self._pid == os.getpid():
            return self._store
        if self._store is not None:
            _inherited.append(self._store)
        self._store = Store(self._path)
        self._pid = os.getpid()
        return self._store

    async def _bulk(self, items: list[JSONDict], keys: list[str]) -> Mapping[str, Output]:
        # The items name their keys themselves. Runs on the exporter's own loop: the store
        # serialises writers anyway.
        try:
            answer = self._open().bulk({"items": items}, details=False)
        except ApiProblem as problem:
            raise BulkRequestError(
                problem.status, problem.code, problem.message, problem.errors
            ) from None
        except sqlite3.OperationalError as exc:  # locked by another process, disk full...
            raise TransientExportError(f"SQLite: {exc}") from None
        outputs: Mapping[str, Output] = answer["outputs"]
        return outputs

    async def _single(self, item: JSONDict) -> Output:
        # The store knows every item type, so a one-item bulk is its single endpoint.
        outputs = await self._bulk([item], [item["idempotency_key"]])
        output = outputs.get(item["idempotency_key"])
        if output is None:
            raise TransientExportError("the store gave no output for the item")
        return output

    async def aclose(self) -> None:
        """Close the database (only a store this process opened)."""
        store, self._store = self._store, None
        if store is not None and self._pid == os.getpid():
            store.close()

    def __repr__(self) -> str:
        return f"LocalSink({str(self._path)!r})"
