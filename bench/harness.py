"""Shared pieces of the benchmarks: start the fake backend and Trio as real processes, fire load.

Everything runs on loopback. Trio runs exactly as `make run` serves it (gunicorn + uvicorn worker)
against a throw-away SQLite file (or DATABASE_URL if set), so the numbers include persistence.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


@contextlib.contextmanager
def fake_backend(latency: float, jitter: float = 0.0):
    """Run `manage.py fakebackend` in its own process; yield its base URL."""
    port = free_port()
    cmd = [PYTHON, "manage.py", "fakebackend", "--port", str(port), "--latency", str(latency),
           "--jitter", str(jitter)]
    with _process(cmd, {}) as _:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/health")
        yield url


@contextlib.contextmanager
def trio_server(backend_url: str, models: str, *, workers: int = 1, extra_env: dict | None = None):
    """Run Trio under gunicorn + uvicorn worker on a fresh database; yield (base URL, gunicorn pid)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "TRIO_BACKEND_URL": backend_url, "TRIO_MODELS": models, "TRIO_LOG_LEVEL": "WARNING",
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3"),
            **(extra_env or {}),
        }
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                       env={**os.environ, **env}, check=True)
        cmd = [str(Path(PYTHON).parent / "gunicorn"), "trio_site.asgi:application",
               "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", str(workers),
               "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--backlog", "2048"]
        with _process(cmd, env) as process:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(f"{url}/health")
            yield url, process.pid


@contextlib.contextmanager
def _process(cmd: list[str], env: dict):
    process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class LoadResult:
    latencies: list[float]
    wall: float
    statuses: dict[int, int]


async def fire(url: str, path: str, body: dict, *, total: int, concurrency: int) -> LoadResult:
    """Send `total` POSTs with at most `concurrency` in flight; every slot has its own connection.

    One httpx client per slot on purpose: a single client with hundreds of connections spends
    its time in httpx's pool bookkeeping (encode/httpx#3215) and would measure itself, not Trio.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(range(total))

    async def slot():
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=1)) as client:
            for _ in queue:
                started = time.perf_counter()
                response = await client.post(path, json=body)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(slot() for _ in range(concurrency)))
    return LoadResult(latencies, time.perf_counter() - started, statuses)


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by the inclusive method."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def rss_kib(pid: int) -> int:
    """Return the resident set size of a process in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_pids(master_pid: int) -> list[int]:
    """Return the pids of gunicorn's workers (children of the master)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]
