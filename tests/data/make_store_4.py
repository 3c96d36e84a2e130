"""Write ``store-4.db``: a layout-4 store whose span creates used keys derived from span ids.

Layout 4 kept every span create's key in the idempotency table, the SDK's
``{span id}-create`` keys included; layout 5 records those in the span's own
row. The committed file was made with the store at commit 61ee8ba (layout 4):

    git archive 61ee8ba | tar -x -C /tmp/layout4
    PYTHONPATH=/tmp/layout4 python tests/data/make_store_4.py tests/data/store-4.db

The ids, timestamps and bodies are fixed, so a test can send the same items
again and expect them to replay. Running it with a later store writes a file
of that later layout instead.
"""

import sys
from pathlib import Path

from prefactor.server.store import Store

INSTANCE = "01m8yssm9f0000007hfk5fezn7e5w4q8"
DONE_SPAN = "01m8yssm9f0000007hfk5fezn7e5w4q9"
OPEN_SPAN = "01m8yssm9f0000007hfk5fezn7e5w4qa"


def items() -> list[dict[str, object]]:
    """The bulk items the file was written with, as the SDK sends them."""
    return [
        {
            "_type": "agent_spans/create",
            "idempotency_key": f"{DONE_SPAN}-create",
            "id": DONE_SPAN,
            "agent_instance_id": INSTANCE,
            "schema_name": "agent:tool",
            "status": "complete",
            "payload": {"q": "weather"},
            "result_payload": {"ok": True},
            "started_at": "2026-02-09T10:00:01.000000+00:00",
            "finished_at": "2026-02-09T10:00:02.000000+00:00",
        },
        {
            "_type": "agent_spans/create",
            "idempotency_key": f"{OPEN_SPAN}-create",
            "id": OPEN_SPAN,
            "agent_instance_id": INSTANCE,
            "schema_name": "agent:tool",
            "status": "active",
            "payload": {"q": "rain"},
            "started_at": "2026-02-09T10:00:03.000000+00:00",
        },
    ]


if __name__ == "__main__":
    store = Store(Path(sys.argv[1]))
    store.register_instance({"id": INSTANCE, "agent_id": "layout4-agent"})
    store.start_instance(INSTANCE, {"timestamp": "2026-02-09T10:00:00Z"})
    store.bulk({"items": items()})
    store.finish_span(
        OPEN_SPAN,
        {
            "status": "complete",
            "result_payload": {"ok": False},
            "timestamp": "2026-02-09T10:00:04Z",
        },
    )
    store.close()
