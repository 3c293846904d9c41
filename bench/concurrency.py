"""Concurrency benchmark: is only the backend's latency felt?

Starts the fake backend (fixed latency) and Trio (gunicorn + uvicorn worker, SQLite, every request
persisted), measures the backend's own round trip at the same load, then fires requests at Trio.
A completion needs two backend round trips (generation, then voting), so the ideal per request is
2 × the measured backend round trip, and the ideal wall time is ceil(requests / concurrency) × that.

    python bench/concurrency.py --requests 192 --concurrency 64
    python bench/concurrency.py --requests 512 --concurrency 256 --workers 2
"""
import argparse
import asyncio
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import cpu_seconds, fake_backend, fire, percentile, trio_server, worker_pids  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the boiling point of water at sea level?"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=192)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--models", default="alpha@quality=0.9,beta@quality=0.6,gamma@quality=0.4")
    args = parser.parse_args()
    members = len(args.models.split(","))

    with fake_backend(args.latency) as backend:
        direct = asyncio.run(fire(backend, "/v1/chat/completions", {"model": "alpha", "messages": MESSAGES},
                                  total=args.requests * members, concurrency=args.concurrency * members))
        round_trip = percentile(direct.latencies, 50)
        with trio_server(backend, args.models, workers=args.workers) as (trio, master):
            asyncio.run(fire(trio, "/v1/chat/completions", {"model": "trio", "messages": MESSAGES},
                             total=args.concurrency, concurrency=args.concurrency))  # warm-up
            pids = {"trio workers": worker_pids(master), "fake backend": [backend.pid], "load generator": [None]}
            cpu_before = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
            result = asyncio.run(fire(trio, "/v1/chat/completions", {"model": "trio", "messages": MESSAGES},
                                      total=args.requests, concurrency=args.concurrency))
            cpu_used = {name: sum(map(cpu_seconds, group)) - cpu_before[name] for name, group in pids.items()}

    ideal = 2 * round_trip
    ideal_wall = math.ceil(args.requests / args.concurrency) * ideal
    overhead_ms = sorted((latency - ideal) * 1000 for latency in result.latencies)
    print(f"requests={args.requests} concurrency={args.concurrency} workers={args.workers} "
          f"members={members} backend latency={args.latency}s")
    print(f"backend round trip p50 (measured, {args.concurrency * members} in flight): {round_trip * 1000:.1f} ms")
    print(f"statuses: {result.statuses}")
    print(f"trio latency p50/p95/p99: " + "/".join(
        f"{percentile(result.latencies, q) * 1000:.1f}" for q in (50, 95, 99)) + " ms")
    print(f"overhead over ideal ({ideal * 1000:.1f} ms) p50/p95/p99: " + "/".join(
        f"{percentile(overhead_ms, q):.1f}" for q in (50, 95, 99)) + " ms")
    print("CPU per completion (ms): " + ", ".join(
        f"{name} {seconds / args.requests * 1000:.2f}" for name, seconds in cpu_used.items()))
    print(f"wall {result.wall:.2f}s vs ideal {ideal_wall:.2f}s: ratio {result.wall / ideal_wall:.3f}")


if __name__ == "__main__":
    main()
