"""The cloud fallback server under load: batching on vs off, server overhead, shedding.

Run from a checkout: ``python -m benchmarks.bench_cloud [--quick] [--json]``. Every
server is a separate process (uvicorn, 127.0.0.1, a free port) so that the load
generator in this process does not share its interpreter; all traffic is loopback, every
phase has a fixed duration, and the servers are stopped at the end.

1. **Batching** — ``POST /v1/vision/faces`` (BlazeFace, a 512×512 JPEG) from 16
   concurrent clients against two servers that differ only in ``batching`` (on: up to 8
   images per model call, 2 ms wait; off: one ``session.run`` per request), run
   interleaved A B A B; throughput ratio per pair, the median reported. Then the same
   for ``POST /v1/embeddings`` (MiniLM FP32, one sentence per request, client *i*
   always sending sentence *i* of 16): ``embedding_batching`` on (up to 8 requests per
   ``session.run``, padded to the longest, 2 ms wait) against off (concurrent
   single-sentence ``session.run`` calls), the same 2 model threads, the same inputs.
   Because the HTTP side (parsing, auth, limits, JSON of 384 floats) costs about as much
   per request as one MiniLM call, the embeddings comparison is also run at the model
   stage, in this process without HTTP: 16 concurrent clients submitting one sentence
   each to the server's :class:`Batcher` and :class:`WorkQueue` (2 threads), against the
   same clients making single-sentence calls on the same queue; the load generator's
   CPU there is its event-loop thread's. Faces get the same model-stage comparison with
   a batch-dynamic copy of the BlazeFace graph (up to 8 images per ``session.run``)
   against single-image runs. Model-stage phases also report this process's CPU time
   per answer (off over on): on a machine shared with other work, throughput swings
   with the neighbours' load, CPU per answer much less. ``--only model-stage`` runs
   just those two comparisons.
2. **Overhead** — one client, sequential requests to a server whose face backend is a
   no-op (``NoopFaces``, named as such): the server's own time (its ``Server-Timing``
   header: auth, limits, body read, multipart parse, image decode, routing, metrics)
   is the overhead on top of a model call; with a 64×64 JPEG (the server's own work)
   and with the 512×512 one (adds about 2 ms of JPEG decoding and a 100 kB upload).
3. **Load** — open-loop requests at twice the throughput measured in (1) against a
   server with a bounded queue and a per-key rate limit at 1.5× that throughput: counts
   of 200/429/503 and any other status (-1: a transport error, -2: no answer within a
   minute), p50/p99, the server's RSS before and after, and ``/healthz`` afterwards.

The load generator's own CPU use (``time.process_time`` over wall time) is reported
with each phase: on a 2-core machine it competes with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["main", "run"]

CLIENTS = 16


@dataclass
class Server:
    """A server process and its base URL and key."""

    process: subprocess.Popen[bytes]
    url: str
    token: str

    def cpu_s(self) -> float:
        """CPU time (user + system) the server process has used so far (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        """Resident memory of the server process (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return -1

    def stop(self) -> None:
        """Terminate it and wait (bounded)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)


@dataclass
class LoadResult:
    """What one load phase saw."""

    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    process_cpu_s: float | None = None
    """Model-stage phases: this whole process's CPU time (every thread), to put beside
    the throughput: on a shared machine CPU per answer is less at the mercy of others."""

    @property
    def ok_per_s(self) -> float:
        """Successful answers per second."""
        return self.statuses[200] / self.seconds

    def percentile(self, q: float) -> float:
        """A percentile of the successful answers' round trips, in ms."""
        if not self.latencies_ms:
            return float("nan")
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, int(q / 100 * len(values)))]

    def to_json(self) -> dict[str, Any]:
        """Counts, rates and percentiles."""
        return {
            "seconds": round(self.seconds, 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "ok_per_s": round(self.ok_per_s, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "server_p50_ms": round(statistics.median(self.server_ms), 3)
            if self.server_ms
            else None,
            "client_cpu_fraction": round(self.client_cpu, 2),
            **(
                {"cpu_ms_per_answer": round(self.process_cpu_s * 1e3 / self.statuses[200], 3)}
                if self.process_cpu_s is not None and self.statuses[200]
                else {}
            ),
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(args: argparse.Namespace) -> None:
    """The server side (run in a child process)."""
    import uvicorn

    from glasses_sdk.cloud import Backends, Deadline, FaceBox, create_app, load_backends
    from glasses_sdk.cloud import load_settings as load

    class NoopFaces:
        """A no-op face backend (a stand-in, for measuring the server alone)."""

        name = "noop-faces"

        def detect(self, images: Sequence[Any], deadline: Deadline) -> list[list[FaceBox]]:
            return [[] for _ in images]

    embeddings = args.task == "embeddings"
    settings = load(
        env={},
        data_dir=Path(args.data_dir),
        port=args.port,
        batching=args.batching == "on" and not embeddings,
        embedding_batching=args.batching == "on" and embeddings,
        batch_max_size=8,
        batch_max_wait_ms=2.0,
        model_threads=2,
        max_queue=args.max_queue,
        backends=("embeddings",) if embeddings else ("faces",),
        required_backends=("embeddings",) if embeddings else ("faces",),
        rate_per_s=1e6,
        burst=1_000_000,
    )
    backends = Backends(faces=NoopFaces()) if args.noop else load_backends(settings)
    uvicorn.run(
        create_app(settings, backends=backends),
        host="127.0.0.1",
        port=args.port,
        log_level="error",
        access_log=False,
    )


def _start(
    data_dir: Path,
    *,
    batching: bool,
    noop: bool = False,
    max_queue: int = 64,
    task: str = "faces",
    **key: Any,
) -> Server:
    import httpx

    from glasses_sdk.cloud import KeyStore

    port = _free_port()
    folder = Path(tempfile.mkdtemp(dir=data_dir))
    command = [
        sys.executable, "-m", "benchmarks.bench_cloud", "--serve",
        "--port", str(port), "--data-dir", str(folder),
        "--batching", "on" if batching else "off", "--max-queue", str(max_queue),
        "--task", task,
    ]  # fmt: skip
    if noop:
        command.append("--noop")
    with KeyStore(folder / "keys.sqlite3") as store:
        token, _ = store.create("bench", **key)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the benchmark server did not start (exit {process.poll()})")
        time.sleep(0.1)
    return Server(process, url, token)


def _jpeg(side: int = 512) -> bytes:
    import cv2

    from glasses_sdk import data

    path = data.photo_path("astronaut")
    image = cv2.imread(str(path))
    if image is None:
        raise RuntimeError(f"OpenCV could not read {path}")
    if side != image.shape[0]:
        image = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(encoded.tobytes())


def _server_ms(headers: Any) -> float | None:
    value = headers.get("server-timing", "")
    if "dur=" in value:
        return float(value.split("dur=")[1].split(",")[0])
    return None


# One sentence per embeddings client (4 to 25 words): client i always sends SENTENCES[i].
SENTENCES = (
    "Where is the nearest pharmacy?",
    "Read the sign above the entrance to me.",
    "What time does the next bus to the airport leave?",
    "Remind me to buy milk and eggs on the way home tonight.",
    "How much is this?",
    "Translate the menu into English, please.",
    "Is this the right platform for the train to Hamburg?",
    "Call my sister when I arrive at the hotel.",
    "What does the warning label on this bottle say about children?",
    "Turn the volume down.",
    "Who painted the picture hanging on the wall in front of me?",
    "Take a photo.",
    "The meeting has been moved to Thursday afternoon at three o'clock in room B.",
    "Find a quiet cafe nearby that is open after nine in the evening and has wifi.",
    "Send a message saying I am running ten minutes late because the traffic is bad.",
    "Summarize the first page of this document in two short sentences for me, "
    "leaving out the tables and the footnotes at the bottom.",
)


async def _closed_loop(
    server: Server, image: bytes, seconds: float, clients: int, *, task: str = "faces"
) -> LoadResult:
    """``clients`` concurrent clients, each sending its next request on an answer."""
    import httpx

    result = LoadResult(seconds)
    headers = {"Authorization": f"Bearer {server.token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:
        end = time.perf_counter() + seconds
        cpu = time.process_time()
        start = time.perf_counter()

        async def worker(i: int) -> None:
            body = {"model": "minilm-l6", "input": SENTENCES[i % len(SENTENCES)]}
            while time.perf_counter() < end:
                t = time.perf_counter()
                if task == "embeddings":
                    r = await client.post("/v1/embeddings", headers=headers, json=body)
                else:
                    r = await client.post(
                        "/v1/vision/faces", headers=headers, files={"image": ("a.jpg", image)}
                    )
                result.statuses[r.status_code] += 1
                if r.status_code == 200:
                    result.latencies_ms.append((time.perf_counter() - t) * 1e3)
                    ms = _server_ms(r.headers)
                    if ms is not None:
                        result.server_ms.append(ms)

        await asyncio.gather(*(worker(i) for i in range(clients)))
        result.seconds = time.perf_counter() - start
        result.client_cpu = (time.process_time() - cpu) / result.seconds
    return result


async def _open_loop(server: Server, image: bytes, rate_per_s: float, seconds: float) -> LoadResult:
    """Requests sent at a fixed rate, whatever the answers (at most 256 in flight)."""
    import httpx

    result = LoadResult(seconds)
    headers = {"Authorization": f"Bearer {server.token}"}
    in_flight = asyncio.Semaphore(256)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as client:

        async def one() -> None:
            async with in_flight:
                t = time.perf_counter()
                try:
                    r = await client.post(
                        "/v1/vision/faces", headers=headers, files={"image": ("a.jpg", image)}
                    )
                except httpx.HTTPError:
                    result.statuses[-1] += 1
                    return
                result.statuses[r.status_code] += 1
                if r.status_code == 200:
                    result.latencies_ms.append((time.perf_counter() - t) * 1e3)

        tasks = []
        cpu = time.process_time()
        start = time.perf_counter()
        n = int(rate_per_s * seconds)
        for i in range(n):
            delay = start + i / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        # Bounded: whatever has not been answered a minute after the last send is cut.
        _, pending = await asyncio.wait(tasks, timeout=60)
        for task in pending:
            task.cancel()
            result.statuses[-2] += 1
        result.seconds = time.perf_counter() - start
        result.client_cpu = (time.process_time() - cpu) / result.seconds
    return result


def _batching_pairs(
    root: Path, image: bytes, phase_s: float, rounds: int, task: str
) -> list[tuple[LoadResult, LoadResult]]:
    """Batching on vs off for ``task``: two servers, warmed up, run interleaved."""
    on = _start(root, batching=True, task=task)
    off = _start(root, batching=False, task=task)
    try:
        for server in (on, off):  # warm-up
            asyncio.run(_closed_loop(server, image, 1.0, CLIENTS, task=task))
        pairs = []
        for _ in range(rounds):
            a = asyncio.run(_closed_loop(on, image, phase_s, CLIENTS, task=task))
            b = asyncio.run(_closed_loop(off, image, phase_s, CLIENTS, task=task))
            pairs.append((a, b))
    finally:
        on.stop()
        off.stop()
    return pairs


def _batching_json(pairs: list[tuple[LoadResult, LoadResult]]) -> dict[str, Any]:
    ratios = [a.ok_per_s / b.ok_per_s for a, b in pairs]
    document = {
        "on": [a.to_json() for a, _ in pairs],
        "off": [b.to_json() for _, b in pairs],
        "ratio_on_over_off": [round(r, 2) for r in ratios],
        "median_ratio": round(statistics.median(ratios), 2),
    }
    cpu = [
        (b.process_cpu_s / b.statuses[200]) / (a.process_cpu_s / a.statuses[200])
        for a, b in pairs
        if a.process_cpu_s and b.process_cpu_s and a.statuses[200] and b.statuses[200]
    ]
    if cpu:
        # CPU per answer, off over on: the gain batching would give on cores of its own.
        document["cpu_per_answer_off_over_on"] = [round(r, 2) for r in cpu]
        document["median_cpu_ratio"] = round(statistics.median(cpu), 2)
    return document


async def _model_stage(
    backend: Any, batching: bool, seconds: float, clients: int = CLIENTS
) -> LoadResult:
    """``clients`` coroutines, each embedding its own sentence again on every answer,
    through the server's batcher (``batching``) or as single calls, on 2 model threads."""
    from glasses_sdk.cloud import Deadline, WorkQueue
    from glasses_sdk.cloud._batching import Batcher

    queue = WorkQueue(2, max_queue=1024)

    def run_batch(items: Sequence[str], deadline: Deadline) -> list[Any]:
        return list(backend.embed(list(items), deadline))

    batcher: Batcher[str, Any] = Batcher(
        run_batch, queue, task="embeddings", max_batch_size=8, max_wait_ms=2.0
    )
    result = LoadResult(seconds)
    end = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        text = SENTENCES[i % len(SENTENCES)]
        while time.perf_counter() < end:
            t = time.perf_counter()
            if batching:
                await batcher.submit(text, Deadline.none())
            else:
                await queue.run(lambda d: backend.embed([text], d)[0], Deadline.none(), "e")
            result.statuses[200] += 1
            result.latencies_ms.append((time.perf_counter() - t) * 1e3)

    cpu = time.thread_time()
    process_cpu = time.process_time()
    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(i) for i in range(clients)))
    finally:
        queue.close()
    result.seconds = time.perf_counter() - start
    result.client_cpu = (time.thread_time() - cpu) / result.seconds
    result.process_cpu_s = time.process_time() - process_cpu
    return result


def _batch_dynamic_blazeface(path: Path) -> bytes:
    """A copy of the BlazeFace graph that takes any batch: the input's and outputs' first
    dimension made symbolic, and the four Reshapes that hard-code a batch of 1 told to
    copy it instead (0 in an ONNX Reshape shape)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    constants = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in constants:
            shape = numpy_helper.to_array(constants[node.input[1]]).copy()
            if shape[0] == 1:
                shape[0] = 0
                constants[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]  # fixed-batch shapes of the intermediate tensors
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


async def _faces_model_stage(
    session: Any, tensor: Any, batching: bool, seconds: float, clients: int = CLIENTS
) -> LoadResult:
    """``clients`` coroutines, each detecting faces in its (letterboxed) image again on
    every answer: through the server's batcher into one ``session.run`` of up to 8 images
    of the batch-dynamic graph (``batching``), or as single-image runs, on 2 threads."""
    import numpy as np

    from glasses_sdk.cloud import Deadline, WorkQueue
    from glasses_sdk.cloud._batching import Batcher

    names = [o.name for o in session.get_outputs()]
    feed = session.get_inputs()[0].name
    queue = WorkQueue(2, max_queue=1024)

    def run_batch(items: Sequence[Any], deadline: Deadline) -> list[Any]:
        regressors, scores = session.run(names, {feed: np.concatenate(list(items))})
        return [(regressors[i], scores[i]) for i in range(len(items))]

    batcher: Batcher[Any, Any] = Batcher(
        run_batch, queue, task="faces", max_batch_size=8, max_wait_ms=2.0
    )
    result = LoadResult(seconds)
    end = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < end:
            t = time.perf_counter()
            if batching:
                await batcher.submit(tensor, Deadline.none())
            else:
                await queue.run(lambda d: session.run(names, {feed: tensor}), Deadline.none(), "f")
            result.statuses[200] += 1
            result.latencies_ms.append((time.perf_counter() - t) * 1e3)

    cpu = time.thread_time()
    process_cpu = time.process_time()
    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(clients)))
    finally:
        queue.close()
    result.seconds = time.perf_counter() - start
    result.client_cpu = (time.thread_time() - cpu) / result.seconds
    result.process_cpu_s = time.process_time() - process_cpu
    return result


def _faces_model_stage_pairs(
    image: bytes, phase_s: float, rounds: int
) -> list[tuple[LoadResult, LoadResult]]:
    """The faces comparison without HTTP: one batch-dynamic BlazeFace session with one
    intra-op thread (as the server's sessions), the same 2 model threads either way."""
    import cv2
    import numpy as np
    import onnxruntime as ort  # type: ignore[import-untyped]

    from glasses_sdk.inference._registry import default_registry
    from glasses_sdk.inference._session import SessionConfig
    from glasses_sdk.preprocess.image import Letterboxer, LetterboxOptions

    path = default_registry().path("blazeface-short", "fp32")
    session = ort.InferenceSession(
        _batch_dynamic_blazeface(path),
        SessionConfig.from_env().session_options(),
        providers=["CPUExecutionProvider"],
    )
    decoded = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("OpenCV could not decode the benchmark's JPEG")
    frame = np.asarray(decoded, dtype=np.uint8)
    letterbox = Letterboxer(
        LetterboxOptions(size=128, channel_order="rgb", scale=1 / 127.5, mean=127.5)
    )
    tensor, _ = letterbox.run(frame, np.zeros((1, 3, 128, 128), dtype=np.float32))
    tensor = tensor.copy()
    asyncio.run(_faces_model_stage(session, tensor, True, 1.0))  # warm-up
    asyncio.run(_faces_model_stage(session, tensor, False, 1.0))
    pairs = []
    for _ in range(rounds):
        a = asyncio.run(_faces_model_stage(session, tensor, True, phase_s))
        b = asyncio.run(_faces_model_stage(session, tensor, False, phase_s))
        pairs.append((a, b))
    return pairs


def _model_stage_pairs(phase_s: float, rounds: int) -> list[tuple[LoadResult, LoadResult]]:
    from glasses_sdk.cloud import InferenceEmbeddingBackend

    backend = InferenceEmbeddingBackend()
    asyncio.run(_model_stage(backend, True, 1.0))  # warm-up
    asyncio.run(_model_stage(backend, False, 1.0))
    pairs = []
    for _ in range(rounds):
        a = asyncio.run(_model_stage(backend, True, phase_s))
        b = asyncio.run(_model_stage(backend, False, phase_s))
        pairs.append((a, b))
    return pairs


def _overhead(root: Path, image: bytes, phase_s: float) -> dict[str, Any]:
    """Phase 2: one client, sequential requests to a no-op face backend's server; the
    server's own time per request (``Server-Timing``), for a 64×64 and a 512×512 JPEG."""
    noop = _start(root, batching=False, noop=True)
    report: dict[str, Any] = {}
    try:
        asyncio.run(_closed_loop(noop, image, 1.0, 1))
        for name, body in (("overhead", _jpeg(64)), ("overhead_512_jpeg", image)):
            cpu_s = noop.cpu_s()
            result = asyncio.run(_closed_loop(noop, body, phase_s, 1))
            # The server's CPU per answer: its own work, which the neighbours of a shared
            # machine cannot stretch the way they stretch wall time (Server-Timing).
            cpu_ms = (noop.cpu_s() - cpu_s) * 1e3 / max(1, sum(result.statuses.values()))
            report[name] = {**result.to_json(), "server_cpu_ms_per_request": round(cpu_ms, 3)}
    finally:
        noop.stop()
    return report


def run(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    """Run the phases (``only="embeddings"``: the embeddings batching alone;
    ``only="model-stage"``: the embeddings and faces batching without HTTP;
    ``only="overhead"``: the server overhead alone)."""
    import httpx

    phase_s = 2.0 if quick else 5.0
    rounds = 1 if quick else 3
    image = _jpeg() if only != "embeddings" else b""
    report: dict[str, Any] = {
        "clients": CLIENTS,
        "phase_s": phase_s,
        "cpus": os.cpu_count(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
    }
    if only == "overhead":
        with tempfile.TemporaryDirectory() as tmp:
            report.update(_overhead(Path(tmp), image, phase_s))
        return report
    if only == "model-stage":
        # The model stage alone (no HTTP, no server process): cheap to run on a busy box.
        report["embeddings_batching_model_stage"] = _batching_json(
            _model_stage_pairs(phase_s, rounds)
        )
        report["faces_batching_model_stage"] = _batching_json(
            _faces_model_stage_pairs(image, phase_s, rounds)
        )
        return report
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # 1. batching on vs off, interleaved: embeddings (MiniLM), then faces.
        report["embeddings_batching"] = _batching_json(
            _batching_pairs(root, image, phase_s, rounds, "embeddings")
        )
        report["embeddings_batching_model_stage"] = _batching_json(
            _model_stage_pairs(phase_s, rounds)
        )
        if only == "embeddings":
            return report
        pairs = _batching_pairs(root, image, phase_s, rounds, "faces")
        report["batching"] = _batching_json(pairs)
        report["faces_batching_model_stage"] = _batching_json(
            _faces_model_stage_pairs(image, phase_s, rounds)
        )
        sustainable = statistics.median(max(a.ok_per_s, b.ok_per_s) for a, b in pairs)

        # 2. overhead: a no-op model, one client.
        report.update(_overhead(root, image, phase_s))

        # 3. open-loop load at twice the sustainable rate.
        loaded = _start(
            root, batching=True, max_queue=16, rate_per_s=1.5 * sustainable, burst=CLIENTS
        )
        try:
            asyncio.run(_closed_loop(loaded, image, 1.0, 4))
            rss_before = loaded.rss_kib()
            load = asyncio.run(_open_loop(loaded, image, 2 * sustainable, phase_s * 2))
            rss_after = loaded.rss_kib()
            health = httpx.get(f"{loaded.url}/healthz", timeout=5).status_code
            ready = httpx.get(
                f"{loaded.url}/readyz",
                headers={"Authorization": f"Bearer {loaded.token}"},
                timeout=5,
            ).status_code
        finally:
            loaded.stop()
        other_5xx = sum(v for k, v in load.statuses.items() if k >= 500 and k != 503)
        report["load"] = {
            "offered_per_s": round(2 * sustainable, 1),
            **load.to_json(),
            "other_5xx": other_5xx,
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
            "healthz_after": health,
            "readyz_after": ready,
        }
    return report


def _print_batching(title: str, b: dict[str, Any]) -> None:
    print(title)
    for i, (on, off) in enumerate(zip(b["on"], b["off"], strict=True)):
        print(
            f"  round {i + 1}: on {on['ok_per_s']:7.1f}/s p50 {on['p50_ms']:6.1f} ms | "
            f"off {off['ok_per_s']:7.1f}/s p50 {off['p50_ms']:6.1f} ms | "
            f"ratio {b['ratio_on_over_off'][i]:.2f} | client CPU on "
            f"{on['client_cpu_fraction']:.2f} off {off['client_cpu_fraction']:.2f}"
        )
    print(f"  median ratio on/off: {b['median_ratio']:.2f}")
    if "median_cpu_ratio" in b:
        per = ", ".join(f"{r:.2f}" for r in b["cpu_per_answer_off_over_on"])
        print(f"  CPU per answer, off/on: {per}; median {b['median_cpu_ratio']:.2f}")


def _print_overhead(report: dict[str, Any]) -> None:
    for name, what in (("overhead", "64x64 JPEG"), ("overhead_512_jpeg", "512x512 JPEG")):
        o = report[name]
        print(
            f"overhead (no-op model, 1 client, {what}): server p50 {o['server_p50_ms']} ms, "
            f"server CPU {o['server_cpu_ms_per_request']} ms a request, "
            f"round trip p50 {o['p50_ms']} ms, p99 {o['p99_ms']} ms, {o['ok_per_s']}/s"
        )


def _print(report: dict[str, Any]) -> None:
    print(
        f"cloud server, {report['clients']} clients, {report['phase_s']} s phases, "
        f"{report['cpus']} CPUs, load average {report['load_average_1min_at_start']} at start"
    )
    if "embeddings_batching_model_stage" not in report:
        _print_overhead(report)
        return
    if "embeddings_batching" in report:
        _print_batching(
            "embeddings batching (POST /v1/embeddings, MiniLM FP32, one sentence per request):",
            report["embeddings_batching"],
        )
    _print_batching(
        "embeddings batching at the model stage (no HTTP; Batcher + WorkQueue, 2 threads):",
        report["embeddings_batching_model_stage"],
    )
    if "faces_batching_model_stage" in report:
        _print_batching(
            "faces batching at the model stage (no HTTP; batch-dynamic BlazeFace, up to 8 "
            "images per session.run, vs single-image runs; 2 threads):",
            report["faces_batching_model_stage"],
        )
    if "batching" not in report:
        return
    _print_batching(
        "faces batching (POST /v1/vision/faces, BlazeFace, 512x512 JPEG):", report["batching"]
    )
    _print_overhead(report)
    load = report["load"]
    print(
        f"load at {load['offered_per_s']}/s offered for {load['seconds']} s: {load['statuses']}, "
        f"{load['ok_per_s']}/s ok, p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, "
        f"other 5xx {load['other_5xx']}, RSS {load['rss_kib_before']} -> "
        f"{load['rss_kib_after']} KiB, healthz {load['healthz_after']}, "
        f"readyz {load['readyz_after']}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: the benchmark, or (``--serve``) one server process of it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    parser.add_argument("--batching", default="on", help=argparse.SUPPRESS)
    parser.add_argument("--max-queue", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--noop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", default="faces", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        choices=["embeddings", "model-stage", "overhead"],
        default=None,
        help="run only the embeddings batching, the two model-stage comparisons, or the "
        "server overhead",
    )
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args)
        return
    report = run(quick=args.quick, only=args.only)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        _print(report)


if __name__ == "__main__":
    main()
