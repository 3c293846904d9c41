"""Shared pieces of the benchmarks: start the fake backend and Trio as real processes, fire load.

Everything runs on loopback. Trio runs exactly as `make run` serves it (gunicorn + uvicorn worker)
against a throw-away SQLite file (or DATABASE_URL if set), so the numbers include persistence.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from ensemble.devtools.devserver import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Which backend client Trio's worker uses: its own (aiohttp) or the httpx + httpx-aiohttp variant
# of bench/httpx_aiohttp.py (issue 21, item 8), chosen with TRIO_BENCH_CLIENT.
TRIO_APPS = {"aiohttp": "trio_site.asgi:application", "httpx-aiohttp": "bench.httpx_aiohttp:application"}


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


class BackendURL(str):
    """The fake backend's base URL, also carrying the pid of its process (for CPU accounting)."""

    pid: int


@contextlib.contextmanager
def fake_backend(latency: float, jitter: float = 0.0):
    """Run `manage.py fakebackend` in its own process; yield its base URL (a `BackendURL`)."""
    port = free_port()
    cmd = [PYTHON, "manage.py", "fakebackend", "--port", str(port), "--latency", str(latency),
           "--jitter", str(jitter)]
    with running(cmd, dict(os.environ)) as process:
        url = BackendURL(f"http://127.0.0.1:{port}")
        url.pid = process.pid
        wait_until_up(f"{url}/health")
        yield url


@contextlib.contextmanager
def trio_server(backend_url: str, models: str, *, workers: int = 1, extra_env: dict | None = None):
    """Run Trio under gunicorn + uvicorn worker on a fresh database; yield (base URL, gunicorn pid)."""
    with tempfile.TemporaryDirectory() as tmp:
        metrics_dir = Path(tmp) / "prometheus"  # /metrics then sums every worker, as in production
        metrics_dir.mkdir()
        env = {
            "TRIO_BACKEND_URL": backend_url, "TRIO_MODELS": models, "TRIO_LOG_LEVEL": "WARNING",
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3"),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **(extra_env or {}),
        }
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                       env={**os.environ, **env}, check=True)
        app = TRIO_APPS[os.environ.get("TRIO_BENCH_CLIENT", "aiohttp")]
        with gunicorn_server(app, env, workers=workers) as served:
            yield served


@contextlib.contextmanager
def gunicorn_server(app: str, env: dict, *, workers: int = 1):
    """Serve the ASGI app `app` (module:name) as `make run` serves Trio; yield (base URL, gunicorn pid)."""
    port = free_port()
    cmd = [str(Path(PYTHON).parent / "gunicorn"), app,
           "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers),
           "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--backlog", "2048"]
    if workers > 1:  # as `make run` and the container do: one SO_REUSEPORT socket per worker
        cmd.append("--reuse-port")
    with running(cmd, {**os.environ, **env}) as process:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/health")
        yield url, process.pid


@contextlib.contextmanager
def running(cmd: list[str], env: dict, *, cwd: Path = ROOT, stdout=None):
    """Run `cmd` with exactly the environment `env`; yield the process, stop it on exit."""
    process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.STDOUT if stdout else None)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class LoadResult:
    latencies: list[float]
    wall: float
    statuses: dict[int, int]
    waves: list[int]  # per latency, which of its sender's requests it was (0 = the sender's first)
    sent_at: list[float]  # per latency, the wall-clock time (time.time()) the request left
    answers: list[bytes | None]  # per latency, the body of a 200, else None

    @property
    def ids(self) -> list[str | None]:
        """Return, per latency, the answer's `id`; parsed only when asked, never while timing."""
        return [_answer_id(body) if body is not None else None for body in self.answers]


async def fire(url: str, path: str, body: dict, *, total: int, concurrency: int,
               headers: dict | None = None, ramp: float = 0.0) -> LoadResult:
    """Send `total` POSTs with at most `concurrency` in flight and return their latencies.

    With `ramp` > 0 the `concurrency` senders start evenly spread over that many seconds instead
    of all at once; each sends its next request as soon as its previous one is answered.

    aiohttp rather than httpx: the load generator shares this 2-core machine with what it
    measures, and httpx's pool costs several times more CPU per request at this concurrency
    (encode/httpx#3215), which would show up as Trio's overhead.
    """
    latencies: list[float] = []
    waves: list[int] = []
    sent_at: list[float] = []
    answers: list[bytes | None] = []
    statuses: dict[int, int] = {}
    queue = iter(range(total))
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def slot(number: int):
            await asyncio.sleep(ramp * number / concurrency)
            for wave, _ in enumerate(queue):
                left, started = time.time(), time.perf_counter()
                async with session.post(path, data=payload, headers=headers) as response:
                    answer = await response.read()
                latencies.append(time.perf_counter() - started)
                waves.append(wave)
                sent_at.append(left)
                answers.append(answer if response.status == 200 else None)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(slot(number) for number in range(concurrency)))
    return LoadResult(latencies, time.perf_counter() - started, statuses, waves, sent_at, answers)


def ideal_for(backend: str, body: dict, *, requests: int, concurrency: int, members: int,
              ramp: float = 0.0) -> tuple[float, float]:
    """Return (ideal seconds per completion, ideal wall seconds) for `requests` at `concurrency`.

    A completion needs two backend round trips (generation, then voting). The round trip is
    measured directly, with as many calls in flight as Trio would have (`members` per request).
    """
    direct = asyncio.run(fire(backend, "/v1/chat/completions", body, total=requests * members,
                              concurrency=concurrency * members, ramp=ramp))
    ideal = 2 * percentile(direct.latencies, 50)
    last_start = ramp * (concurrency - 1) / concurrency
    return ideal, math.ceil(requests / concurrency) * ideal + last_start


def overhead_figures(result: LoadResult, ideal: float, ideal_wall: float) -> dict:
    """Return a run's overhead over the ideal in ms (keys 50, 95, 99, "mean"), its wall ratio ("wall")
    and the p50 overhead of each wave ("waves", the senders' first requests first)."""
    overhead_ms = [(latency - ideal) * 1000 for latency in result.latencies]
    figures: dict = {q: percentile(overhead_ms, q) for q in (50, 95, 99)}
    groups: dict[int, list[float]] = {}
    for value, wave in zip(overhead_ms, result.waves):
        groups.setdefault(wave, []).append(value)
    figures.update(mean=statistics.mean(overhead_ms), wall=result.wall / ideal_wall,
                   waves=[percentile(groups[wave], 50) for wave in sorted(groups)])
    return figures


def _answer_id(body: bytes) -> str | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return answer.get("id") if isinstance(answer, dict) else None


def p50_ms(url: str, body: dict, requests: int, *, concurrency: int = 1, headers: dict | None = None) -> float:
    """Return the median latency in ms of `requests` chat completions; every one must answer 200."""
    result = asyncio.run(fire(url, "/v1/chat/completions", body, total=requests, concurrency=concurrency,
                              headers=headers))
    assert set(result.statuses) == {200}, result.statuses
    return percentile(result.latencies, 50) * 1000


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by the inclusive method."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def rss_kib(pid: int) -> int:
    """Return the resident set size of a process in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int | None = None) -> float:
    """Return the user + system CPU time a process (default: this one) has used so far (Linux)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def histogram_totals(url: str, metric: str, label: str | None = None) -> dict[str, list[float]]:
    """Return a histogram's totals so far from the workers' /metrics: {label value: [count, seconds]}.

    Without `label`, the one entry is keyed "".
    """
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name in (f"{metric}_count", f"{metric}_sum"):
                slot = 0 if sample.name.endswith("_count") else 1
                totals.setdefault(sample.labels[label] if label else "", [0.0, 0.0])[slot] = sample.value
    return totals


def gc_pauses(url: str) -> dict[str, list[float]]:
    """Return the workers' garbage-collector pauses so far: {generation: [count, seconds]}."""
    return histogram_totals(url, "trio_gc_pause_seconds", "generation")


def admission_waits(url: str) -> dict[str, list[float]]:
    """Return the workers' waits at the admission gate so far: {"": [count, seconds]}."""
    return histogram_totals(url, "trio_admission_wait_seconds")


def worker_pids(master_pid: int) -> list[int]:
    """Return the pids of gunicorn's workers (children of the master)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]
