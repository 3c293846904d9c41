"""History at scale: leaderboard and history pages over N seeded requests, rendered as staff.

Seeds `--requests` synthetic requests over 60 days (manage.py seed_history) into a throw-away
database, then renders every leaderboard window (with and without the ensemble filter) and the
history page (with and without filters) through Django's test client as a logged-in staff user,
and prints the median of `--rounds` renders per page, with the SQL statements each one ran.

    python bench/history_scale.py                       # SQLite, a temporary file
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python bench/history_scale.py
                                                        # PostgreSQL: creates and drops `trio_bench`
    python bench/history_scale.py --tags                # also tag-filtered pages (team one of 5)

The first leaderboard after seeding finds no rollup and reads every day live (the "cold" line;
a checkout from before rollup_votes ran at start only rolled up on that view instead); then
`rollup_closed_days` (manage.py rollup_votes) is timed, and the table is the steady state.
`--reuse` skips the seeding and uses the database left by `--keep` (the rollup is still
dropped first, so the cold lines are measured again).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENSEMBLE = "trio"  # one of seed_history's ensembles

LEADERBOARD = [
    (f"leaderboard {window}{' ' + ENSEMBLE if ensemble else ''}",
     f"/leaderboard/?window={window}" + (f"&ensemble={ENSEMBLE}" if ensemble else ""))
    for window in ("24h", "7d", "30d", "all") for ensemble in (False, True)
] + [("leaderboard.json all", "/leaderboard.json?window=all")]
# Tagged (seed_history --tags: team one of 5, product one of 20): a filtered board reads the whole
# window live, as the rollup has no tag dimension (ensemble.leaderboard.board).
TAGGED = [
    ("leaderboard.json tag team:a", "/leaderboard.json?tag=team:a"),
    ("leaderboard.json team:a 7d", "/leaderboard.json?tag=team:a&window=7d"),
    ("leaderboard.json team:a+product:p01", "/leaderboard.json?tag=team:a&tag=product:p01"),
    ("leaderboard tag team:a", "/leaderboard/?tag=team:a"),
    ("leaderboard team:a trio", f"/leaderboard/?tag=team:a&ensemble={ENSEMBLE}"),
    ("history tag team:a", "/votes/?tag=team:a"),
    ("history team:a+product:p01", "/votes/?tag=team:a&tag=product:p01"),
]


def history_pages(today: str, week_ago: str) -> list[tuple[str, str]]:
    return [
        ("history", "/votes/"),
        ("history model", "/votes/?model=phi3"),
        ("history status", "/votes/?status=partial"),
        ("history dates", f"/votes/?date_from={week_ago}&date_to={today}"),
        ("history search", "/votes/?search=haiku"),
        ("history model+status+dates", f"/votes/?model=gemma2-9b&status=ok&date_from={week_ago}&date_to={today}"),
        ("history all filters", f"/votes/?model=phi3&status=ok&date_from={week_ago}&date_to={today}&search=rain"),
        ("history model page 100", "/votes/?model=phi3&page=100"),
        ("history last page", "/votes/?page=last"),
    ]


def database_url(name: str) -> tuple[str, callable]:
    """Return the benchmark's DATABASE_URL and a function that disposes of its database."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        path = Path(tempfile.gettempdir()) / f"{name}.sqlite3"
        return f"sqlite:///{path}", lambda: _remove_sqlite(path)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}")), lambda: _psql(url, f"DROP DATABASE IF EXISTS {name}")


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _psql(server_url: str, sql: str) -> None:
    """Run one statement on the server's own database (CREATE/DROP DATABASE cannot run in a transaction)."""
    import psycopg
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql)


def create_database(url: str, name: str) -> None:
    if url.startswith("postgres"):
        server = os.environ["DATABASE_URL"]
        _psql(server, f"DROP DATABASE IF EXISTS {name}")
        _psql(server, f"CREATE DATABASE {name}")
    else:
        _remove_sqlite(Path(urlsplit(url).path))


def manage(url: str, *args: str) -> float:
    """Run a manage.py command on the benchmark database; return its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True,
                   env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed_get(client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database for --reuse")
    parser.add_argument("--reuse", action="store_true", help="do not seed: reuse the database kept by --keep")
    parser.add_argument("--name", default="trio_bench", help="the database (PostgreSQL) or file (SQLite) to use")
    parser.add_argument("--tags", action="store_true",
                        help="seed with tags (seed_history --tags) and measure the tag-filtered pages too")
    args = parser.parse_args()

    with seeded_database(args, *(["--tags"] if args.tags else [])) as (url, seeding):
        run(url, args.rounds, seeding, tagged=args.tags)


@contextmanager
def seeded_database(args: argparse.Namespace, *seed_args: str):
    """Yield (database url, seconds seeding took or None) for `args.name`, seeded with `args.requests`
    requests unless `args.reuse`; afterwards close Django's connections and, unless `args.keep`, drop it."""
    url, dispose = database_url(args.name)
    seeding = None
    if not args.reuse:
        create_database(url, args.name)
        manage(url, "migrate", "--noinput", "-v", "0")
        seeding = manage(url, "seed_history", "--requests", str(args.requests), "--no-rollup", *seed_args)
    try:
        yield url, seeding
    finally:
        from django.db import connections
        connections.close_all()
        for connection in connections.all(initialized_only=True):
            if hasattr(connection, "close_pool"):  # PostgreSQL's pool keeps its sessions open otherwise
                connection.close_pool()
        if not args.keep:
            dispose()


def run(url: str, rounds: int, seeding: float | None, *, tagged: bool = False) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trio_site.settings")
    import django
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.utils import timezone

    from ensemble.models import CompletionRequest
    try:
        from ensemble.leaderboard import rollups, windows
    except ImportError:  # an older checkout, measured for comparison
        try:
            from ensemble import rollups  # before ensemble/leaderboard/
            windows = rollups.selectors
        except ImportError:  # before the rollup
            rollups = windows = None

    setup_test_environment()  # lets the test client's "testserver" host in
    staff, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True})
    client = Client()
    client.force_login(staff)
    total = CompletionRequest.objects.count()
    print(f"{connection.vendor}, {total} requests" + (f", seeded in {seeding:.1f}s" if seeding else ""))

    if rollups:
        rollups.rollup_invalidate()
        cold = timed_get(client, "/leaderboard/?window=all")
        by_view = rollups.RollupDay.objects.count()  # 0; an older checkout rolled up on the view
        print(f"cold leaderboard (nothing rolled up{f', rolled up {by_view} days' if by_view else ', all live'}): "
              f"{cold * 1000:.0f} ms")
        started = time.perf_counter()
        days = rollups.rollup_closed_days()
        print(f"rollup_votes: {len(days)} closed days in {(time.perf_counter() - started) * 1000:.0f} ms")

    now = timezone.now()
    today = now.date()
    pages = LEADERBOARD + history_pages(today.isoformat(), (today - timedelta(days=6)).isoformat())
    pages += TAGGED if tagged else []
    print(f"{'page':36} {'median ms':>9} {'min':>6} {'max':>6} {'queries':>7}")
    for name, path in pages:
        if path.endswith("page=last"):
            path = path.replace("last", str(-(-total // 50)))
        measure(client, name, path, rounds, CaptureQueriesContext, connection)

    if not rollups:
        return
    # From midnight until SETTLE after it, yesterday is not closed yet and is read live with
    # today. Stretch SETTLE past midnight to measure that: yesterday and today so far, live (an
    # upper bound: at 00:59 UTC the live part is yesterday and 59 minutes).
    windows.SETTLE = now - windows.utc_midnight(today) + timedelta(hours=1)
    for name, path in LEADERBOARD[2:8]:
        measure(client, f"{name} (yesterday live)", path, rounds, CaptureQueriesContext, connection)


def measure(client, name: str, path: str, rounds: int, capture, connection) -> None:
    """Print the median, min and max of `rounds` renders of `path` and the SQL statements of one."""
    timed_get(client, path)  # warm the caches once, as a visited page would be
    times = [timed_get(client, path) for _ in range(rounds)]
    with capture(connection) as queries:
        client.get(path)
    print(f"{name:36} {statistics.median(times) * 1000:9.0f} {min(times) * 1000:6.0f} "
          f"{max(times) * 1000:6.0f} {len(queries):7}")


if __name__ == "__main__":
    main()
