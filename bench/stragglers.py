"""Straggler benchmark: one model of three 10x slower must barely move the p50.

Runs the same load twice against Trio (gunicorn + uvicorn worker, SQLite): all three models at the
base latency, then with the third at 10x. Prints both p50s and their ratio (target ≤ 1.3).

    python bench/stragglers.py --latency 0.5 --requests 64 --concurrency 16
"""
import argparse
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import fake_backend, fire, percentile, trio_server  # noqa: E402

BODY = {"model": "trio", "messages": [{"role": "user", "content": "Summarize the water cycle."}]}


def p50_for(backend: str, models: str, requests: int, concurrency: int) -> tuple[float, dict]:
    with trio_server(backend, models) as (trio, _):
        result = asyncio.run(fire(trio, "/v1/chat/completions", BODY, total=requests, concurrency=concurrency))
    return percentile(result.latencies, 50), result.statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    slow = args.latency * 10

    with fake_backend(args.latency) as backend:
        fast_p50, fast_statuses = p50_for(backend, "alpha@quality=0.9,beta,gamma", args.requests, args.concurrency)
        slow_p50, slow_statuses = p50_for(backend, f"alpha@quality=0.9,beta,gamma@latency={slow}",
                                          args.requests, args.concurrency)

    print(f"all fast ({args.latency}s): p50 {fast_p50 * 1000:.0f} ms  statuses {fast_statuses}")
    print(f"one at {slow}s:       p50 {slow_p50 * 1000:.0f} ms  statuses {slow_statuses}")
    print(f"p50 ratio {slow_p50 / fast_p50:.3f} (target <= 1.3; default grace 0.5x the quorum's median)")


if __name__ == "__main__":
    main()
