"""A loopback HTTP proxy that fails a share of the requests it carries.

It sits between the SDK and ``prefactor serve`` and, for each request, draws
one of: pass it on, answer 500, answer 429 with ``Retry-After``, reset the
connection before the server sees the request, reset it after the server
answered (the request took effect, its answer is lost), or answer slowly.
Draws come from a seeded ``random.Random``, so a failing run can be replayed.
Upstream errors (a server being restarted) are answered 502.

It speaks just enough HTTP/1.1 for this: requests and responses framed by
``Content-Length``, keep-alive on the client side, one upstream connection
per request.
"""

from __future__ import annotations

import asyncio
import collections
import random
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["FaultProxy", "running_proxy"]

FAULTS = ("pass", "500", "429", "reset_before", "reset_after", "slow")


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One HTTP message: its head (up to the blank line) and its body; ``None`` at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return head, body


def _response(status: int, reason: str, extra: str = "") -> bytes:
    body = b'{"status":"error","code":"injected","message":"injected by the fault proxy"}'
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN: what a crashed peer or a middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """The proxy's state: where it forwards, how it draws faults, what it did."""

    def __init__(self, upstream_port: int, fault_rate: float, seed: int) -> None:
        self.upstream_port = upstream_port
        self.fault_rate = fault_rate
        self._random = random.Random(seed)
        self.counts: collections.Counter[str] = collections.Counter()
        self.port = 0
        self.clients: set[asyncio.StreamWriter] = set()

    def _draw(self) -> str:
        if self._random.random() >= self.fault_rate:
            return "pass"
        return self._random.choice(FAULTS[1:])

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        try:
            writer.write(head + body)
            await writer.drain()
            answer = await _read_message(reader)
        finally:
            writer.close()
            await writer.wait_closed()
        if answer is None:
            raise ConnectionError("upstream closed the connection")
        return answer[0] + answer[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.transport.abort()
        finally:
            self.clients.discard(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await _read_message(reader)
            if request is None:
                writer.close()
                return
            fault = self._draw()
            self.counts[fault] += 1
            if fault == "reset_before":
                _reset(writer)
                return
            if fault == "500":
                writer.write(_response(500, "Internal Server Error"))
            elif fault == "429":
                writer.write(_response(429, "Too Many Requests", "retry-after: 0\r\n"))
            else:
                if fault == "slow":
                    await asyncio.sleep(0.3)
                try:
                    answer = await self._forward(*request)
                except (OSError, asyncio.IncompleteReadError):
                    self.counts["upstream_down"] += 1
                    writer.write(_response(502, "Bad Gateway"))
                else:
                    if fault == "reset_after":
                        _reset(writer)
                        return
                    writer.write(answer)
            await writer.drain()


@contextmanager
def running_proxy(upstream_port: int, *, fault_rate: float, seed: int) -> Iterator[FaultProxy]:
    """Run a :class:`FaultProxy` on a free loopback port in a thread of its own."""
    proxy = FaultProxy(upstream_port, fault_rate, seed)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None

    async def main() -> None:
        nonlocal stop
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        proxy.port = server.sockets[0].getsockname()[1]
        stop = loop.create_future()
        ready.set()
        async with server:
            await stop
            for client in list(proxy.clients):  # keep-alive connections outlive the server
                client.transport.abort()
            await asyncio.sleep(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(lambda: stop is not None and stop.set_result(None))
        thread.join(10)
        loop.close()
