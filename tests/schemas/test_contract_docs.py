"""The contract table in the docs is the table in the code."""

from __future__ import annotations

import re
from pathlib import Path

from prefactor._schemas.forms import FORMS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "schemas.md"


def test_the_docs_list_every_row_of_the_contract_as_the_code_has_it() -> None:
    text = PAGE.read_text(encoding="utf-8")
    table = re.search(
        r"<!-- contract-table:start -->\n(.*?)<!-- contract-table:end -->", text, re.S
    )
    assert table is not None
    rows = table.group(1).strip().splitlines()[2:]
    assert rows == [f"| {r.value} | {r.recorded} | {r.schema_text} |" for r in FORMS]
