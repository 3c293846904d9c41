"""Concurrency benchmark: is only the backend's latency felt?

Starts the fake backend (fixed latency) and Trio (gunicorn + uvicorn worker, SQLite, every request
persisted), measures the backend's own round trip at the same load, then fires requests at Trio.
A completion needs two backend round trips (generation, then voting), so the ideal per request is
2 × the measured backend round trip, and the ideal wall time is ceil(requests / concurrency) × that.

By default every sender starts at once, so each batch of `concurrency` requests arrives together
(the issue's benchmark). `--ramp S` spreads the senders' starts over S seconds, for the direct
measurement and Trio alike, which is closer to independent clients; the ideal wall time then
includes the ramp.

Each run also prints the p50 overhead of each wave (every sender's first request, then its
second, ...). Without `--ramp` the first wave arrives all at once; each later request leaves
when its sender's previous answer comes back, so later waves arrive spread out, and can come
out below the ideal, which was measured with every direct call of a batch in flight at once.

And where the overhead accrues, step by step, read from the row Trio stored for each request
(`overhead_by_step`): before the service takes the request, in each of the two rounds beyond
the backend's round trip, and after the decision (the write and the response).

    python bench/concurrency.py --requests 192 --concurrency 64
    python bench/concurrency.py --requests 192 --concurrency 64 --ramp 1
    WEB_CONCURRENCY=2 python bench/concurrency.py --requests 512 --concurrency 256
"""
import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import django  # noqa: E402

from bench.harness import (  # noqa: E402
    admission_waits, cpu_seconds, fake_backend, fire, gc_pauses, ideal_for, overhead_figures, percentile,
    trio_server, worker_pids,
)

MESSAGES = [{"role": "user", "content": "What is the boiling point of water at sea level?"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=192)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 1)),
                        help="gunicorn workers (default: WEB_CONCURRENCY, as `make run` uses it, or 1)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs against the same server (medians printed)")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="seconds over which the senders start (default 0: all at once)")
    parser.add_argument("--models", default="alpha@quality=0.9,beta@quality=0.6,gamma@quality=0.4")
    args = parser.parse_args()
    members = len(args.models.split(","))
    body = {"model": "trio", "messages": MESSAGES}

    with tempfile.TemporaryDirectory() as tmp, fake_backend(args.latency) as backend:
        # Trio's database, which this process also reads (overhead_by_step); PostgreSQL if set.
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/concurrency.sqlite3")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trio_site.settings")
        django.setup()
        ideal, ideal_wall = ideal_for(backend, {"model": "alpha", "messages": MESSAGES}, requests=args.requests,
                                      concurrency=args.concurrency, members=members, ramp=args.ramp)
        print(f"requests={args.requests} concurrency={args.concurrency} workers={args.workers} "
              f"members={members} backend latency={args.latency}s ramp={args.ramp}s")
        print(f"backend round trip p50 (measured, {args.concurrency * members} in flight): {ideal * 500:.1f} ms; "
              f"ideal per request {ideal * 1000:.1f} ms, ideal wall {ideal_wall:.2f}s")
        with trio_server(backend, args.models, workers=args.workers) as (trio, master):
            asyncio.run(fire(trio, "/v1/chat/completions", body, total=args.concurrency,
                             concurrency=args.concurrency, ramp=args.ramp))  # warm-up
            pids = {"trio workers": worker_pids(master), "fake backend": [backend.pid], "load generator": [None]}
            runs = [measured_run(trio, body, args, ideal, ideal_wall, pids) for _ in range(args.runs)]

    print(f"median of {args.runs}: overhead p50/p95/p99 " + "/".join(
        f"{statistics.median(run[q] for run in runs):.1f}" for q in (50, 95, 99))
        + f" ms, mean {statistics.median(run['mean'] for run in runs):.1f} ms, "
        f"wall ratio {statistics.median(run['wall'] for run in runs):.3f}, "
        f"worker CPU per completion {statistics.median(run['cpu'] for run in runs):.2f} ms")


def measured_run(trio: str, body: dict, args, ideal: float, ideal_wall: float, pids: dict) -> dict:
    """Fire one measured run at Trio, print its figures and return them."""
    cpu_before = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
    gc_before, waits_before = gc_pauses(trio), admission_waits(trio)
    result = asyncio.run(fire(trio, "/v1/chat/completions", body, total=args.requests,
                              concurrency=args.concurrency, ramp=args.ramp))
    gc_after, waits_after = gc_pauses(trio), admission_waits(trio)
    cpu_ms = {name: (sum(map(cpu_seconds, group)) - cpu_before[name]) / args.requests * 1000
              for name, group in pids.items()}
    figures = overhead_figures(result, ideal, ideal_wall)
    figures["cpu"] = cpu_ms["trio workers"]
    print(f"run: statuses {result.statuses}; overhead p50/p95/p99 "
          + "/".join(f"{figures[q]:.1f}" for q in (50, 95, 99))
          + f" ms, mean {figures['mean']:.1f} ms; wall {result.wall:.2f}s, ratio {figures['wall']:.3f}; CPU per completion: "
          + ", ".join(f"{name} {ms:.2f} ms" for name, ms in cpu_ms.items()))
    print("     garbage collector: " + ", ".join(
        f"generation {gen} paused the workers {count:.0f}× for {seconds * 1000:.1f} ms in all"
        for gen, (count, seconds) in _gained_between(gc_before, gc_after).items()))
    print("     p50 overhead by wave (every sender's 1st request, 2nd, ...): " + " / ".join(
        f"{wave:.1f}" for wave in figures["waves"]) + " ms")
    steps = overhead_by_step(result, ideal / 2)
    first_wave = [step for step, wave in steps if wave == 0]
    if first_wave:  # nothing stored (every request failed): nothing to split
        print("     p50 overhead by step, all requests / first wave: " + ", ".join(
            f"{name} {percentile([s[name] for s, _ in steps], 50):.1f} / {percentile([s[name] for s in first_wave], 50):.1f}"
            for name in STEPS) + " ms")
    waited, seconds = _gained_between(waits_before, waits_after).get("", (0, 0.0))
    if waited:  # TRIO_ADMISSION_SLOTS=0: no gate, nothing observed
        print(f"     admission gate: {waited:.0f} requests waited {seconds / waited * 1000:.1f} ms on average")
    return figures


STEPS = ("before the service", "generation round", "voting round", "after the decision")


def overhead_by_step(result, round_trip: float) -> list[tuple[dict[str, float], int]]:
    """Return, per stored request, the ms it spent in each of `STEPS` beyond the backend, and its wave.

    From the row Trio stored: `created_at` is when the service took the request (after uvicorn,
    Django, the API-key check, the admission gate and validation); `generation_ms` and `voting_ms`
    are the two rounds, each measured against one backend round trip; what is left of the
    client's latency after `created_at + latency_ms` is the write and the response. The stored
    durations are whole milliseconds, so each step is good to about 1 ms.
    """
    from django.db import connections

    from ensemble.models import CompletionRequest

    sent = {uuid.UUID(answer_id.removeprefix("trio-")): (left, latency, wave) for answer_id, left, latency, wave
            in zip(result.ids, result.sent_at, result.latencies, result.waves) if answer_id}
    rows = CompletionRequest.objects.filter(id__in=list(sent)).values_list(
        "id", "created_at", "latency_ms", "generation_ms", "voting_ms")
    steps = []
    for request_id, created_at, latency_ms, generation_ms, voting_ms in rows:
        left, latency, wave = sent[request_id]
        taken = created_at.timestamp()
        steps.append(({
            "before the service": (taken - left) * 1000,
            "generation round": generation_ms - round_trip * 1000,
            "voting round": voting_ms - round_trip * 1000,
            "after the decision": (left + latency - taken) * 1000 - latency_ms,
        }, wave))
    connections.close_all()  # hold nothing open on the database between runs
    return steps


def _gained_between(before: dict, after: dict) -> dict:
    """Return {label: (count, seconds)} of what a histogram gained between two readings."""
    return {label: (count - before.get(label, [0, 0])[0], seconds - before.get(label, [0, 0])[1])
            for label, (count, seconds) in sorted(after.items())}


if __name__ == "__main__":
    main()
