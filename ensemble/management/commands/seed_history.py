"""Write realistic synthetic vote history, fast: `python manage.py seed_history --requests 100000`.

For load-testing the history pages and leaderboards. Each synthetic model has a hidden strength;
voters accept a candidate with a probability that grows with its strength and prefer the
strongest they accepted (with noise), some calls fail or time out and some ballots are garbage.
Winners are decided by the real tally and ranking in `ensemble.voting`, so every row is one the
service could have written.

Speed: rows are plain dicts written with one multi-row `executemany` per table and batch (COPY on
PostgreSQL), with primary keys assigned here. Building model instances and letting `bulk_create`
compile the INSERTs cost four times the database's own work. Keys assigned here mean nothing else
may write history while it runs: it is a tool for an empty or a test database.

The synthetic history lies in the past, in days whose leaderboard rollup may already be
materialized: those days are invalidated, then the rollup is rebuilt (unless `--no-rollup`).
"""
from __future__ import annotations

import math
import random
import time
import uuid
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from ensemble import voting
from ensemble.leaderboard import rollups
from ensemble.management.arguments import positive_int
from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest, RequestTag

MODELS = {"llama3.2-3b": 0.2, "mistral": 0.6, "qwen2.5-7b": 1.0, "gemma2-9b": 0.8, "phi3": -0.2}
ENSEMBLES = {
    "trio": ("qwen2.5-7b", "llama3.2-3b", "mistral"),
    "small": ("llama3.2-3b", "phi3", "mistral"),
    "wide": ("qwen2.5-7b", "gemma2-9b", "mistral", "llama3.2-3b", "phi3"),
}
# --tags: every request gets metadata {"team": one of TEAMS, "product": one of PRODUCTS}, and its tag rows.
TEAMS = tuple("abcde")
PRODUCTS = tuple(f"p{n:02d}" for n in range(1, 21))
PROMPTS = [
    "Explain the difference between a process and a thread.",
    "Write a haiku about autumn rain.",
    "What is the capital of Australia?",
    "Summarize the causes of the French Revolution in three sentences.",
    "How do I reverse a linked list in Python?",
    "Give me a recipe for a quick vegetarian dinner.",
]


class Command(BaseCommand):
    help = "Write synthetic vote history (requests, candidates, ballots, marks) in bulk."

    def add_arguments(self, parser):
        # At least 1 each: a batch of 0 never finishes, and negative days would date rows in the future.
        parser.add_argument("--requests", type=positive_int, default=10_000)
        parser.add_argument("--days", type=positive_int, default=60, help="Spread requests over this many past days.")
        parser.add_argument("--batch", type=positive_int, default=5_000, help="Requests written per transaction.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--no-rollup", action="store_true",
                            help="Leave the leaderboard rollup to be rebuilt lazily.")
        parser.add_argument("--tags", action="store_true",
                            help="Tag every request: metadata team (one of 5) and product (one of 20).")

    def handle(self, *args, requests, days, batch, seed, no_rollup, tags, **options):
        rng = random.Random(seed)
        # Its own generator, so the votes seeded are the same with or without tags.
        tag_rng = random.Random(seed + 1) if tags else None
        now = timezone.now()
        writer = RowWriter()
        started, written = time.monotonic(), 0
        while written < requests:
            size = min(batch, requests - written)
            writer.write([_tagged(tag_rng, _synthetic_request(rng, now, days)) for _ in range(size)])
            written += size
            self.stdout.write(f"{written}/{requests} requests ({time.monotonic() - started:.1f}s)")
        writer.reset_sequences()
        self.stdout.write(self.style.SUCCESS(f"Wrote {written} requests in {time.monotonic() - started:.1f}s."))
        _analyze()
        # Every day the history touched, today included (an open day has no rollup rows anyway).
        rollups.rollup_invalidate(since=(now - timedelta(days=days)).date())
        if not no_rollup:
            started = time.monotonic()
            done = rollups.rollup_closed_days()
            self.stdout.write(f"Rolled up {len(done)} closed day(s) in {time.monotonic() - started:.1f}s.")


def _analyze() -> None:
    """On PostgreSQL, VACUUM ANALYZE the history tables, as autovacuum would soon after a bulk load.

    Until then the planner has no statistics (it guessed a seq scan of 1.3M marks for one day's
    requests) and no visibility map (index-only scans still read the table).
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:  # VACUUM refuses transactions
        return
    with connection.cursor() as cursor:
        for model in (CompletionRequest, Candidate, Ballot, BallotMark, RequestTag):
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _synthetic_request(rng: random.Random, now: datetime, days: int):
    ensemble = rng.choice(list(ENSEMBLES))
    members = ENSEMBLES[ensemble]
    prompt = rng.choice(PROMPTS)
    request = dict(
        id=uuid.uuid4(), created_at=now - timedelta(seconds=rng.uniform(0, days * 86400)), ensemble=ensemble,
        members=list(members), messages=[{"role": "user", "content": prompt}], prompt_excerpt=prompt,
    )
    candidates = [_candidate(rng, i, model) for i, model in enumerate(members)]
    eligible = [c["index"] for c in candidates if c["status"] == "ok"]
    ballots, marks = [], []
    if len(eligible) > 1:
        for voter in eligible:
            ballot, ballot_marks = _ballot(rng, voter, members, eligible)
            ballots.append(ballot)
            marks += ballot_marks
    _decide(request, candidates, ballots, marks, members)
    return request, candidates, ballots, marks


def _tagged(rng: random.Random | None, rows):
    """Return the request's rows with its metadata set (no change without a generator: --tags not given)."""
    if rng is not None:
        rows[0]["metadata"] = {"team": rng.choice(TEAMS), "product": rng.choice(PRODUCTS)}
    return rows


def _candidate(rng, index, model) -> dict:
    roll = rng.random()
    status = "ok" if roll < 0.95 else ("timeout" if roll < 0.97 else "error")
    tokens = rng.randint(20, 400)
    return dict(
        index=index, model=model, status=status,
        content=f"Synthetic answer by {model}." if status == "ok" else "",
        error="" if status == "ok" else f"synthetic {status}", finish_reason="stop" if status == "ok" else "",
        latency_ms=int(rng.lognormvariate(math.log(800 + 200 * index), 0.4)),
        prompt_tokens=30, completion_tokens=tokens, total_tokens=30 + tokens,
        accepted_count=0, preferred_count=0, rank=None, is_winner=False,
    )


def _ballot(rng, voter, members, eligible):
    order = eligible[:]
    rng.shuffle(order)
    ballot = dict(voter_index=voter, voter_model=members[voter], shown_order=order, status="ok", error="",
                  latency_ms=int(rng.lognormvariate(math.log(400), 0.3)),
                  prompt_tokens=200, completion_tokens=8, total_tokens=208)
    if rng.random() < 0.03:
        ballot.update(status="unparseable", raw_text="Both are fine I guess.", error="no ACCEPTED line")
        return ballot, []
    strength = {c: MODELS[members[c]] + (0.3 if c == voter else 0.0) for c in eligible}  # a little self-bias
    accepted = {c for c in eligible if rng.random() < 1 / (1 + math.exp(-(strength[c] + 0.8)))}
    preferred = max(accepted, key=lambda c: strength[c] + rng.gauss(0, 0.5)) if accepted else None
    positions = {c: p for p, c in enumerate(order, start=1)}
    ballot["raw_text"] = (f"ACCEPTED: {', '.join(str(positions[c]) for c in sorted(accepted, key=positions.get)) or 'NONE'}\n"
                          f"PREFERRED: {positions[preferred] if preferred is not None else 'NONE'}")
    marks = [voting.Mark(voter, c, c in accepted, c == preferred) for c in order]
    return ballot, [(ballot, m, positions[m.candidate]) for m in marks]


def _decide(request, candidates, ballots, marks, members):
    ok = [c for c in candidates if c["status"] == "ok"]
    request["status"] = "failed" if not ok else ("ok" if len(ok) == len(candidates) else "partial")
    totals = voting.tally((c["index"] for c in ok), (m for _, m, _ in marks))
    ranking = voting.rank(totals)
    for rank, index in enumerate(ranking, start=1):
        candidate = candidates[index]
        candidate.update(accepted_count=totals[index].accepted, preferred_count=totals[index].preferred,
                         rank=rank, is_winner=rank == 1)
    request["winner_index"] = ranking[0] if ranking else None
    request["winner_model"] = members[ranking[0]] if ranking else ""
    request["voter_count"] = sum(b["status"] == "ok" for b in ballots)
    request["generation_ms"] = max(c["latency_ms"] for c in candidates)
    request["voting_ms"] = max((b["latency_ms"] for b in ballots), default=0)
    request["latency_ms"] = request["generation_ms"] + request["voting_ms"] + 5
    request["completion_tokens"] = sum(c["completion_tokens"] for c in candidates)
    request["prompt_tokens"] = sum(c["prompt_tokens"] for c in candidates) + sum(b["prompt_tokens"] for b in ballots)
    request["total_tokens"] = request["prompt_tokens"] + request["completion_tokens"]
    request["error"] = "; ".join(f"{c['model']}: {c['error']}" for c in candidates) if not ok else ""


class RowWriter:
    """Insert plain dict rows, every column of the model in one statement per table, keys assigned here."""

    def __init__(self):
        self.next_id = {model: (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
                        for model in (Candidate, Ballot, BallotMark, RequestTag)}

    def write(self, rows) -> None:
        """Write a batch of (request, candidates, ballots, marks) in one transaction."""
        requests, candidates, ballots, marks, tags = [], [], [], [], []
        for request, request_candidates, request_ballots, request_marks in rows:
            requests.append(request)
            tags += [dict(id=self._key(RequestTag), request_id=request["id"], key=key, value=value)
                     for key, value in request.get("metadata", {}).items()]
            for c in request_candidates:
                c.update(id=self._key(Candidate), request_id=request["id"])
                candidates.append(c)
            for b in request_ballots:
                b.update(id=self._key(Ballot), request_id=request["id"])
                ballots.append(b)
            for ballot, mark, position in request_marks:
                candidate = request_candidates[mark.candidate]
                marks.append(dict(
                    id=self._key(BallotMark), ballot_id=ballot["id"], request_id=request["id"],
                    candidate_id=candidate["id"], voter_model=ballot["voter_model"], author_model=candidate["model"],
                    position=position, accepted=mark.accepted, preferred=mark.preferred, is_self=mark.is_self,
                    counted=True,
                ))
        with transaction.atomic(), connection.cursor() as cursor:
            for model, table_rows in ((CompletionRequest, requests), (Candidate, candidates),
                                      (Ballot, ballots), (BallotMark, marks), (RequestTag, tags)):
                _insert(cursor, model, table_rows)

    def _key(self, model) -> int:
        key = self.next_id[model]
        self.next_id[model] = key + 1
        return key

    def reset_sequences(self) -> None:
        """Move PostgreSQL's id sequences past the keys assigned here (SQLite needs nothing)."""
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Candidate, Ballot, BallotMark, RequestTag]):
                cursor.execute(sql)


def _insert(cursor, model, rows: list[dict]) -> None:
    """Insert `rows` (dicts by attname; a missing column takes the field's default) into `model`'s table."""
    if not rows:
        return
    fields = model._meta.concrete_fields
    defaults = {f.attname: f.get_default() for f in fields}
    # Only these need the backend's conversion (JSON text or jsonb, UUID text, UTC datetime text...).
    prepared = {f.attname: f for f in fields if _needs_conversion(f.target_field if f.is_relation else f)}
    values = [
        [prepared[name].get_db_prep_save(value, connection) if name in prepared else value
         for name, value in ((f.attname, row.get(f.attname, defaults[f.attname])) for f in fields)]
        for row in rows
    ]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    if connection.vendor == "postgresql":
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        return
    cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", values)


def _needs_conversion(field) -> bool:
    return field.get_internal_type() in ("JSONField", "UUIDField", "DateTimeField")
