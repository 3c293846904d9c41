"""DRF fields and helpers that both request bodies (chat completions and Responses) validate with.

Numbers are strict: OpenAI rejects `"temperature": "0.5"` and `true` as a number, and so do we,
so a client bug shows up here rather than as odd sampling later. The helpers below raise DRF's
`ValidationError` with the path to the fault, which `first_error` turns into OpenAI's `param`.
"""
from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# Content parts in all the messages of a request. OpenAI documents no limit; each part costs
# validation, storing and a copy in every backend call's body: 330 000 empty ones (an 8.6 MB body)
# took 125 ms to validate and 690 ms of a worker's CPU in all with the three-model trio. Counted
# before validation, so a refusal costs no more than parsing; 10 000 parts validate in 3 ms, and
# 10 000 messages of one part as fast as 10 000 messages of text.
MAX_CONTENT_PARTS = 10_000
MAX_SCHEMA_DEPTH = 64  # JSON levels of a json_schema object; OpenAI allows far fewer (10 of objects)
NAME_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}  # of a response format's schema, of a function
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


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


class JSONValueField(serializers.Field):
    """A field whose validated value is its JSON value as sent (or as `to_internal_value` shaped it)."""

    def to_representation(self, value):
        return value


# OpenAI's limits on a request's `metadata` (chat completions and Responses alike).
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# `user`: OpenAI documents no length; 256 is what it accepts in practice and fits an indexed column.
MAX_USER = 256


@extend_schema_field({"type": "object", "maxProperties": MAX_METADATA_KEYS,
                      "propertyNames": {"maxLength": MAX_METADATA_KEY},
                      "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
                      "description": "Stored with the request; each pair is a tag the history, leaderboard and "
                                     "export filter by (`?tag=key:value`). Not sent to the members."})
class MetadataField(JSONValueField):
    """`metadata`: at most 16 string keys of at most 64 characters, each a string of at most 512."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be an object of string keys and string values.")
        if len(data) > MAX_METADATA_KEYS:
            raise serializers.ValidationError(f"Must have at most {MAX_METADATA_KEYS} keys, not {len(data)}.")
        for key, value in data.items():
            if len(key) > MAX_METADATA_KEY:
                raise serializers.ValidationError(f"Keys must be at most {MAX_METADATA_KEY} characters.")
            if not isinstance(value, str):
                raise serializers.ValidationError(f"Values must be strings (key {key[:MAX_METADATA_KEY]!r}).")
            if len(value) > MAX_METADATA_VALUE:
                raise serializers.ValidationError(f"Values must be at most {MAX_METADATA_VALUE} characters.")
        fault = json_fault(data)  # NUL: PostgreSQL cannot store it
        if fault:
            raise serializers.ValidationError(fault)
        return data


def user_field() -> serializers.CharField:
    """Return the `user` field: the end user's id, stored (indexed) for `?user=` filters; not sent to the members."""
    return StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=MAX_USER,
                           trim_whitespace=False,
                           help_text="The end user's id: stored for the history's `?user=` filter, not sent "
                                     "to the members.")


def under(key: str | int, parse, value):
    """Return `parse(value)`, with any error reported under `key`."""
    try:
        return parse(value)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({key: exc.detail}) from None


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


def named_spec(spec: dict, body: str) -> dict:
    """Return a named schema (a response format's `json_schema`, a tool's `function`) with only the
    keys OpenAI knows: `name`, and `description`, `body` (`schema` or `parameters`) and `strict` when
    set; or raise with the path to the fault."""
    kept = {"name": spec_name(spec.get("name"))}
    for key, kind, what in (("description", str, "a string"), (body, dict, "an object"), ("strict", bool, "a boolean")):
        if spec.get(key) is None:
            continue
        if not isinstance(spec[key], kind):
            raise serializers.ValidationError({key: f"Must be {what}."})
        kept[key] = spec[key]
    fault = json_fault(kept)
    if fault:
        raise serializers.ValidationError(fault)
    return kept


def spec_name(name) -> str:
    """Return the name of a response format's schema or of a function, or raise saying what a name is."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise serializers.ValidationError({"name": "Required: 1 to 64 letters, digits, underscores or dashes."})
    return name


def json_fault(value) -> str | None:
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
