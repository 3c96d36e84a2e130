import csv
import os
import time
from pathlib import Path

import pfid as pfid_oracle
import pytest

from prefactor._ids import (
    SEQUENCE,
    generate_idempotency_key,
    generate_pfid,
    is_pfid,
    partition_for,
    pfid_at,
    pfid_from_parts,
    pfid_timestamp_ms,
    validate_idempotency_key,
)

FIXTURES = Path(__file__).parent / "data" / "pfid_fixtures.csv"


def _rows() -> list[dict[str, str]]:
    with FIXTURES.open() as fh:
        return list(csv.DictReader(fh))


def test_fixture_file_has_the_platform_vectors() -> None:
    assert len(_rows()) > 1000


@pytest.mark.parametrize("row", _rows()[::7], ids=lambda r: r["pfid"])
def test_pfid_from_parts_matches_platform_vectors(row: dict[str, str]) -> None:
    got = pfid_from_parts(
        int(row["timestamp"]), int(row["partition"]), int(row["randomness_hex"], 16)
    )
    assert got == row["pfid"]


def test_every_platform_vector_matches() -> None:
    mismatches = [
        r["pfid"]
        for r in _rows()
        if pfid_from_parts(int(r["timestamp"]), int(r["partition"]), int(r["randomness_hex"], 16))
        != r["pfid"]
    ]
    assert mismatches == []


def test_generated_pfid_is_well_formed_and_carries_now_and_partition() -> None:
    before = time.time_ns() // 1_000_000
    value = generate_pfid(12345)
    after = time.time_ns() // 1_000_000
    assert is_pfid(value)
    assert before <= pfid_timestamp_ms(value) <= after
    assert value[10:16] == pfid_from_parts(0, 12345, 0)[10:16]


def test_generated_pfid_agrees_with_the_pfid_package_decoder() -> None:
    value = generate_pfid(777)
    # The PyPI implementation is the oracle: it must accept and decode our ids.
    decoded = pfid_oracle.extract_partition(value)
    assert decoded == 777


def test_generated_pfids_are_unique() -> None:
    values = {generate_pfid() for _ in range(50_000)}
    assert len(values) == 50_000


def test_pfids_differ_between_forked_processes() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(w, generate_pfid().encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    child = os.read(r, 64).decode()
    os.close(r)
    assert is_pfid(child)
    assert child[16:] != generate_pfid()[16:]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x" * 32,
        "80000000000000000000000000000000",
        "0" * 31,
        "0" * 33,
        "000000000000000000000000000000il",
        None,
        5,
    ],
)
def test_is_pfid_rejects_malformed_values(bad: object) -> None:
    assert not is_pfid(bad)


@pytest.mark.parametrize(
    ("ts", "part", "rnd"),
    [(-1, 0, 0), (1 << 48, 0, 0), (0, 1 << 30, 0), (0, 0, 1 << 80)],
)
def test_pfid_from_parts_rejects_out_of_range_parts(ts: int, part: int, rnd: int) -> None:
    with pytest.raises(ValueError):
        pfid_from_parts(ts, part, rnd)


def test_partition_is_stable_and_in_range() -> None:
    assert partition_for("my-agent") == partition_for("my-agent")
    assert 0 <= partition_for("my-agent") < 1 << 30


def test_idempotency_keys_are_unique_and_valid() -> None:
    a, b = generate_idempotency_key(), generate_idempotency_key()
    assert a != b
    assert validate_idempotency_key(a) == a


@pytest.mark.parametrize("bad", ["", "k" * 65])
def test_validate_idempotency_key_rejects_bad_keys(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_idempotency_key(bad)


@pytest.mark.parametrize("seq", [0, 1, 1023, 1024, 1025, (1 << 80) - 1, 0xABCDEF0123456789ABCD])
def test_pfid_at_encodes_its_sequence_number_as_the_tail(seq: int) -> None:
    now_ns = 1_764_000_000_123_456_789
    got = pfid_at(4321, now_ns, seq)
    assert got == pfid_from_parts(now_ns // 1_000_000, 4321, seq)


def test_pfid_at_is_a_pure_function_of_its_inputs_across_cache_changes() -> None:
    now_ns = 1_764_000_000_000_000_000
    first = pfid_at(7, now_ns, 5000)
    # Other blocks, partitions and milliseconds in between replace the caches.
    pfid_at(7, now_ns + 10_000_000, 99_999)
    pfid_at(8, now_ns, 1 << 40)
    assert pfid_at(7, now_ns, 5000) == first


def test_generated_pfids_take_consecutive_sequence_numbers() -> None:
    seq = next(SEQUENCE.counter)
    value = generate_pfid(3, 1_764_000_000_000_000_000)
    tail = int(value[16:].translate(_FROM_CROCKFORD), 32)
    # The next number, unless a background thread of an earlier test took a few.
    assert seq < tail <= seq + 100
    assert value == pfid_at(3, 1_764_000_000_000_000_000, tail)


_FROM_CROCKFORD = str.maketrans("abcdefghjkmnpqrstvwxyz", "abcdefghijklmnopqrstuv")
