"""A span's whole cost: the process's CPU time, caller and exporter together, against OpenTelemetry.

Run from the repository root:

    python benchmarks/bench_allin.py [--spans 20000] [--roots 3000] [--rounds 5]
                                     [--shapes nested root] [--backends http embedded ...]

What one sample measures: ``time.process_time()`` (every thread of the
process) from the first call to the end of ``flush()``, divided by the calls
made; the calling thread's own CPU time over the calls alone is the caller's
share. Each sample is a fresh subprocess that imports, configures, warms up
(a small run, flushed), then measures one run; the rounds alternate the
variants so that every variant sees the same machine.

Nested spans (``nested``): an ``@agent`` run making ``--spans`` nested
``@traced`` calls of a four-argument function, against an OpenTelemetry root
span around as many calls of the same function decorated with
``start_as_current_span``. Root calls (``root``): ``--roots`` calls of the
``@traced`` function outside any agent, each its own instance (register,
start, span, finish), against as many OpenTelemetry root spans.

Backends:
  http      prefactor to ``prefactor serve`` (a subprocess on a free loopback
            port with a temporary SQLite database; its CPU is not counted)
  embedded  prefactor to the embedded store (a temporary SQLite file), whose
            writer process (the default) applies the batches; its CPU is
            reported beside the agent's, as ``writer µs``
  inline    the same, with ``embedded_writer="inline"``: the exporter's thread
            applies the batches, in the agent's process
  otel      the OpenTelemetry SDK, ``BatchSpanProcessor`` and the OTLP/HTTP
            protobuf exporter, to a receiver in another process that counts
            the spans and answers 200

Every sample is verified: the spans it made are read back from the store
(or counted by the receiver), and a sample that lost any fails the run.

The garbage collector's collections per 1,000 calls are counted over the
same span as the all-in CPU (``gc.callbacks``): every container a span keeps
alive, in the caller's path or the exporter's, brings the next one nearer.

Targets (issue 15): nested all-in, ours/otel <= 0.33 (http and embedded);
root all-in, ours/otel <= 0.67.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, ClassVar

TOKEN = "bench-token-0123456789"  # bench_pipeline.Served's
BACKENDS = ("http", "embedded", "inline", "otel")
SHAPES = ("nested", "root")
WARM_UP = 200


def work(model: str, prompt: str, temperature: float, max_tokens: int) -> str:
    return prompt


def call(fn: Callable[..., object], calls: int) -> None:
    """``calls`` calls of ``fn``, a decorated :func:`work`."""
    for _ in range(calls):
        fn("gpt-4o", "Summarise the report", 0.2, 256)


# --- the helper processes ---------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """Takes OTLP/HTTP protobuf trace requests, counts their spans, answers 200.

    Spans are counted by their resource's ``service.name``, so that senders
    running at once are told apart; ``GET /<service.name>`` answers the count.
    """

    protocol_version = "HTTP/1.1"  # keep-alive, as a collector would
    spans: ClassVar[Counter[str]] = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            names = [
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            ]
            count = sum(len(scope.spans) for scope in resource.scope_spans)
            with _Receiver.lock:
                _Receiver.spans[names[0] if names else ""] += count
        self._answer(b"")

    def do_GET(self) -> None:
        with _Receiver.lock:
            count = _Receiver.spans[self.path.lstrip("/")]
        self._answer(str(count).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _receive(conn: Connection) -> None:
    """Run the discarding OTLP receiver on a free loopback port; send its port through ``conn``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    conn.send(server.server_address[1])
    server.serve_forever()


@contextmanager
def helpers(tmp: Path) -> Iterator[dict[str, str]]:
    """``prefactor serve`` and the OTLP receiver, for the whole run."""
    from bench_pipeline import Served  # the parent's only: samples import nothing extra

    serve_db = tmp / "served.db"
    served = Served(serve_db)
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    receiver = context.Process(target=_receive, args=(theirs,), daemon=True)
    receiver.start()
    try:
        port = ours.recv()
        yield {
            "serve": served.url,
            "serve_db": str(serve_db),
            "otlp": f"http://127.0.0.1:{port}",
        }
    finally:
        receiver.terminate()
        receiver.join(10)
        served.close()


# --- one sample, in its own process -----------------------------------------------------------


def _measure(run: Callable[[int], object], flush: Callable[[], object], n: int) -> dict[str, float]:
    """Warm up, then CPU per call of ``run(n)``: all-in (until ``flush`` returns) and caller's.

    Also counts the garbage collector's collections of each generation over
    the same span (``gc.callbacks``; the process's settings are left alone).
    """
    run(WARM_UP)
    flush()
    gc.collect()
    collections = [0, 0, 0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collections[info["generation"]] += 1

    gc.callbacks.append(collected)
    children = _children_cpu()
    cpu, own = time.process_time_ns(), time.thread_time_ns()
    run(n)
    called = time.thread_time_ns()
    flush()
    done = time.process_time_ns()
    children = _children_cpu() - children
    gc.callbacks.remove(collected)
    out = {
        "allin": (done - cpu) / n / 1000,
        "caller": (called - own) / n / 1000,
        "writer": children / n * 1e6,
    }
    for generation, count in enumerate(collections):
        out[f"gc{generation}"] = count * 1000 / n
    return out


def _children_cpu() -> float:
    """CPU seconds so far of this process's live children (the embedded store's writer), Linux."""
    me, total = str(os.getpid()), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if fields[1] == me:  # the parent's pid; utime and stime follow
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _stored(db: str, agent_id: str) -> tuple[int, int]:
    """(instances, complete spans) of ``agent_id`` in the store at ``db``, read back."""
    from prefactor.server.store import Store

    store = Store(db)
    try:
        ids: list[str] = []
        while True:
            page = store.list_instances(agent_id=agent_id, offset=len(ids), page_size=1000)
            ids += [summary["id"] for summary in page["summaries"]]
            if len(page["summaries"]) < 1000:
                break
        spans = 0
        for instance_id in ids:
            offset = 0
            while True:
                page = store.list_spans(agent_instance_id=instance_id, offset=offset)
                spans += sum(s["status"] == "complete" for s in page["summaries"])
                offset += len(page["summaries"])
                if len(page["summaries"]) < 1000:
                    break
        return len(ids), spans
    finally:
        store.close()


Run = Callable[[int], object]
Variant = tuple[Run, Callable[[], object], Callable[[], int]]


def _prefactor(backend: str, shape: str, where: dict[str, str]) -> Variant:
    import prefactor

    if backend == "http":
        prefactor.configure(api_url=where["serve"], api_token=TOKEN, agent_id=where["agent_id"])
    else:
        writer = "inline" if backend == "inline" else "process"
        prefactor.configure(db_path=where["db"], agent_id=where["agent_id"], embedded_writer=writer)
    traced_work = prefactor.traced(work)

    @prefactor.agent
    def run_agent(calls: int) -> None:
        call(traced_work, calls)

    def run_roots(calls: int) -> None:
        call(traced_work, calls)

    def flush() -> None:
        if not prefactor.flush(300):
            raise RuntimeError("flush timed out")

    def close() -> int:
        lost: int = sum(prefactor.stats()["dropped"].values())
        prefactor.shutdown()
        return lost

    return (run_agent if shape == "nested" else run_roots), flush, close


def _otel(shape: str, where: dict[str, str]) -> Variant:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The receiver counts spans by service name: this run's agent id.
    provider = TracerProvider(resource=Resource.create({"service.name": where["agent_id"]}))
    exporter = OTLPSpanExporter(endpoint=f"{where['otlp']}/v1/traces")
    # A queue that holds the whole run: nothing may be dropped (ours holds 100,000).
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=int(where["queue"])))
    tracer = provider.get_tracer("bench")
    otel_work = tracer.start_as_current_span("work")(work)

    def run_agent(calls: int) -> None:
        with tracer.start_as_current_span("agent"):
            call(otel_work, calls)

    def run_roots(calls: int) -> None:
        call(otel_work, calls)

    def flush() -> None:
        if not provider.force_flush(300_000):
            raise RuntimeError("force_flush timed out")

    def close() -> int:
        provider.shutdown()
        return 0  # its queue holds the whole run: a span lost would show in the count

    return (run_agent if shape == "nested" else run_roots), flush, close


def build(backend: str, shape: str, where: dict[str, str]) -> Variant:
    """One variant, configured in this process: its ``run(calls)``, ``flush()`` and ``close()``.

    ``close()`` shuts the tracer down and answers how many records it dropped.

    ``where`` names the helpers (see :func:`helpers`), the embedded store's
    ``db``, the ``agent_id`` to trace as and, for OpenTelemetry, the span
    ``queue`` size that holds the whole run.
    """
    if backend == "otel":
        return _otel(shape, where)
    return _prefactor(backend, shape, where)


def verify(
    backend: str, shape: str, calls: int, runs: int, where: dict[str, str]
) -> dict[str, int]:
    """What should have arrived and what did, for ``calls`` calls made in ``runs`` runs.

    A nested run adds its agent span; a root call is also its instance. Read
    back from the store, or from the receiver's count for the run's agent id.
    """
    if backend == "otel":
        import httpx

        stored = int(httpx.get(f"{where['otlp']}/{where['agent_id']}").text)
        return {"expected": calls + (runs if shape == "nested" else 0), "stored": stored}
    db = where["serve_db"] if backend == "http" else where["db"]  # embedded, inline
    instances, spans = _stored(db, where["agent_id"])
    if shape == "nested":
        return {"expected": calls + runs, "stored": spans}
    return {"expected": 2 * calls, "stored": instances + spans}


def sample(backend: str, shape: str, n: int, where: dict[str, str]) -> dict[str, float]:
    """One sample in this process (the child's side): measured, then verified."""
    where = {**where, "agent_id": f"bench-{backend}-{shape}-{os.getpid()}"}
    where["queue"] = str(max(2048, 2 * n + WARM_UP))
    run, flush, close = build(backend, shape, where)
    out: dict[str, float] = dict(_measure(run, flush, n))
    out["dropped"] = close()
    out.update(verify(backend, shape, n + WARM_UP, 2, where))
    return out


def _child(backend: str, shape: str, n: int, where: dict[str, str]) -> dict[str, float]:
    """One sample in a fresh subprocess."""
    args = ["--child", backend, shape, str(n), json.dumps(where)]
    result = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False, timeout=600
    )
    if result.returncode != 0:
        raise RuntimeError(f"{backend}/{shape} failed:\n{result.stdout}{result.stderr}")
    out: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    if out["stored"] != out["expected"] or out["dropped"]:
        raise RuntimeError(f"{backend}/{shape} lost spans: {out}")
    return out


# --- the run ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000, help="nested calls per sample")
    parser.add_argument("--roots", type=int, default=3_000, help="root calls per sample")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=BACKENDS,
        default=list(BACKENDS),
        help="OpenTelemetry is always measured: every ratio is against it",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        backend, shape, n, where = args.child
        print(json.dumps(sample(backend, shape, int(n), json.loads(where))))
        return

    sizes = {"nested": args.spans, "root": args.roots}
    shapes = [shape for shape in SHAPES if shape in args.shapes]
    backends = [b for b in BACKENDS if b in args.backends or b == "otel"]
    variants = [(backend, shape) for shape in shapes for backend in backends]
    results: dict[tuple[str, str], list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp, helpers(Path(tmp)) as where:
        for index in range(args.rounds):
            # Rotate the order each round: no variant always follows the same one.
            for backend, shape in (
                variants[index % len(variants) :] + variants[: index % len(variants)]
            ):
                db = str(Path(tmp) / f"embedded-{index}-{shape}.db")
                out = _child(backend, shape, sizes[shape], {**where, "db": db})
                results[backend, shape].append(out)

    def median(backend: str, shape: str, key: str) -> float:
        return statistics.median(r[key] for r in results[backend, shape])

    print(
        f"all-in CPU per span (process_time, every thread, first call to end of flush);"
        f" medians of {args.rounds} alternating rounds"
    )
    ratio = f"{'ours/otel':>11}"
    print(
        f"{'variant':<18}{'all-in µs':>10}{ratio}{'caller µs':>11}{ratio}"
        f"{'writer µs':>11}{'with it':>9}  spans"
    )
    for shape in shapes:
        otel_allin, otel_caller = median("otel", shape, "allin"), median("otel", shape, "caller")
        for backend in backends:
            allin, caller = median(backend, shape, "allin"), median(backend, shape, "caller")
            stored = int(results[backend, shape][-1]["stored"])
            writer = ""
            if backend == "embedded":  # the writer process's CPU, and the ratio counting it
                cpu = median(backend, shape, "writer")
                writer = f"{cpu:>11.2f}{(allin + cpu) / otel_allin:>9.2f}"
            print(
                f"{shape + ' ' + backend:<18}{allin:>10.2f}{allin / otel_allin:>11.2f}"
                f"{caller:>11.2f}{caller / otel_caller:>11.2f}{writer:>20}  {stored:,} verified"
            )
    print(f"garbage collections per 1,000 calls (medians): {'gen0':>8}{'gen1':>8}{'gen2':>8}")
    for shape in shapes:
        for backend in backends:
            counts = "".join(f"{median(backend, shape, f'gc{g}'):>8.2f}" for g in range(3))
            print(f"{'gc ' + shape + ' ' + backend:<47}{counts}")
    print(
        f"nested: {args.spans:,} @traced calls in one @agent run per sample;"
        f" root: {args.roots:,} calls, each its own instance"
    )
    print(
        "targets: nested all-in ours/otel <= 0.33 (http, embedded); root all-in ours/otel <= 0.67"
    )


if __name__ == "__main__":
    main()
