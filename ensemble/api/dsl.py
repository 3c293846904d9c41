"""The `model` field: a model or ensemble name, or an ensemble object (the upstream Trio DSL).

An ensemble object is normalized here (every key set, members in order) so that
`catalog.spec.ensemble_from_spec` builds an `Ensemble` from it without checking anything again. Members
may be ensembles themselves, within the limits the catalog sets: members per ensemble, depth, and in all.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..voting.methods import ACCEPTANCE_VOTING, EXTRA_MODEL_FIELDS, METHODS, method_named
from ..catalog.spec import MAX_DEPTH, MAX_MEMBERS, MAX_TOTAL_MEMBERS
from .fields import JSONValueField, under

MODEL_NAME_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 200}
MEMBER_SCHEMA = {
    "type": "object", "required": ["model"], "additionalProperties": False,
    "description": "A member: a backend model (or a nested ensemble object), with an optional system prompt "
                   "prepended to its copy of the conversation.",
    "properties": {
        "model": {"oneOf": [MODEL_NAME_SCHEMA, {
            "type": "object", "description": f"A nested ensemble: the same shape as the `model` object "
                                             f"(at most {MAX_DEPTH} levels, {MAX_TOTAL_MEMBERS} members in all)."}]},
        "system_prompt": {"type": "string", "nullable": True},
    },
}
ENSEMBLE_SCHEMA = {
    "type": "object", "required": ["ensemble"], "additionalProperties": False,
    "description": "An ensemble defined in the request (the upstream Trio DSL).",
    "properties": {
        "ensemble": {"type": "array", "minItems": 1, "maxItems": MAX_MEMBERS, "items": {"anyOf": [
            MEMBER_SCHEMA,
            {"type": "object", "required": ["ensemble"], "description": "A nested ensemble standing for a member."},
        ]}},
        "aggregation_method": {"type": "string", "enum": list(METHODS), "default": ACCEPTANCE_VOTING},
        "judge_model": {**MODEL_NAME_SCHEMA, "description": "The model that judges; required for judge."},
        "synthesize_model": {**MODEL_NAME_SCHEMA, "description": "The model that combines; required for synthesize."},
    },
}
ENSEMBLE_KEYS = set(ENSEMBLE_SCHEMA["properties"])
MEMBER_KEYS = set(MEMBER_SCHEMA["properties"])


@extend_schema_field({
    "oneOf": [MODEL_NAME_SCHEMA, ENSEMBLE_SCHEMA],
    "description": "An ensemble name (`trio`, an admin-defined one, or `trio:<name>`), any other backend "
                   "model name (answered by that model alone), or an ensemble object.",
})
class ModelField(JSONValueField):
    """`model`: a name, or an ensemble object (members may be ensembles) returned normalized."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            return ensemble_spec(data, depth=1, budget=MemberBudget(MAX_TOTAL_MEMBERS))
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a model name (a string) or an ensemble object.")
        return model_name(data)


class MemberBudget:
    """The members one request may still define, nested ones included, spent as ensembles are read."""

    def __init__(self, members: int):
        self.left = members

    def spend(self, members: int) -> None:
        """Take `members` from the budget, or raise once it is overspent."""
        self.left -= members
        if self.left < 0:
            raise serializers.ValidationError(
                {"ensemble": f"A request may define at most {MAX_TOTAL_MEMBERS} members in all, nested ones included."})


def model_name(value) -> str:
    """Return a model name stripped, or raise saying why it cannot be one."""
    if not isinstance(value, str):
        raise serializers.ValidationError("Must be a model name (a string).")
    name = value.strip()
    if not name:
        raise serializers.ValidationError("The model name must not be empty.")
    if len(name) > 200:
        raise serializers.ValidationError("A model name has at most 200 characters.")
    # A model name is written verbatim into each completion's log line and the history: a newline
    # or other control character would let a client forge log lines, and PostgreSQL refuses NUL.
    if not name.isprintable():
        raise serializers.ValidationError("A model name must not contain NUL, control characters or line breaks.")
    return name


def ensemble_spec(data: dict, *, depth: int, budget: MemberBudget) -> dict:
    """Return a DSL ensemble object normalized (every key set), or raise with the path to the fault."""
    if depth > MAX_DEPTH:
        raise serializers.ValidationError(f"Ensembles may be nested at most {MAX_DEPTH} levels deep.")
    unknown = sorted(set(data) - ENSEMBLE_KEYS)
    if unknown:
        raise serializers.ValidationError({unknown[0]: f"Unknown field; an ensemble has {sorted(ENSEMBLE_KEYS)}."})
    members = data.get("ensemble")
    if not isinstance(members, list) or not members:
        raise serializers.ValidationError({"ensemble": "An ensemble needs a non-empty list of members."})
    if len(members) > MAX_MEMBERS:
        raise serializers.ValidationError(
            {"ensemble": f"An ensemble has at most {MAX_MEMBERS} members; this one has {len(members)}."})
    budget.spend(len(members))
    # Absent or null means the default; any other value must be right, falsy ones included.
    method = _or_default(data, "aggregation_method", ACCEPTANCE_VOTING)
    if not isinstance(method, str) or method not in METHODS:
        raise serializers.ValidationError({"aggregation_method": f"Must be one of: {', '.join(METHODS)}."})
    spec = {"aggregation_method": method, **dict.fromkeys(EXTRA_MODEL_FIELDS, "")}
    needed = method_named(method).needs_model
    for key in EXTRA_MODEL_FIELDS:
        if data.get(key) is not None:
            spec[key] = under(key, model_name, data[key])
        elif key == needed:
            raise serializers.ValidationError({key: f"Required when aggregation_method is {method}."})
    normalized = []
    for index, member in enumerate(members):
        try:
            normalized.append(_member(member, depth=depth, budget=budget))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"ensemble": {index: exc.detail}}) from None
    return {"ensemble": normalized, **spec}


def _member(data, *, depth: int, budget: MemberBudget) -> dict:
    if isinstance(data, dict) and "ensemble" in data and "model" not in data:
        return {"model": ensemble_spec(data, depth=depth + 1, budget=budget), "system_prompt": ""}
    if not isinstance(data, dict):
        raise serializers.ValidationError('A member is an object: {"model": "...", "system_prompt": "..."}.')
    unknown = sorted(set(data) - MEMBER_KEYS)
    if unknown:
        raise serializers.ValidationError({unknown[0]: f"Unknown field; a member has {sorted(MEMBER_KEYS)}."})
    model = data.get("model")
    if isinstance(model, dict):
        model = under("model", lambda spec: ensemble_spec(spec, depth=depth + 1, budget=budget), model)
    else:
        model = under("model", model_name, model)
    prompt = _or_default(data, "system_prompt", "")
    if not isinstance(prompt, str) or "\x00" in prompt:
        raise serializers.ValidationError({"system_prompt": "Must be a string without NUL characters."})
    return {"model": model, "system_prompt": prompt}


def _or_default(data: dict, key: str, default):
    """Return `data[key]`, or `default` when it is absent or null."""
    value = data.get(key)
    return default if value is None else value
