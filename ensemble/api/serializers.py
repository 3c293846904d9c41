"""Validation of the OpenAI chat body with plain DRF serializers (CPU only, safe in async views).

Numbers are strict: OpenAI rejects `"temperature": "0.5"` and `true` as a number, and so do we,
so a client bug shows up here rather than as odd sampling later.
"""
from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..voting.methods import ACCEPTANCE_VOTING, JUDGE, METHODS, SYNTHESIZE
from ..ensembles import MAX_DEPTH, MAX_MEMBERS, MAX_TOTAL_MEMBERS
from ..formats.structured import JSON_FORMATS
from ..formats.tools import tool_calls_of, unanswered_tool_message

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_MESSAGES = 10_000
# Content parts in all the messages of a request. OpenAI documents no limit; each part costs
# validation, storing and a copy in every backend call's body: 330 000 empty ones (an 8.6 MB body)
# took 125 ms to validate and 690 ms of a worker's CPU in all with the three-model trio. Counted
# before validation, so a refusal costs no more than parsing; 10 000 parts validate in 3 ms, and
# 10 000 messages of one part as fast as 10 000 messages of text.
MAX_CONTENT_PARTS = 10_000


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


TEXT_PART_SCHEMA = {
    "type": "object", "required": ["type", "text"],
    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
}


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": TEXT_PART_SCHEMA}],
                      "description": f"Text, or a list of text parts ({MAX_CONTENT_PARTS} at most in all the "
                                     f"messages). Null only for assistant messages."})
class ContentField(serializers.Field):
    """A message's content: a string, or a list of `{"type": "text", "text": ...}` parts."""

    default_error_messages = {
        "invalid": "Content must be a string or a list of text parts.",
        "part": 'Only text parts ({{"type": "text", "text": "..."}}) are supported.',
        "nul": "Content must not contain NUL characters.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            text = data
        elif isinstance(data, list) and data:
            if not all(_is_text_part(part) for part in data):
                self.fail("part")
            data = [{"type": "text", "text": part["text"]} for part in data]
            text = "".join(part["text"] for part in data)
        else:
            self.fail("invalid")
        if "\x00" in text:
            self.fail("nul")  # PostgreSQL cannot store NUL in text or jsonb
        return data

    def to_representation(self, value):
        return value


def _is_text_part(part) -> bool:
    return isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)


TOOL_CALL_SCHEMA = {
    "type": "object", "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string"}, "type": {"type": "string", "enum": ["function"]},
        "function": {"type": "object", "required": ["name", "arguments"],
                     "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}}},
    },
}


@extend_schema_field({"type": "array", "minItems": 1, "items": TOOL_CALL_SCHEMA,
                      "description": "The tool calls an earlier assistant turn made (assistant messages only)."})
class ToolCallsField(serializers.Field):
    """An assistant turn's `tool_calls`, kept as sent: a `tool` message is only valid after the call it
    answers, so a backend refuses the conversation if they are dropped."""

    default_error_messages = {
        "invalid": 'tool_calls must be a non-empty list of {{"id", "type": "function", '
                   '"function": {{"name", "arguments"}}}} objects.',
        "nul": "tool_calls must not contain NUL characters.",
    }

    def to_internal_value(self, data):
        calls = tool_calls_of(data)
        if calls is None:
            self.fail("invalid")
        if any("\x00" in text for c in calls for text in (c["id"], *c["function"].values())):
            self.fail("nul")  # PostgreSQL cannot store NUL in jsonb
        return calls

    def to_representation(self, value):
        return value


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    # Assistant turns that only made tool calls have no content (null, or left out as OpenAI allows).
    content = ContentField(allow_null=True, required=False)
    name = StrictCharField(required=False, min_length=1, max_length=256)
    tool_call_id = StrictCharField(required=False, min_length=1, max_length=256)
    tool_calls = ToolCallsField(required=False)

    def validate(self, attrs):
        if "content" not in attrs and "tool_calls" not in attrs:
            raise serializers.ValidationError({"content": "This field is required."})
        attrs.setdefault("content", None)
        if attrs["content"] is None and attrs["role"] != "assistant":
            raise serializers.ValidationError({"content": "Only assistant messages may have null content."})
        if "tool_calls" in attrs and attrs["role"] != "assistant":
            raise serializers.ValidationError({"tool_calls": "Only assistant messages may have tool_calls."})
        return attrs


UNANSWERED_TOOL_MESSAGE = ("A tool message must answer a tool call of the assistant message before it: "
                           "its tool_call_id must be the id of one of that message's tool_calls.")


class MessagesField(serializers.ListField):
    """`messages`, whose content parts are counted before any message is validated, and whose tool
    messages each answer a call of the assistant turn before them."""

    def to_internal_value(self, data):
        if isinstance(data, list):
            count_parts(data)
        messages = super().to_internal_value(data)
        index = unanswered_tool_message(messages)
        if index is not None:
            raise serializers.ValidationError({index: {"tool_call_id": [UNANSWERED_TOOL_MESSAGE]}})
        return messages


def count_parts(items: list, keys: tuple[str, ...] = ("content",), within: str = "messages") -> None:
    """Raise, naming the item (and its key) where the count passes MAX_CONTENT_PARTS, if the lists
    under `keys` of `items` hold more parts in all; cheap enough to run before any item is validated."""
    total = 0
    for index, item in enumerate(items):
        for key in keys:
            value = item.get(key) if isinstance(item, dict) else None
            total += len(value) if isinstance(value, list) else 0
            if total > MAX_CONTENT_PARTS:
                raise serializers.ValidationError({index: {key: [
                    f"A request may have at most {MAX_CONTENT_PARTS} content parts in all its {within}; "
                    f"join text parts into one string."]}})


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "maxItems": 4, "items": {"type": "string"}}]})
class StopField(serializers.Field):
    """`stop`: a string or up to four strings."""

    def to_internal_value(self, data):
        strings = [data] if isinstance(data, str) else data
        if not isinstance(strings, list) or len(strings) > 4 or not all(isinstance(s, str) for s in strings):
            raise serializers.ValidationError("stop must be a string or a list of at most 4 strings.")
        if any("\x00" in s for s in strings):
            raise serializers.ValidationError("stop must not contain NUL characters.")  # stored in params
        return data

    def to_representation(self, value):
        return value


NAME_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}  # of a response format's schema, of a function
RESPONSE_FORMAT_SCHEMA = {
    "type": "object", "required": ["type"],
    "description": "Passed to every member's generation call. With `json_object` or `json_schema`, a member "
                   "whose answer is not a JSON object fails, so the answer is always one.",
    "properties": {
        "type": {"type": "string", "enum": ["text", *JSON_FORMATS]},
        "json_schema": {
            "type": "object", "required": ["name"], "description": "Required when type is json_schema.",
            "properties": {"name": NAME_SCHEMA,
                           "description": {"type": "string"}, "schema": {"type": "object"},
                           "strict": {"type": "boolean", "nullable": True}},
        },
    },
}
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SCHEMA_DEPTH = 64  # JSON levels of a json_schema object; OpenAI allows far fewer (10 of objects)


@extend_schema_field(RESPONSE_FORMAT_SCHEMA)
class ResponseFormatField(serializers.Field):
    """`response_format`, as OpenAI defines it; returned with only the keys OpenAI knows."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError('Must be an object such as {"type": "json_object"}.')
        if data.get("type") not in ("text", *JSON_FORMATS):
            raise serializers.ValidationError(
                {"type": f"Must be one of: text, {', '.join(JSON_FORMATS)}."})
        if data["type"] != "json_schema":
            return {"type": data["type"]}
        spec = data.get("json_schema")
        if not isinstance(spec, dict):
            raise serializers.ValidationError({"json_schema": "Required when type is json_schema: an object."})
        return {"type": "json_schema",
                "json_schema": _field("json_schema", lambda it: _named_spec(it, "schema"), spec)}

    def to_representation(self, value):
        return value


def _named_spec(spec: dict, body: str) -> dict:
    """Return a named schema (a response format's `json_schema`, a tool's `function`) with only the
    keys OpenAI knows: `name`, and `description`, `body` (`schema` or `parameters`) and `strict` when
    set; or raise with the path to the fault."""
    kept = {"name": _spec_name(spec.get("name"))}
    for key, kind, what in (("description", str, "a string"), (body, dict, "an object"), ("strict", bool, "a boolean")):
        if spec.get(key) is None:
            continue
        if not isinstance(spec[key], kind):
            raise serializers.ValidationError({key: f"Must be {what}."})
        kept[key] = spec[key]
    fault = _json_fault(kept)
    if fault:
        raise serializers.ValidationError(fault)
    return kept


def _spec_name(name) -> str:
    """Return the name of a response format's schema or of a function, or raise saying what a name is."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise serializers.ValidationError({"name": "Required: 1 to 64 letters, digits, underscores or dashes."})
    return name


def _json_fault(value) -> str | None:
    """Return why a JSON value cannot be stored with the request's parameters, or None.

    PostgreSQL cannot store NUL in jsonb, and Django's JSON encoder recurses (Python's limit is
    1000 levels). A loop, not recursion, walks it: a client may nest as deep as the parser allows.
    """
    pending = [(value, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_SCHEMA_DEPTH:
            return f"Must not be nested more than {MAX_SCHEMA_DEPTH} levels deep."
        if isinstance(value, str) and "\x00" in value:
            return "Must not contain NUL characters."
        if isinstance(value, dict):
            pending += [(item, depth + 1) for item in (*value.keys(), *value.values())]
        elif isinstance(value, list):
            pending += [(item, depth + 1) for item in value]
    return None


MAX_TOOLS = 128  # OpenAI's own limit
TOOL_SCHEMA = {
    "type": "object", "required": ["type", "function"],
    "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object", "required": ["name"],
            "properties": {"name": NAME_SCHEMA, "description": {"type": "string"},
                           "parameters": {"type": "object", "description": "A JSON Schema of the arguments."},
                           "strict": {"type": "boolean", "nullable": True}},
        },
    },
}


@extend_schema_field({"type": "array", "minItems": 1, "maxItems": MAX_TOOLS, "items": TOOL_SCHEMA,
                      "description": "Passed to every member's generation call; a member may answer with tool "
                                     "calls, which voters read as sentences, and the winner's are the answer's."})
class ToolsField(serializers.Field):
    """`tools`: 1 to 128 functions, each returned with only the keys OpenAI knows."""

    def to_internal_value(self, data):
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_TOOLS:
            raise serializers.ValidationError(f"Must be a list of 1 to {MAX_TOOLS} tools.")
        return [_field(index, _tool, tool) for index, tool in enumerate(data)]

    def to_representation(self, value):
        return value


def _tool(tool) -> dict:
    """Return one tool of `tools`, or raise with the path to the fault."""
    if not isinstance(tool, dict):
        raise serializers.ValidationError('Must be an object: {"type": "function", "function": {"name": ...}}.')
    if tool.get("type") != "function":
        raise serializers.ValidationError({"type": "Must be function."})
    spec = tool.get("function")
    if not isinstance(spec, dict):
        raise serializers.ValidationError({"function": "Required: an object."})
    return {"type": "function", "function": _field("function", lambda it: _named_spec(it, "parameters"), spec)}


TOOL_CHOICES = ("none", "auto", "required")


@extend_schema_field({"oneOf": [
    {"type": "string", "enum": list(TOOL_CHOICES)},
    {"type": "object", "required": ["type", "function"], "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {"type": "object", "required": ["name"], "properties": {"name": NAME_SCHEMA}}}},
], "description": "none, auto, required, or one of `tools` by name; passed to every member's generation call."})
class ToolChoiceField(serializers.Field):
    """`tool_choice`: a word, or `{"type": "function", "function": {"name": ...}}` (checked against `tools`
    by the request's serializer)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data in TOOL_CHOICES:
            return data
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                f'Must be one of {", ".join(TOOL_CHOICES)}, or {{"type": "function", "function": {{"name": ...}}}}.')
        if data.get("type") != "function":
            raise serializers.ValidationError({"type": "Must be function."})
        if not isinstance(data.get("function"), dict):
            raise serializers.ValidationError({"function": "Required: an object naming the tool."})
        name = _field("function", _spec_name, data["function"].get("name"))
        return {"type": "function", "function": {"name": name}}

    def to_representation(self, value):
        return value


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
class ModelField(serializers.Field):
    """`model`: a name, or an ensemble object (members may be ensembles) returned normalized."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            return _ensemble_spec(data, depth=1, budget=[MAX_TOTAL_MEMBERS])
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a model name (a string) or an ensemble object.")
        return _model_name(data)

    def to_representation(self, value):
        return value


def _model_name(value) -> str:
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


def _ensemble_spec(data: dict, *, depth: int, budget: list[int]) -> dict:
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
    budget[0] -= len(members)
    if budget[0] < 0:
        raise serializers.ValidationError(
            {"ensemble": f"A request may define at most {MAX_TOTAL_MEMBERS} members in all, nested ones included."})
    # Absent or null means the default; any other value must be right, falsy ones included.
    method = _or_default(data, "aggregation_method", ACCEPTANCE_VOTING)
    if not isinstance(method, str) or method not in METHODS:
        raise serializers.ValidationError({"aggregation_method": f"Must be one of: {', '.join(METHODS)}."})
    spec = {"aggregation_method": method, "judge_model": "", "synthesize_model": ""}
    for key, needed_by in (("judge_model", JUDGE), ("synthesize_model", SYNTHESIZE)):
        if data.get(key) is not None:
            spec[key] = _field(key, _model_name, data[key])
        elif method == needed_by:
            raise serializers.ValidationError({key: f"Required when aggregation_method is {method}."})
    normalized = []
    for index, member in enumerate(members):
        try:
            normalized.append(_member(member, depth=depth, budget=budget))
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"ensemble": {index: exc.detail}}) from None
    return {"ensemble": normalized, **spec}


def _member(data, *, depth: int, budget: list[int]) -> dict:
    if isinstance(data, dict) and "ensemble" in data and "model" not in data:
        return {"model": _ensemble_spec(data, depth=depth + 1, budget=budget), "system_prompt": ""}
    if not isinstance(data, dict):
        raise serializers.ValidationError('A member is an object: {"model": "...", "system_prompt": "..."}.')
    unknown = sorted(set(data) - MEMBER_KEYS)
    if unknown:
        raise serializers.ValidationError({unknown[0]: f"Unknown field; a member has {sorted(MEMBER_KEYS)}."})
    model = data.get("model")
    if isinstance(model, dict):
        model = _field("model", lambda spec: _ensemble_spec(spec, depth=depth + 1, budget=budget), model)
    else:
        model = _field("model", _model_name, model)
    prompt = _or_default(data, "system_prompt", "")
    if not isinstance(prompt, str) or "\x00" in prompt:
        raise serializers.ValidationError({"system_prompt": "Must be a string without NUL characters."})
    return {"model": model, "system_prompt": prompt}


def _or_default(data: dict, key: str, default):
    """Return `data[key]`, or `default` when it is absent or null."""
    value = data.get(key)
    return default if value is None else value


def _field(key: str | int, parse, value):
    """Return `parse(value)`, with any error reported under `key`."""
    try:
        return parse(value)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({key: exc.detail}) from None


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = StrictBooleanField(required=False, help_text="Add a last chunk with the usage.")


class ChatCompletionRequestSerializer(serializers.Serializer):
    """The fields of POST /v1/chat/completions that Trio reads; any others are accepted and ignored.

    OpenAI itself refuses unknown fields, but clients send fields Trio has no use for (`user`,
    `logprobs`, ...), and refusing them would break those clients outright.
    """

    model = ModelField()
    messages = MessagesField(child=MessageSerializer(), allow_empty=False, min_length=1, max_length=MAX_MESSAGES)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_MEMBERS,
                           help_text="How many answers, best first (fewer if the ensemble has fewer).")
    stream = StrictBooleanField(required=False, allow_null=True,
                                help_text="Answer with server-sent events (text/event-stream).")
    stream_options = StreamOptionsSerializer(required=False, allow_null=True)
    stop = StopField(required=False, allow_null=True)
    seed = StrictIntegerField(required=False, allow_null=True)
    presence_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    frequency_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    response_format = ResponseFormatField(required=False, allow_null=True)
    tools = ToolsField(required=False, allow_null=True)
    tool_choice = ToolChoiceField(required=False, allow_null=True)
    parallel_tool_calls = StrictBooleanField(required=False, allow_null=True,
                                             help_text="Passed to every member's generation call, with tools.")

    def validate(self, attrs):
        # An explicit null means "not set", like OpenAI: drop it rather than send null upstream.
        attrs = {key: value for key, value in attrs.items() if value is not None}
        names = {tool["function"]["name"] for tool in attrs.get("tools", ())}
        choice = attrs.get("tool_choice")
        if isinstance(choice, dict) and choice["function"]["name"] not in names:
            raise serializers.ValidationError(
                {"tool_choice": {"function": {"name": "Must name one of the functions in tools."}}})
        if not names:
            # Nothing to choose among: a backend would refuse these without tools, and clients that
            # always send them were answered before tools were forwarded.
            attrs.pop("tool_choice", None)
            attrs.pop("parallel_tool_calls", None)
        return attrs


def first_error(errors, path: str = "") -> tuple[str, str]:
    """Return (param, message) of the first error in DRF's nested error structure."""
    if isinstance(errors, dict):
        key, value = next(iter(errors.items()))
        if key == "non_field_errors":
            return first_error(value, path)
        step = f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
        return first_error(value, path + step)
    if isinstance(errors, list) and errors:
        return first_error(errors[0], path)
    return path or None, str(errors)
