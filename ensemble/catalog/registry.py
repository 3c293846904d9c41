"""Which ensemble answers a request, from its `model`.

    "trio:<name>"          a named ensemble, and nothing else (unknown: None, which is a 404)
    "<name>"               a named ensemble if there is one; else the backend model of that name,
                           answering alone ("pass-through")
    {"ensemble": [...]}    an ensemble defined in the request (the upstream DSL), already validated
                           by the API serializer; members may be ensembles themselves

Named ensembles are `EnsembleDefinition` rows, edited in the admin; `trio` is built from TRIO_MODELS
unless a row of that name replaces it. Each process keeps the rows for `EnsembleCache.ttl` seconds
(a save or delete in this process clears them at once: `ensembles_changed`), so resolving a name
costs no query on most requests; other processes see an admin change within that time.
"""
from __future__ import annotations

import dataclasses
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Prefetch

from ..db import releases_connection
from ..models import EnsembleDefinition, EnsembleMember
from .spec import DEFAULT_NAME, PREFIX, Ensemble, ensemble_default, ensemble_from_spec, ensemble_passthrough

logger = logging.getLogger(__name__)


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
    seconds old; `clear()` (from a save signal) drops them at once. Also holds catalog.prices' prices."""

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


def ensembles_changed(**kwargs) -> None:
    """Forget the loaded ensembles (connected in EnsembleConfig.ready to saves and deletes of their rows)."""
    ensemble_cache.clear()
