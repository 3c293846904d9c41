"""Bench 1's load against the stack alone: how much of Trio's overhead could any code avoid?

Bench 1 (`concurrency.py`) sends 192 requests, 64 arriving at once, to one worker, and asks for a
p50 overhead of at most 20 ms over two backend round trips. This sends the same load, in the same
run and against the same fake backend, to four apps on three servers, each one gunicorn + uvicorn
worker:

- **bare ASGI**: `bench.skeleton.asgi:bare_application`, a plain ASGI callable that makes a
  three-model completion's six backend calls with Trio's `BackendClient` and answers;
- **Django view**: `bench.skeleton.asgi:application`, the same calls from a plain Django async
  view behind Django's ASGI handler, with no middleware;
- **Django + adrf**: the same server, the same calls from an adrf view with no authentication:
  the fixed stack (Django + DRF's async views) at its leanest;
- **Trio**: the real service (validation, API-key check, voting, every request stored).

The skeletons do no validation, no voting and no storage, so their overhead is a floor: Trio runs
on Django + adrf and cannot be cheaper than it. Runs are interleaved (bare, Django view, adrf, Trio,
bare, ...) so that a machine slowing down during the run weighs on all four alike.

    python bench/stack_floor.py --runs 5
"""
import argparse
import asyncio
import contextlib
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import (  # noqa: E402
    cpu_seconds, fake_backend, fire, gunicorn_server, ideal_for, overhead_figures, trio_server, worker_pids,
)

MESSAGES = [{"role": "user", "content": "What is the boiling point of water at sea level?"}]
MODELS = ("alpha", "beta", "gamma")
COMPLETIONS = "/v1/chat/completions"
# name: (ASGI app, path of its completions); "Trio" is added by main().
SKELETONS = {
    "bare ASGI": ("bench.skeleton.asgi:bare_application", COMPLETIONS),
    "Django view": ("bench.skeleton.asgi:application", "/plain" + COMPLETIONS),
    "Django + adrf": ("bench.skeleton.asgi:application", COMPLETIONS),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=192)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3, help="measured runs per server (medians printed)")
    args = parser.parse_args()
    body = {"model": "trio", "messages": MESSAGES}

    with fake_backend(args.latency) as backend, contextlib.ExitStack() as servers:
        ideal, ideal_wall = ideal_for(backend, {"model": "alpha", "messages": MESSAGES}, requests=args.requests,
                                      concurrency=args.concurrency, members=len(MODELS))
        print(f"requests={args.requests} concurrency={args.concurrency} workers=1 members={len(MODELS)} "
              f"backend latency={args.latency}s; ideal per request {ideal * 1000:.1f} ms "
              f"(2 × the round trip measured with {args.concurrency * len(MODELS)} in flight), "
              f"ideal wall {ideal_wall:.2f}s")
        env = {"DJANGO_SETTINGS_MODULE": "bench.skeleton.settings", "TRIO_BACKEND_URL": backend,
               "TRIO_MODELS": ",".join(MODELS)}
        servers_by_app = {app: servers.enter_context(gunicorn_server(app, env)) for app, _ in SKELETONS.values()}
        targets = {name: (*servers_by_app[app], path) for name, (app, path) in SKELETONS.items()}
        targets["Trio"] = (*servers.enter_context(trio_server(backend, ",".join(MODELS))), COMPLETIONS)
        for url, _, path in targets.values():  # warm-up: connections, caches, the first requests' imports
            asyncio.run(fire(url, path, body, total=args.concurrency, concurrency=args.concurrency))
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(args.runs):
            for name, (url, master, path) in targets.items():
                runs[name].append(measured_run(name, url, path, worker_pids(master)[0], body, args, ideal, ideal_wall))

    print(f"median of {args.runs} runs each (overhead over the ideal; target p50 ≤ 20 ms, wall ≤ 1.1):")
    for name, figures in runs.items():
        print(f"  {name:14} p50/p95/p99 " + "/".join(
            f"{statistics.median(run[q] for run in figures):.1f}" for q in (50, 95, 99))
            + f" ms, mean {statistics.median(run['mean'] for run in figures):.1f} ms, "
            f"wall ratio {statistics.median(run['wall'] for run in figures):.3f}, "
            f"worker CPU per completion {statistics.median(run['cpu'] for run in figures):.2f} ms")


def measured_run(name: str, url: str, path: str, worker: int, body: dict, args, ideal: float, ideal_wall: float) -> dict:
    """Fire one measured run at one server, print its figures and return them."""
    cpu_before = cpu_seconds(worker)
    result = asyncio.run(fire(url, path, body, total=args.requests, concurrency=args.concurrency))
    assert set(result.statuses) == {200}, (name, result.statuses)
    figures = overhead_figures(result, ideal, ideal_wall)
    figures["cpu"] = (cpu_seconds(worker) - cpu_before) / args.requests * 1000
    print(f"{name:14} overhead p50/p95/p99 " + "/".join(f"{figures[q]:.1f}" for q in (50, 95, 99))
          + f" ms, mean {figures['mean']:.1f} ms, wall ratio {figures['wall']:.3f}, "
          f"worker CPU per completion {figures['cpu']:.2f} ms; p50 by wave "
          + " / ".join(f"{wave:.1f}" for wave in figures["waves"]) + " ms")
    return figures


if __name__ == "__main__":
    main()
