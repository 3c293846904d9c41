"""Prometheus metrics and the one log line per completion.

With several gunicorn workers, set PROMETHEUS_MULTIPROC_DIR to an empty writable directory so
/metrics aggregates every worker (prometheus_client's multiprocess mode); with one worker the
default registry is enough.
"""
from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the view)

from .catalog.registry import models_configured
from .outcomes import CompletionOutcome

logger = logging.getLogger("ensemble.completions")

COMPLETIONS = Counter("trio_completions", "Completions answered, by ensemble and outcome.", ["ensemble", "status"])
BACKEND_CALLS = Histogram(
    "trio_backend_call_seconds", "Latency of backend calls, by model, round and result.",
    ["model", "round", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
BALLOTS = Counter("trio_ballots", "Ballots cast in voting rounds, by voter and result.", ["voter_model", "status"])
COST = Counter(
    "trio_backend_cost_usd", "Known cost of backend calls in USD (ensemble.formats.costs), by model; calls of unknown cost add nothing.",
    ["model"],
)
WINS = Counter("trio_wins", "Completions won, by model.", ["ensemble", "model"])
ADMISSION_WAIT = Histogram(
    "trio_admission_wait_seconds",
    "Time chat completions waited for an admission slot before starting (TRIO_ADMISSION_SLOTS).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
GC_PAUSES = Histogram(
    "trio_gc_pause_seconds",
    "Time the garbage collector stopped the process (event loop included), by generation 1 or 2.",
    ["generation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)


class _GCPauseTimer:
    """A `gc.callbacks` hook timing collections of generations 1 and 2 into GC_PAUSES.

    Generation 0 is left out: it runs thousands of times a second under load, well under a
    millisecond each, and timing it would cost more than it tells.
    """

    def __init__(self):
        self.started = 0.0
        self.histograms = {1: GC_PAUSES.labels("1"), 2: GC_PAUSES.labels("2")}

    def __call__(self, phase: str, info: dict) -> None:
        histogram = self.histograms.get(info["generation"])
        if histogram is None:
            return
        if phase == "start":
            self.started = time.perf_counter()
        else:
            histogram.observe(time.perf_counter() - self.started)


def gc_pauses_time() -> None:
    """Start timing this process's collector pauses into GC_PAUSES (once; trio_site.asgi calls it).

    Only where requests are served: a management command's pauses stop no request, and with
    PROMETHEUS_MULTIPROC_DIR set (as `make run` and the container also set it for `migrate` and
    `rollup_votes`) they would be summed into the server's histogram.
    """
    if not any(isinstance(callback, _GCPauseTimer) for callback in gc.callbacks):
        gc.callbacks.append(_GCPauseTimer())


def completion_observe(outcome: CompletionOutcome) -> None:
    """Count the outcome in the metrics and write its one log line."""
    ensemble = outcome.ensemble.name
    label = outcome.ensemble.metrics_name  # "request" / "passthrough" for names clients choose
    model_label = _model_labeller(outcome)
    COMPLETIONS.labels(label, outcome.status).inc()
    for c in outcome.candidates:
        BACKEND_CALLS.labels(model_label(c.model), "generation", c.status).observe(c.latency_ms / 1000)
    for b in outcome.ballots:
        voter = model_label(b.voter_model)
        BACKEND_CALLS.labels(voter, "voting", b.status).observe(b.latency_ms / 1000)
        BALLOTS.labels(voter, b.status).inc()
    _cost_observe(outcome, model_label)
    if outcome.winner is not None:
        WINS.labels(label, model_label(outcome.winner.model)).inc()
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


def _cost_observe(outcome: CompletionOutcome, model_label: Callable[[str], str]) -> None:
    """Add the known cost of the outcome's own backend calls: a nested ensemble's candidate is left
    out, its calls are counted with its own outcome."""
    calls = [(c.model, c.cost_usd) for c in outcome.candidates if c.request_id is None]
    calls += [(b.voter_model, b.cost_usd) for b in outcome.ballots]
    for model, cost in calls:
        if cost is not None:
            COST.labels(model_label(model)).inc(float(cost))


def _model_labeller(outcome: CompletionOutcome) -> Callable[[str], str]:
    """Return the function giving a backend model's metrics label in `outcome`: its name when an
    operator configured it (TRIO_MODELS, a named ensemble), else "other".

    DSL and pass-through requests name models freely, and a backend may answer any name (a
    LiteLLM wildcard route, the fake backend): a label per name a client sends would let anyone
    grow /metrics and the worker's memory without bound, answered or not.
    """
    if outcome.ensemble.origin == "config":  # `trio` or a named ensemble: all its models are configured
        return lambda model: model
    configured = models_configured()
    return lambda model: model if model in configured else OTHER_MODEL


OTHER_MODEL = "other"


def metrics_exposition() -> bytes:
    """Return the metrics in Prometheus' text format, across workers in multiprocess mode."""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
