"""PFIDs, the platform's identifier format, made on the client in about a microsecond.

A PFID is 32 lowercase Crockford base-32 characters: ten for a 48-bit
millisecond timestamp, six for a 30-bit partition and sixteen for 80 random
bits. Each part is encoded on its own, so the head (timestamp and partition) can be cached for
the millisecond; the tail is a sequence number whose upper characters change
once per 1,024 IDs, and whose last two come from a table of every
two-character chunk.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import random
import re
import time
import uuid

__all__ = [
    "PFID_PATTERN",
    "SEQUENCE",
    "generate_idempotency_key",
    "generate_pfid",
    "is_pfid",
    "partition_for",
    "pfid_at",
    "pfid_from_parts",
    "pfid_timestamp_ms",
    "validate_idempotency_key",
]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
# Every 10-bit value as its two base-32 characters.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]

PFID_PATTERN = re.compile(r"^[0-7][0-9abcdefghjkmnpqrstvwxyz]{31}$")

_MAX_TIMESTAMP = (1 << 48) - 1
_MAX_PARTITION = (1 << 30) - 1
_MAX_RANDOM = (1 << 80) - 1


def _encode(value: int, chars: int) -> str:
    out = []
    for _ in range(chars):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def pfid_from_parts(timestamp_ms: int, partition: int, randomness: int) -> str:
    """Build a PFID from its three parts (the slow, obviously correct path).

    Raises:
        ValueError: a part is out of its range.
    """
    if not 0 <= timestamp_ms <= _MAX_TIMESTAMP:
        raise ValueError(f"timestamp out of range: {timestamp_ms}")
    if not 0 <= partition <= _MAX_PARTITION:
        raise ValueError(f"partition out of range: {partition}")
    if not 0 <= randomness <= _MAX_RANDOM:
        raise ValueError(f"randomness out of range: {randomness}")
    return _encode(timestamp_ms, 10) + _encode(partition, 6) + _encode(randomness, 16)


@functools.lru_cache(maxsize=256)
def partition_for(key: str) -> int:
    """A stable 30-bit partition derived from a key such as an agent id.

    Memoised: every root call's instance asks for its agent's partition.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & _MAX_PARTITION


def is_pfid(value: object) -> bool:
    """Whether ``value`` is a well-formed PFID string."""
    return isinstance(value, str) and PFID_PATTERN.match(value) is not None


def pfid_timestamp_ms(pfid: str) -> int:
    """The millisecond timestamp encoded in a PFID."""
    if not is_pfid(pfid):
        raise ValueError("not a PFID")
    value = 0
    for ch in pfid[:10]:
        value = value * 32 + _DECODE[ch]
    return value


class _Sequence:
    """The process's ID sequence: where each ID's 80-bit tail comes from.

    A tail is a number of this sequence: a random 40-bit process prefix, drawn
    again after ``fork``, above a 40-bit counter that starts at a random value.
    IDs never repeat within a process, and two processes share a prefix with
    probability 2**-40. A PFID is then a pure function of its partition, its
    clock reading and its sequence number (:func:`pfid_at`): the caller's path
    may take a number now and leave the encoding to whoever first needs the
    string, in any thread, and every thread gets the same one.
    """

    __slots__ = ("counter",)

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.reseed()

    def reseed(self) -> None:
        rng = random.SystemRandom()
        self.counter = itertools.count(rng.getrandbits(40) << 40 | rng.getrandbits(40))


SEQUENCE = _Sequence()
"""``next(SEQUENCE.counter)`` is a fresh sequence number (about 50 ns, thread-safe)."""

# A child process must not continue its parent's sequence.
os.register_at_fork(after_in_child=SEQUENCE.reseed)

# The encoded head (timestamp and partition) per partition, for its latest
# millisecond, and the tail's upper 14 characters for the latest 1,024-number
# block. Threads racing on either each store a correct entry for their own key.
_heads: dict[int, tuple[int, str]] = {}
_middle: tuple[int, str] = (-1, "")


def pfid_at(partition: int, now_ns: int, seq: int) -> str:
    """The PFID of sequence number ``seq`` taken at ``now_ns`` (epoch ns) for ``partition``.

    About a third of a microsecond: a call encodes only the last two characters.

    Raises:
        ValueError: ``partition`` is out of range.
    """
    global _middle  # noqa: PLW0603 (a one-entry cache)
    ms = now_ns // 1_000_000
    head = _heads.get(partition)
    if head is None or head[0] != ms:
        if not 0 <= partition <= _MAX_PARTITION:
            raise ValueError(f"partition out of range: {partition}")
        head = (ms, _encode(ms, 10) + _encode(partition, 6))
        _heads[partition] = head
    seq &= _MAX_RANDOM
    block = seq >> 10
    middle = _middle
    if middle[0] != block:
        # Checked against this call's own block, so a racing thread's entry is never used.
        middle = (block, _encode(block, 14))
        _middle = middle
    return head[1] + middle[1] + _PAIRS[seq & 1023]


def generate_pfid(partition: int = 0, now_ns: int | None = None) -> str:
    """A new PFID for now (or for ``now_ns``, epoch nanoseconds)."""
    return pfid_at(partition, time.time_ns() if now_ns is None else now_ns, next(SEQUENCE.counter))


def generate_idempotency_key() -> str:
    """A fresh idempotency key: a UUID4 string (36 characters), as prefactor-core made them.

    The SDK's own records do not use these: each derives its key from its PFID,
    so a retried item always carries the same key.
    """
    return str(uuid.uuid4())


def validate_idempotency_key(key: str) -> str:
    """Check an idempotency key: a non-empty string of at most 64 characters; return it.

    Raises:
        ValueError: the key is empty, not a string, or longer than 64 characters
            (prefactor-core's messages: ``Idempotency key must not be empty``,
            ``Idempotency key must be at most 64 characters, got 65``).
    """
    if not key:
        raise ValueError("Idempotency key must not be empty")
    if not isinstance(key, str):
        raise ValueError(f"Idempotency key must be a string, got {type(key).__name__}")
    if len(key) > 64:
        raise ValueError(f"Idempotency key must be at most 64 characters, got {len(key)}")
    return key
