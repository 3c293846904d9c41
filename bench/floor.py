"""What a request costs before Trio does anything: the CPU floor under the concurrency benchmark.

At concurrency 64 the overhead over the ideal is CPU queueing: 64 completions arrive together and
share one worker's core. This measures, in one run and at the same concurrency, the worker CPU of
requests that do (almost) nothing, next to the cost of the same HTTP work without Django:

- `GET /health` through Trio: uvicorn + Django's ASGI handler + the API middleware, a plain view;
- `GET /v1/models` through Trio: the same plus an adrf view (DRF request, authentication hop);
- `GET /v1/models` on the fake backend: uvicorn + a bare ASGI app, no framework;
- the load generator's own CPU per call: what an aiohttp client call costs (Trio makes six per
  completion of a three-model ensemble).

    python bench/floor.py --requests 2000 --concurrency 64
"""
import argparse
import asyncio
import os
import statistics
import sys

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import cpu_seconds, fake_backend, trio_server, worker_pids  # noqa: E402


async def get_many(url: str, path: str, *, total: int, concurrency: int) -> None:
    """Send `total` GETs with `concurrency` in flight; every one must answer 200."""
    queue = iter(range(total))
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def slot():
            for _ in queue:
                async with session.get(path) as response:
                    await response.read()
                    assert response.status == 200, (path, response.status)

        await asyncio.gather(*(slot() for _ in range(concurrency)))


def cpu_ms_per_request(pid: int | None, url: str, path: str, args, runs: int = 3) -> float:
    """Return the median over `runs` of process `pid`'s CPU per request (this process if None)."""
    asyncio.run(get_many(url, path, total=args.concurrency * 2, concurrency=args.concurrency))  # warm-up
    samples = []
    for _ in range(runs):
        before = cpu_seconds(pid)
        asyncio.run(get_many(url, path, total=args.requests, concurrency=args.concurrency))
        samples.append((cpu_seconds(pid) - before) / args.requests * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    with fake_backend(0.0) as backend:
        with trio_server(backend, "alpha,beta,gamma") as (trio, master):
            worker = worker_pids(master)[0]
            rows = [(f"Trio worker, {path}", cpu_ms_per_request(worker, trio, path, args))
                    for path in ("/health", "/v1/models")]
        rows.append(("fake backend (bare ASGI app on uvicorn), /v1/models",
                     cpu_ms_per_request(backend.pid, backend, "/v1/models", args)))
        rows.append(("load generator, one aiohttp client call",
                     cpu_ms_per_request(None, backend, "/v1/models", args)))

    print(f"CPU per request, median of 3 runs of {args.requests} at concurrency {args.concurrency}:")
    for name, ms in rows:
        print(f"  {name}: {ms:.2f} ms")


if __name__ == "__main__":
    main()
