"""Trace and span ids from our ids, and PFIDs from OTLP ids: both ways deterministic.

Export: a trace id is a 16-byte digest of the instance id and a span id an
8-byte digest of the span id, so a run exported twice is the same trace with
the same spans. Ingest: a PFID is built from the OTLP ids and the span's start
time (its 80 random bits carry the OTLP id), so a request replayed by a
Collector names the same instance and spans again.
"""

from __future__ import annotations

import hashlib

from prefactor._ids import pfid_from_parts

__all__ = ["instance_pfid", "span_id_for", "span_pfid", "trace_id_for"]

_MAX_MS = (1 << 48) - 1
_MAX_PARTITION = (1 << 30) - 1


def _nonzero(digest: bytes) -> bytes:
    # All-zero ids are invalid in OTLP; a digest of all zeros is 2**-64 likely, not impossible.
    return digest if any(digest) else digest[:-1] + b"\x01"


def trace_id_for(instance_id: str) -> bytes:
    """The 16-byte trace id of an instance."""
    return _nonzero(hashlib.blake2b(instance_id.encode(), digest_size=16).digest())


def span_id_for(span_id: str) -> bytes:
    """The 8-byte OTLP span id of one of our span (or instance) ids."""
    return _nonzero(hashlib.blake2b(span_id.encode(), digest_size=8).digest())


def _ms(time_ns: int) -> int:
    return min(max(time_ns // 1_000_000, 0), _MAX_MS)


def instance_pfid(trace_id: bytes, start_ns: int) -> str:
    """The PFID of the instance made for an OTLP trace whose root started at ``start_ns``."""
    value = int.from_bytes(trace_id, "big")
    return pfid_from_parts(_ms(start_ns), (value >> 80) & _MAX_PARTITION, value & ((1 << 80) - 1))


def span_pfid(trace_id: bytes, span_id: bytes, start_ns: int) -> str:
    """The PFID of an ingested OTLP span (its 64-bit id and 16 bits of its trace's)."""
    trace = int.from_bytes(trace_id, "big")
    randomness = int.from_bytes(span_id, "big") << 16 | (trace & 0xFFFF)
    return pfid_from_parts(_ms(start_ns), (trace >> 80) & _MAX_PARTITION, randomness)
