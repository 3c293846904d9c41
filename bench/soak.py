"""Soak: many requests through one worker; is memory flat and is every request stored?

Starts the fake backend (short latency, some jitter) and Trio (gunicorn + one uvicorn worker,
SQLite unless DATABASE_URL is set), warms up, reads the worker's RSS, fires `--requests`
completions, reads the RSS again and counts the rows the database holds.

    python bench/soak.py --requests 10000 --concurrency 64
"""
import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import fake_backend, fire, percentile, rss_kib, trio_server, worker_pids  # noqa: E402

BODY = {"model": "trio", "messages": [{"role": "user", "content": "Name a prime number between 10 and 20."}]}
TABLES = ("completionrequest", "candidate", "ballot", "ballotmark")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        database = os.path.join(tmp, "soak.sqlite3")
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{database}")
        with fake_backend(args.latency, jitter=args.latency / 2) as backend:
            with trio_server(backend, "alpha@quality=0.9,beta,gamma") as (trio, master):
                worker = worker_pids(master)[0]
                asyncio.run(fire(trio, "/v1/chat/completions", BODY, total=args.warmup, concurrency=args.concurrency))
                before = rss_kib(worker)
                result = asyncio.run(fire(trio, "/v1/chat/completions", BODY, total=args.requests,
                                          concurrency=args.concurrency))
                after = rss_kib(worker)
        sqlite = os.environ["DATABASE_URL"].startswith("sqlite")
        counts = _row_counts(database) if sqlite else None
        size = _database_bytes(database) if sqlite else None

    print(f"requests={args.requests} (+{args.warmup} warm-up) concurrency={args.concurrency} "
          f"backend latency={args.latency}s ±{args.latency / 2}s")
    print(f"statuses: {result.statuses}  wall {result.wall:.1f}s  "
          f"throughput {args.requests / result.wall:.0f} completions/s")
    print(f"latency p50/p99: {percentile(result.latencies, 50) * 1000:.0f}/"
          f"{percentile(result.latencies, 99) * 1000:.0f} ms")
    print(f"worker RSS: {before / 1024:.1f} MiB after warm-up -> {after / 1024:.1f} MiB "
          f"after the soak: growth {(after - before) / 1024:.1f} MiB")
    if counts:
        print("rows: " + ", ".join(f"{table}={count}" for table, count in counts.items()))
        stored = counts["completionrequest"]
        print(f"database: {size / 1e6:.1f} MB for {stored} completions = {size / stored / 1024:.1f} KiB each "
              f"(SQLite file after a checkpoint, indexes included)")


def _database_bytes(path: str) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(path)


def _row_counts(path: str) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM ensemble_{t}").fetchone()[0] for t in TABLES}


if __name__ == "__main__":
    main()
