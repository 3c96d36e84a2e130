"""Reading traces back from a store (a file or a database URL) or a server: ``traces``, ``show``.

Everything is read in the API's wire shape (``AgentInstance`` and
``AgentSpan`` as dicts), whichever the source, so a script can treat the
output of :func:`read_instance` and :func:`read_instance_remote` alike.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from prefactor._api.client import PrefactorApiClient
from prefactor._config import HttpClientConfig, PrefactorCoreConfig
from prefactor._render import render_instance, render_instance_line
from prefactor.server._database import is_database_url
from prefactor.server.store import ApiProblem, Store

__all__ = [
    "default_db_path",
    "list_recent",
    "list_recent_remote",
    "read_instance",
    "read_instance_remote",
    "show_instance",
    "show_instance_remote",
    "summary_lines",
]

_SPAN_PAGE = 10_000  # the API's largest page of spans

Run = tuple[dict[str, Any], list[dict[str, Any]]]


def default_db_path() -> Path:
    """The embedded store's file: ``PREFACTOR_DB``, else ``./.prefactor/traces.db``."""
    return PrefactorCoreConfig().resolved_db_path()


def _open(db: str | os.PathLike[str] | None) -> Store:
    """The store at ``db``: a file that must exist, or a database URL."""
    if db is None:
        # Read as text: the configured Path would fold the '//' of a postgresql:// URL.
        env = os.environ.get("PREFACTOR_DB")
        db = env if env and is_database_url(env) else default_db_path()
    if is_database_url(db):
        return Store(db)
    path = Path(db)
    if not path.exists():
        raise FileNotFoundError(f"no trace store at {path} (run an agent first, or pass --db)")
    return Store(path)


def list_recent(
    db: str | os.PathLike[str] | None = None, *, agent_id: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest instances in the store, newest first.

    Raises:
        FileNotFoundError: there is no store file yet.
    """
    store = _open(db)
    try:
        return list(store.list_instances(agent_id=agent_id, page_size=limit)["summaries"])
    finally:
        store.close()


def read_instance(instance_id: str | None = None, db: str | os.PathLike[str] | None = None) -> Run:
    """One instance (the newest when ``instance_id`` is ``None``) and all its spans.

    Raises:
        FileNotFoundError: there is no store file yet.
        LookupError: no such instance.
    """
    store = _open(db)
    try:
        if instance_id is None:
            newest = store.list_instances(page_size=1)["summaries"]
            if not newest:
                raise LookupError("the store holds no agent instance yet")
            instance_id = newest[0]["id"]
        try:
            instance: dict[str, Any] = store.get_instance(instance_id)["details"]
        except ApiProblem:
            raise LookupError(f"no agent instance {instance_id!r} in the store") from None
        spans: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = store.list_spans(
                agent_instance_id=instance_id, offset=offset, page_size=_SPAN_PAGE
            )
            spans.extend(page["summaries"])
            offset = page["pagination"]["next_page_offset"]
        return instance, spans
    finally:
        store.close()


def show_instance(
    instance_id: str | None = None,
    db: str | os.PathLike[str] | None = None,
    *,
    verbose: bool = False,
) -> str:
    """The span tree of one instance (the newest when ``instance_id`` is ``None``).

    Args:
        instance_id: the instance; the newest when ``None``.
        db: the store file; ``PREFACTOR_DB`` or ``./.prefactor/traces.db`` when ``None``.
        verbose: also print every span's params and result.

    Raises:
        FileNotFoundError: there is no store file yet.
        LookupError: no such instance.
    """
    instance, spans = read_instance(instance_id, db)
    return render_instance(instance, spans, verbose=verbose)


def summary_lines(instances: list[dict[str, Any]]) -> list[str]:
    """One line per instance, as ``prefactor traces`` prints them."""
    return [render_instance_line(inst) for inst in instances]


async def _list_remote(
    config: HttpClientConfig, agent_id: str | None, limit: int
) -> list[dict[str, Any]]:
    async with PrefactorApiClient(config) as client:
        listed = await client.list_instances(agent_id=agent_id, page_size=limit)
        return [inst.model_dump(mode="json") for inst in listed.summaries]


async def _read_remote(config: HttpClientConfig, instance_id: str) -> Run:
    async with PrefactorApiClient(config) as client:
        instance = await client.get_instance(instance_id)
        spans: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = await client.list_spans(instance_id, offset=offset, page_size=_SPAN_PAGE)
            spans.extend(s.model_dump(mode="json") for s in page.summaries)
            offset = page.pagination.next_page_offset if page.pagination else None
        return instance.model_dump(mode="json"), spans


def list_recent_remote(
    config: HttpClientConfig, *, agent_id: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest instances on a Prefactor API (of one agent if given), newest first."""
    return asyncio.run(_list_remote(config, agent_id, limit))


def read_instance_remote(config: HttpClientConfig, instance_id: str) -> Run:
    """One instance on a Prefactor API and all its spans."""
    return asyncio.run(_read_remote(config, instance_id))


def show_instance_remote(
    config: HttpClientConfig, instance_id: str, *, verbose: bool = False
) -> str:
    """The span tree of one instance on a Prefactor API (``verbose``: with params and results)."""
    instance, spans = read_instance_remote(config, instance_id)
    return render_instance(instance, spans, verbose=verbose)
