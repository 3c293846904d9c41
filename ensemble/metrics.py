"""Prometheus metrics and the one log line per completion.

With several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR to an empty writable directory so
/metrics aggregates every worker (prometheus_client's multiprocess mode); with one worker the
default registry is enough.
"""
from __future__ import annotations

import logging

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the view)

from .outcomes import CompletionOutcome

logger = logging.getLogger("ensemble.completions")

COMPLETIONS = Counter("trio_completions", "Completions answered, by ensemble and outcome.", ["ensemble", "status"])
BACKEND_CALLS = Histogram(
    "trio_backend_call_seconds", "Latency of backend calls, by model, round and result.",
    ["model", "round", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
BALLOTS = Counter("trio_ballots", "Ballots cast in voting rounds, by voter and result.", ["voter_model", "status"])
WINS = Counter("trio_wins", "Completions won, by model.", ["ensemble", "model"])


def completion_observe(outcome: CompletionOutcome) -> None:
    """Count the outcome in the metrics and write its one log line."""
    ensemble = outcome.ensemble.name
    label = outcome.ensemble.metrics_name  # "request" / "passthrough" for names clients choose
    COMPLETIONS.labels(label, outcome.status).inc()
    for c in outcome.candidates:
        BACKEND_CALLS.labels(_model_label(outcome, c.model, c.status), "generation", c.status).observe(
            c.latency_ms / 1000)
    for b in outcome.ballots:
        voter = _model_label(outcome, b.voter_model, b.status)
        BACKEND_CALLS.labels(voter, "voting", b.status).observe(b.latency_ms / 1000)
        BALLOTS.labels(voter, b.status).inc()
    if outcome.winner is not None:
        WINS.labels(label, outcome.winner.model).inc()
    logger.info(
        "completion %s ensemble=%s status=%s winner=%s latency_ms=%d members=%s",
        outcome.public_id, ensemble, outcome.status, outcome.winner.model if outcome.winner else "-",
        outcome.latency_ms, " ".join(f"{c.model}:{c.status}:{c.latency_ms}ms" for c in outcome.candidates),
        extra={
            "completion_id": outcome.public_id, "ensemble": ensemble, "status": outcome.status,
            "winner": outcome.winner.model if outcome.winner else None, "latency_ms": outcome.latency_ms,
            "members": [{"model": c.model, "status": c.status, "latency_ms": c.latency_ms}
                        for c in outcome.candidates],
        },
    )


def _model_label(outcome: CompletionOutcome, model: str, status: str) -> str:
    """Return the metrics label of a backend model: its name when an operator configured it or the
    backend answered it (the backend's own model list bounds those), else "other".

    DSL and pass-through requests name models freely; labelling every name a client sends would
    let anyone grow /metrics and the worker's memory without bound.
    """
    return model if outcome.ensemble.origin == "config" or status == "ok" else OTHER_MODEL


OTHER_MODEL = "other"


def metrics_exposition() -> bytes:
    """Return the metrics in Prometheus' text format, across workers in multiprocess mode."""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
