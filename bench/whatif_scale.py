"""What-if re-tally at scale: `leaderboard.whatif.what_if` over N seeded requests, per rule.

Seeds `--requests` synthetic requests over 60 days (manage.py seed_history, as history_scale.py
does) into a throw-away database, then times one re-tally pass per rule (each pass reads the
window's requests, candidates and marks again, chunk by chunk, and re-decides with that rule
only), then one pass with every rule, and prints each one's wall time and requests per second.
The last line is the peak of Python's traced allocations during an all-rules pass (tracemalloc,
which slows that pass down, so it is timed apart): bounded by a chunk, not by the window.

    python bench/whatif_scale.py --requests 100000      # SQLite, a temporary file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python bench/whatif_scale.py --requests 100000
                                                        # PostgreSQL: creates and drops `trio_whatif_bench`

`--keep` / `--reuse` as in history_scale.py.
"""
from __future__ import annotations

import argparse
import os
import time
import tracemalloc

from history_scale import seeded_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=None, help="requests per chunk (whatif.CHUNK_SIZE)")
    parser.add_argument("--keep", action="store_true", help="keep the database for --reuse")
    parser.add_argument("--reuse", action="store_true", help="do not seed: reuse the database kept by --keep")
    parser.add_argument("--name", default="trio_whatif_bench", help="the database (PostgreSQL) or file (SQLite)")
    args = parser.parse_args()

    with seeded_database(args) as (url, seeding):
        run(url, seeding, args.chunk)


def run(url: str, seeding: float | None, chunk: int | None) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trio_site.settings")
    import django
    django.setup()
    from django.db import connection

    from ensemble.leaderboard import whatif
    from ensemble.models import CompletionRequest

    chunk = chunk or whatif.CHUNK_SIZE
    total = CompletionRequest.objects.count()
    print(f"{connection.vendor}, {total} requests" + (f", seeded in {seeding:.1f}s" if seeding else "")
          + f", chunks of {chunk}")
    every = whatif.what_if(chunk_size=chunk)  # also warms the database's cache, as a second view would be
    names = [o.rule for o in every.rules]
    print(f"{every.requests} re-countable ({every.not_reproduced} not reproduced)")
    # Wall time, and this process's CPU time: on a shared machine the wall time also holds waiting
    # for a core (and, on PostgreSQL, the server's own work, which the CPU column leaves out).
    print(f"{'rule':32} {'requests':>9} {'changed':>8} {'wall s':>7} {'cpu s':>6} {'req/s':>7}")
    for name in names + ["(all rules, one pass)"]:
        started, cpu = time.perf_counter(), time.process_time()
        result = whatif.what_if(rules=None if name.startswith("(") else [name], chunk_size=chunk)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        outcome = result.rules[0] if len(result.rules) == 1 else None
        print(f"{name:32} {outcome.requests if outcome else result.requests:9} "
              f"{outcome.changed if outcome else '':>8} {elapsed:7.2f} {cpu:6.2f} {result.requests / elapsed:7.0f}")
    tracemalloc.start()
    whatif.what_if(chunk_size=chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak traced Python memory of an all-rules pass: {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
