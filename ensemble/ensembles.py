"""Which backend models answer a request for a given `model` name."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Ensemble:
    """A named group of backend models that answer together and vote."""

    name: str
    members: tuple[str, ...]
    self_vote: bool = True
    timeout: float = 60.0


def ensemble_default() -> Ensemble:
    """Return the `trio` ensemble configured by TRIO_MODELS, TRIO_SELF_VOTE and TRIO_TIMEOUT."""
    return Ensemble(
        name="trio",
        members=tuple(settings.TRIO_MODELS),
        self_vote=settings.TRIO_SELF_VOTE == "include",
        timeout=settings.TRIO_TIMEOUT,
    )


def ensemble_get(name: str) -> Ensemble | None:
    """Return the ensemble a request's `model` names, or None if there is none by that name."""
    default = ensemble_default()
    return default if name == default.name else None


def ensemble_names() -> list[str]:
    """Return every model name a client may ask for."""
    return [ensemble_default().name]
