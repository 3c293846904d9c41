"""Ensembles as values: what one is, the limits of request-defined ones, their labels, and the
rules that say whether an ensemble can take a request (its fan-out budget, what concat can answer).

Pure: no database and no HTTP. `registry` finds the ensemble a request names; the API turns a
`Refusal` raised here into its OpenAI error.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings

from ..formats.structured import JSON_FORMATS
from ..voting.methods import ACCEPTANCE_VOTING, PASSTHROUGH, Method, method_named

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
    aggregation: str = ACCEPTANCE_VOTING  # a method's name: see `method`
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
    def method(self) -> Method:
        """Return the aggregation method that turns the members' answers into one reply."""
        return method_named(self.aggregation)

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
                    aggregation=PASSTHROUGH, origin="passthrough")


def ensemble_from_spec(spec: dict) -> Ensemble:
    """Return the ensemble a validated DSL object describes (see api.dsl.ModelField)."""
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
    label = f"{method_named(method).label_prefix}({','.join(members)})"
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
    return ensemble.method.calls_max(generation)


class Refusal(ValueError):
    """A request this ensemble cannot answer as asked; `param` names the request field at fault."""

    def __init__(self, message: str, *, param: str):
        super().__init__(message)
        self.param = param


class OverFanout(Refusal):
    """The request times the ensemble's backend calls is over TRIO_MAX_FANOUT_BYTES."""


def check_fanout(size: int, ensemble: Ensemble) -> None:
    """Raise OverFanout if the body times the ensemble's backend calls is over TRIO_MAX_FANOUT_BYTES.

    Each call carries its own copy of the conversation, so the product is about what the request
    holds in memory at its peak; the body (messages, tools, system prompts) bounds a copy, cheaply.
    """
    calls, limit = ensemble_calls_max(ensemble), settings.TRIO_MAX_FANOUT_BYTES
    if size * calls > limit:
        raise OverFanout(
            f"This {size}-byte request would be sent to {calls} backend calls ({size * calls} bytes in all), over "
            f"the {limit}-byte limit (TRIO_MAX_FANOUT_BYTES). Use an ensemble with fewer members, or a shorter "
            f"conversation: at most {limit // calls} bytes with this one.", param="messages")


def check_concat(params: dict, ensemble: Ensemble) -> None:
    """Raise Refusal for a JSON format, or tools the members may call, when a concat ensemble answers:
    its answer is every member's text under a heading, never the one JSON object or tool call those promise."""
    if not ensemble.method.joins_answers:
        return
    if params.get("response_format", {}).get("type") in JSON_FORMATS:
        raise Refusal("A concat ensemble joins every answer under a heading, which is not one JSON "
                      "object: use another aggregation_method with this format.", param="response_format")
    if params.get("tools") and params.get("tool_choice") != "none":
        raise Refusal("A concat ensemble answers text, never tool calls: use another aggregation_method "
                      "with tools, or tool_choice none.", param="tools")
