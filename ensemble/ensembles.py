"""Which ensemble answers a request, from its `model`.

    "trio:<name>"          a named ensemble, and nothing else (unknown: None, which is a 404)
    "<name>"               a named ensemble if there is one; else the backend model of that name,
                           answering alone ("pass-through")
    {"ensemble": [...]}    an ensemble defined in the request (the upstream DSL), already validated
                           by the API serializer; members may be ensembles themselves

Named ensembles are `EnsembleDefinition` rows, edited in the admin; `trio` is built from TRIO_MODELS
unless a row of that name replaces it. Each process keeps the rows for `EnsembleCache.ttl` seconds
(a save or delete in this process clears them at once), so resolving a name costs no query on most
requests; other processes see an admin change within that time.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Prefetch
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from . import aggregation
from .db import releases_connection
from .models import EnsembleDefinition, EnsembleMember

logger = logging.getLogger(__name__)

DEFAULT_NAME = "trio"
PREFIX = "trio:"
# Limits of request-defined ensembles: every member costs a call (and a ballot when voting).
MAX_MEMBERS = 9  # per ensemble, at every level
MAX_DEPTH = 3  # an ensemble in an ensemble in an ensemble
MAX_TOTAL_MEMBERS = 27  # every member at every level of one request
LABEL_MAX_CHARS = 200  # the model columns of the history


@dataclass(frozen=True)
class Ensemble:
    """A group of backend models that answer together, and how their answers become one reply.

    `members` are the members' labels, in order (the tie-break): a backend model name, or for a
    nested ensemble its own name. `system_prompts` and `inner` run parallel to them when set.
    """

    name: str
    members: tuple[str, ...]
    self_vote: bool = True
    timeout: float = 60.0
    aggregation: str = aggregation.ACCEPTANCE_VOTING
    system_prompts: tuple[str, ...] = ()
    inner: tuple[Ensemble | None, ...] = ()  # a nested ensemble answers for that member
    judge_model: str = ""
    synthesize_model: str = ""
    origin: str = "config"  # "config" (trio or the admin), "request" (the DSL) or "passthrough"

    def system_prompt(self, position: int) -> str:
        """Return the system prompt prepended to member `position`'s conversation ("" for none)."""
        return self.system_prompts[position] if position < len(self.system_prompts) else ""

    def subensemble(self, position: int) -> Ensemble | None:
        """Return the ensemble that answers for member `position`, or None for a backend model."""
        return self.inner[position] if position < len(self.inner) else None

    def lead_model(self, position: int) -> str:
        """Return the backend model that speaks for member `position`: itself, or a nested ensemble's first."""
        inner = self.subensemble(position)
        return self.members[position] if inner is None else inner.lead_model(0)

    @property
    def metrics_name(self) -> str:
        """Return the ensemble's metrics label: names chosen by clients would make label values unbounded."""
        return self.name if self.origin == "config" else self.origin


def ensemble_default() -> Ensemble:
    """Return the `trio` ensemble configured by TRIO_MODELS, TRIO_SELF_VOTE and TRIO_TIMEOUT."""
    return Ensemble(
        name=DEFAULT_NAME,
        members=tuple(settings.TRIO_MODELS),
        self_vote=settings.TRIO_SELF_VOTE == "include",
        timeout=settings.TRIO_TIMEOUT,
    )


def ensemble_passthrough(model: str) -> Ensemble:
    """Return the one-member "ensemble" that sends a request straight to backend model `model`."""
    return Ensemble(name=model, members=(model,), timeout=settings.TRIO_TIMEOUT,
                    aggregation=aggregation.PASSTHROUGH, origin="passthrough")


def ensemble_from_spec(spec: dict) -> Ensemble:
    """Return the ensemble a validated DSL object describes (see api.serializers.ModelField)."""
    members = spec["ensemble"]
    inner = tuple(ensemble_from_spec(m["model"]) if isinstance(m["model"], dict) else None for m in members)
    labels = tuple(sub.name if sub else m["model"] for m, sub in zip(members, inner))
    method = spec["aggregation_method"]
    return Ensemble(
        name=ensemble_label(method, labels),
        members=labels,
        self_vote=settings.TRIO_SELF_VOTE == "include",
        timeout=settings.TRIO_TIMEOUT,
        aggregation=method,
        system_prompts=tuple(m["system_prompt"] for m in members),
        inner=inner if any(inner) else (),
        judge_model=spec["judge_model"],
        synthesize_model=spec["synthesize_model"],
        origin="request",
    )


def ensemble_label(method: str, members: tuple[str, ...]) -> str:
    """Return the name of a request-defined ensemble, e.g. `ensemble(m1,m2)` or `judge(m1,m2)`.

    Stored as the request's ensemble and as the model of the candidate it answers in an outer
    ensemble, so it is cut to fit those columns (with a digest, so that long names stay distinct).
    """
    prefix = "ensemble" if method == aggregation.ACCEPTANCE_VOTING else method
    label = f"{prefix}({','.join(members)})"
    if len(label) <= LABEL_MAX_CHARS:
        return label
    digest = hashlib.sha256(label.encode()).hexdigest()[:12]
    return f"{label[:LABEL_MAX_CHARS - 15]}…~{digest})"


def ensemble_calls_max(ensemble: Ensemble) -> int:
    """Return the most backend calls one request to `ensemble` can make, retries aside.

    Counted: a generation call per backend member at every level of nesting (for `random`, only the
    member drawn, so the costliest), plus what aggregation adds once two members have answered: a
    ballot per member for acceptance voting, one call for the judge or the synthesizer. Each of
    these calls carries its own copy of the conversation.
    """
    members = range(len(ensemble.members))
    generation = [1 if ensemble.subensemble(p) is None else ensemble_calls_max(ensemble.subensemble(p))
                  for p in members]
    if ensemble.aggregation == aggregation.RANDOM:
        return max(generation)
    per_method = {aggregation.ACCEPTANCE_VOTING: len(members), aggregation.JUDGE: 1, aggregation.SYNTHESIZE: 1}
    return sum(generation) + (per_method.get(ensemble.aggregation, 0) if len(members) > 1 else 0)


async def ensemble_for(model: str | dict) -> Ensemble | None:
    """Return the ensemble that answers a request's `model`, or None for an unknown `trio:<name>`."""
    if isinstance(model, dict):
        return ensemble_from_spec(model)
    if model.startswith(PREFIX):
        return await ensemble_named(model.removeprefix(PREFIX))
    return await ensemble_named(model) or ensemble_passthrough(model)


async def ensemble_named(name: str) -> Ensemble | None:
    """Return the named ensemble `name`: an admin-defined one, or the TRIO_MODELS default."""
    rows = await ensemble_cache.rows()
    if name in rows:
        return _with_defaults(rows[name])
    return ensemble_default() if name == DEFAULT_NAME else None


async def ensembles_all() -> list[Ensemble]:
    """Return every named ensemble, `trio` first."""
    rows = await ensemble_cache.rows()
    default = _with_defaults(rows[DEFAULT_NAME]) if DEFAULT_NAME in rows else ensemble_default()
    return [default] + [_with_defaults(e) for name, e in sorted(rows.items()) if name != DEFAULT_NAME]


def models_configured() -> frozenset[str]:
    """Return the backend models an operator named: TRIO_MODELS, and the members, judges and
    synthesizers of the named ensembles as this process last loaded them (no query)."""
    named = list(ensemble_cache.loaded().values())
    return frozenset(settings.TRIO_MODELS).union(
        *(e.members for e in named), (e.judge_model for e in named), (e.synthesize_model for e in named))


def _with_defaults(ensemble: Ensemble) -> Ensemble:
    # Rows without a timeout follow TRIO_TIMEOUT as it is now, not as it was when they were cached.
    return ensemble if ensemble.timeout is not None else dataclasses.replace(ensemble, timeout=settings.TRIO_TIMEOUT)


@releases_connection
def _load_rows() -> dict[str, Ensemble]:
    """Return every admin-defined ensemble with members, by name (two queries)."""
    members = Prefetch("members", queryset=EnsembleMember.objects.order_by("position", "id"))
    rows = EnsembleDefinition.objects.prefetch_related(members)
    return {row.name: _from_row(row) for row in rows if row.members.all()}


def _from_row(row: EnsembleDefinition) -> Ensemble:
    members = list(row.members.all())
    return Ensemble(
        name=row.name,
        members=tuple(m.model for m in members),
        self_vote=row.self_vote,
        timeout=row.timeout,  # None: TRIO_TIMEOUT, filled in by _with_defaults
        aggregation=row.aggregation_method,
        system_prompts=tuple(m.system_prompt for m in members),
        judge_model=row.judge_model,
        synthesize_model=row.synthesize_model,
    )


class ConfigCache:
    """Admin-edited configuration rows of this process (`load()`'s dict), reloaded once they are `ttl`
    seconds old; `clear()` (from a save signal) drops them at once. Also holds ensemble.pricing's prices."""

    ttl = 5.0
    timer = time.monotonic

    def __init__(self, load, what: str):
        self._load, self._what = load, what
        self._rows: dict | None = None
        self._expires = 0.0
        self._generation = 0

    async def rows(self) -> dict:
        now = self.timer()
        if self._rows is not None and now < self._expires:
            return self._rows
        generation = self._generation
        try:
            rows = await sync_to_async(self._load)()
        except DatabaseError:
            if self._rows is None:
                raise
            # Answering with the rows as they were beats failing every request while the
            # database is away; the next request tries again.
            logger.warning("could not reload %s; using those loaded before", self._what, exc_info=True)
            return self._rows
        if generation == self._generation:  # else cleared while loading: the rows may be stale already
            self._rows, self._expires = rows, now + self.ttl
        return rows

    def loaded(self) -> dict:
        """Return the rows as last loaded, however old ({} before the first load); never queries."""
        return self._rows or {}

    def clear(self) -> None:
        self._rows = None
        self._generation += 1


class EnsembleCache(ConfigCache):
    """The admin-defined ensembles of this process, by name."""

    def __init__(self):
        super().__init__(_load_rows, "the named ensembles")


ensemble_cache = EnsembleCache()


@receiver([post_save, post_delete], sender=EnsembleDefinition, dispatch_uid="trio-ensembles-changed")
@receiver([post_save, post_delete], sender=EnsembleMember, dispatch_uid="trio-ensemble-members-changed")
def _ensembles_changed(**kwargs) -> None:
    ensemble_cache.clear()
