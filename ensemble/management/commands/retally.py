"""``manage.py retally``: the what-if re-tally of /leaderboard/what-if.json, for big windows.

    python manage.py retally                             # all time, every ensemble
    python manage.py retally --window 7d --ensemble trio
    python manage.py retally --rule borda --rule without # only these rules (`without`: every model)

Prints one line per rule: requests re-counted, changed, cost saved, and the first changed ids.
Reads only (ensemble.leaderboard.whatif); the time it took goes on the first line.
"""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from ensemble.leaderboard import whatif, windows
from ensemble.management.arguments import positive_int


class Command(BaseCommand):
    help = "Count the stored ballots of a window again under other rules (the what-if re-tally)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--window", choices=list(windows.WINDOWS), default=windows.DEFAULT_WINDOW)
        parser.add_argument("--ensemble", default="", help="only this ensemble's requests")
        parser.add_argument("--rule", action="append", dest="rules",
                            help="only this rule (repeatable): borda, approval, exclude_self_votes, "
                                 "include_self_votes, without, without:<model>")
        parser.add_argument("--chunk", type=positive_int, default=whatif.CHUNK_SIZE, help="requests read at a time")

    def handle(self, *args, window: str, ensemble: str, rules, chunk: int, **options) -> None:
        unknown = [name for name in rules or () if not whatif.rule_known(name)]
        if unknown:
            raise CommandError(f"Unknown rule(s): {', '.join(unknown)}.")
        started = time.perf_counter()
        result = whatif.what_if(window=window, ensemble=ensemble, rules=rules, chunk_size=chunk)
        elapsed = time.perf_counter() - started
        scope = f"window {result.window}" + (f", ensemble {result.ensemble}" if result.ensemble else "")
        self.stdout.write(f"{result.requests} request(s) re-counted ({scope}; {result.not_reproduced} "
                          f"not reproduced, left out) in {elapsed:.2f}s")
        for outcome in result.rules:
            cost = "unknown" if outcome.cost_saved is None else f"{outcome.cost_saved:.4f}"
            self.stdout.write(f"{outcome.rule:30} {outcome.requests:8} {outcome.changed:8} {cost:>10}  "
                              + " ".join(outcome.changed_ids))
