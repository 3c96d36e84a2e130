"""``prefactor._api`` exports what ``__all__`` says, sorted."""

from __future__ import annotations

import prefactor._api


def test_all_is_sorted_and_every_name_exists() -> None:
    names = prefactor._api.__all__
    assert names == sorted(names)
    assert all(hasattr(prefactor._api, name) for name in names)
