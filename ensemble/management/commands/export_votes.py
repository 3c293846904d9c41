"""``manage.py export_votes``: stream the vote history out as JSON Lines or CSV.

    python manage.py export_votes --format jsonl --since 2025-01-01 -o votes.jsonl
    python manage.py export_votes --format csv --model mistral > mistral.csv
    python manage.py export_votes --tag team:search --tag product:web --user u42 --key backend-app

The formats and how memory stays flat: ensemble.history.export.
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from datetime import UTC, datetime, time
from typing import NoReturn

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ensemble.history.export import requests_for_export, write_csv, write_jsonl
from ensemble.history.filters import FilterError, RequestFilter
from ensemble.management.arguments import positive_int


class Command(BaseCommand):
    help = "Export requests with their candidates and ballots as JSON Lines or CSV (one row per candidate)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
        parser.add_argument("--since", type=parse_since, metavar="DATE",
                            help="only requests created at or after this date or ISO datetime (UTC if naive)")
        parser.add_argument("--model", help="only requests in which this backend model was a member")
        parser.add_argument("--ensemble", default="", help="only requests to this ensemble")
        parser.add_argument("--tag", action="append", default=[], metavar="KEY:VALUE",
                            help="only requests whose metadata has this pair (repeatable: every one must match)")
        parser.add_argument("--user", default="", help="only requests with this `user`")
        parser.add_argument("--key", default="", metavar="NAME", help="only requests made with an API key of this name")
        parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
        parser.add_argument("--chunk-size", type=positive_int, default=500, help="requests read per database round trip")

    def handle(self, *args, **options) -> None:
        try:  # the same filters, and limits, as the pages' ?tag=, ?user= and ?key=
            request_filter = RequestFilter.from_query(
                {"tag": options["tag"], "user": options["user"], "key": options["key"]})
        except FilterError as exc:
            raise CommandError(f"--{exc.param}: {exc}") from None
        requests = requests_for_export(since=options["since"], model=options["model"],
                                       chunk_size=options["chunk_size"], ensemble=options["ensemble"],
                                       request_filter=request_filter)
        write = write_csv if options["format"] == "csv" else write_jsonl
        with self._output(options["output"]) as out:
            try:
                count = write(requests, out)
            except BrokenPipeError:
                if out is not self.stdout:
                    raise  # a file given with -o: _output reports it
                requests.close()  # release the database cursor now, not at interpreter exit
                _exit_quietly()
        # On stderr: standard output may be the export itself.
        self.stderr.write(f"Exported {count} request(s).", style_func=self.style.SUCCESS)

    @contextmanager
    def _output(self, path: str | None):
        """Yield a text stream for the export: the file at `path`, else standard output."""
        if not path:
            yield self.stdout
            return
        try:
            with open(path, "w", encoding="utf-8", newline="") as stream:
                yield stream
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from exc


def _exit_quietly() -> NoReturn:
    """Exit as a Unix tool does when its reader went away (`export_votes | head`): no traceback.

    The recipe of Python's signal module docs: standard output is pointed at devnull, because
    Python flushes it on exit and would fail on the closed pipe again; status 1, as for EPIPE.
    """
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)


def parse_since(value: str) -> datetime:
    """Return the aware datetime an ISO date or datetime names; a bare date means its midnight UTC."""
    try:
        moment = parse_datetime(value)  # also takes a bare date, as midnight
        if moment is None and (day := parse_date(value)) is not None:
            moment = datetime.combine(day, time.min)
    except ValueError:  # well-formed but impossible, e.g. 2025-02-30
        moment = None
    if moment is None:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {value!r}")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
