"""What huge backend answers cost one worker: response size, peak RSS and database growth per request.

Three members answer `--mb` MB each (the fake backend's `size=`), `--requests` times one after the
other, against a fresh worker and SQLite file; once with the defaults (TRIO_MAX_ANSWER_BYTES, the
ballot quote limits) and once with every limit lifted, which is how Trio behaved before them (issue
21: a 200 of 80 MB, a worker peak of 1.05-1.4 GB, +63 MB in the database per request). Prints the
status and size of each answer, the worker's VmRSS before and VmHWM (peak) after, and per request
the growth of the database files and the bytes of text stored in its rows.

    python bench/answer_size.py --mb 20 --requests 3
"""
import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.fanout_memory import peak_kib  # noqa: E402
from bench.harness import fake_backend, rss_kib, trio_server, worker_pids  # noqa: E402

UNLIMITED = str(2**40)
LIFTED = {"TRIO_MAX_ANSWER_BYTES": UNLIMITED, "TRIO_BALLOT_QUOTE_CHARS": UNLIMITED,
          "TRIO_BALLOT_PROMPT_QUOTE_CHARS": UNLIMITED}
WARM_UP = {"model": {"ensemble": [{"model": "a"}, {"model": "b"}]}, "messages": [{"role": "user", "content": "hi"}]}
QUESTION = {"model": "trio", "messages": [{"role": "user", "content": "Tell me everything."}]}
# Text the rows hold: the conversation, every answer and ballot reply, every error.
STORED_TEXT = ("SELECT (SELECT coalesce(sum(length(messages) + length(error)), 0) FROM ensemble_completionrequest)"
               " + (SELECT coalesce(sum(length(content) + length(error)), 0) FROM ensemble_candidate)"
               " + (SELECT coalesce(sum(length(raw_text) + length(error)), 0) FROM ensemble_ballot)")


def files_bytes(database: Path) -> int:
    """Return the size of the SQLite database with its write-ahead log."""
    return sum(path.stat().st_size for path in database.parent.glob(database.name + "*"))


def stored_text_bytes(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute(STORED_TEXT).fetchone()[0]


def measure(backend_url: str, label: str, size: int, requests: int, extra_env: dict) -> None:
    models = ",".join(f"{name}@size={size}" for name in ("alpha", "beta", "gamma"))
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "answers.sqlite3"
        env = {"DATABASE_URL": f"sqlite:///{database}", "TRIO_TIMEOUT": "300", **extra_env}
        with trio_server(backend_url, models, extra_env=env) as (url, master):
            [worker] = worker_pids(master)
            httpx.post(f"{url}/v1/chat/completions", json=WARM_UP, timeout=60).raise_for_status()
            before, files_before, text_before = rss_kib(worker), files_bytes(database), stored_text_bytes(database)
            answers = [httpx.post(f"{url}/v1/chat/completions", json=QUESTION, timeout=600) for _ in range(requests)]
            files_growth = (files_bytes(database) - files_before) / requests
            text_growth = (stored_text_bytes(database) - text_before) / requests
            print(f"{label}: statuses {[a.status_code for a in answers]}, answers "
                  f"{', '.join(f'{len(a.content) / 1e6:.2f}' for a in answers)} MB; worker RSS before "
                  f"{before / 1024:.0f} MiB, peak {peak_kib(worker) / 1024:.0f} MiB; per request the database "
                  f"files grew {files_growth / 1e6:.2f} MB, its rows' text {text_growth / 1e6:.2f} MB")
            print("    candidates:", ", ".join(
                f"{c['model']} {c['status']}" for c in answers[-1].json().get("trio", {}).get("candidates", [])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="each member's answer, in MB (10**6 characters)")
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--lifted", action=argparse.BooleanOptionalAction, default=True,
                        help="also run with every limit lifted (the code before them)")
    args = parser.parse_args()
    size = int(args.mb * 1e6)
    with fake_backend(latency=0.01) as backend_url:
        measure(backend_url, "limits as configured", size, args.requests, {})
        if args.lifted:
            measure(backend_url, "limits lifted", size, args.requests, LIFTED)


if __name__ == "__main__":
    main()
