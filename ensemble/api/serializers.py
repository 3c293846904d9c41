"""Validation of the OpenAI chat body with plain DRF serializers (CPU only, safe in async views).

Numbers are strict: OpenAI rejects `"temperature": "0.5"` and `true` as a number, and so do we,
so a client bug shows up here rather than as odd sampling later.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

ROLES = ("system", "developer", "user", "assistant", "tool")


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
                      "description": "Text, or a list of text parts. Null only for assistant messages."})
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


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)
    # Assistant turns that only made tool calls have no content.
    content = ContentField(allow_null=True)
    name = StrictCharField(required=False, min_length=1, max_length=256)
    tool_call_id = StrictCharField(required=False, min_length=1, max_length=256)

    def validate(self, attrs):
        if attrs.get("content") is None and attrs["role"] != "assistant":
            raise serializers.ValidationError({"content": "Only assistant messages may have null content."})
        return attrs


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


class ChatCompletionRequestSerializer(serializers.Serializer):
    """The fields of POST /v1/chat/completions that Trio reads; others are ignored, as OpenAI does."""

    model = StrictCharField(min_length=1, max_length=200)
    messages = serializers.ListField(child=MessageSerializer(), allow_empty=False, min_length=1, max_length=10_000)
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    max_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    max_completion_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1)
    n = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=1,
                           error_messages={"max_value": "Only n=1 is supported for now."})
    stream = StrictBooleanField(required=False, allow_null=True)
    stop = StopField(required=False, allow_null=True)
    seed = StrictIntegerField(required=False, allow_null=True)
    presence_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2, max_value=2)
    frequency_penalty = StrictFloatField(required=False, allow_null=True, min_value=-2, max_value=2)

    def validate(self, attrs):
        # An explicit null means "not set", like OpenAI: drop it rather than send null upstream.
        return {key: value for key, value in attrs.items() if value is not None}


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
