"""The body of POST /v1/chat/completions, validated with plain DRF serializers (CPU only, safe in
async views). The fields both APIs share are in fields.py, tool_fields.py and dsl.py."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..catalog.spec import MAX_MEMBERS
from ..formats.structured import JSON_FORMATS
from ..formats.tools import tool_calls_of, unanswered_tool_message
from .dsl import ModelField
from .fields import (
    MAX_CONTENT_PARTS, NAME_SCHEMA, JSONValueField, MetadataField, StrictBooleanField, StrictCharField,
    StrictFloatField, StrictIntegerField, count_parts, named_spec, under, user_field,
)
from .tool_fields import ChatToolChoiceField, ChatToolsField

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_MESSAGES = 10_000


# A chat content part is `{"type": "text"}`; the Responses API's input parts are typed input_text or
# output_text instead (responses.INPUT_TEXT_PART_SCHEMA): two schemas, as the two APIs define them.
CHAT_TEXT_PART_SCHEMA = {
    "type": "object", "required": ["type", "text"],
    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
}


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": CHAT_TEXT_PART_SCHEMA}],
                      "description": f"Text, or a list of text parts ({MAX_CONTENT_PARTS} at most in all the "
                                     f"messages). Null only for assistant messages."})
class ContentField(JSONValueField):
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
class ToolCallsField(JSONValueField):
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


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "maxItems": 4, "items": {"type": "string"}}]})
class StopField(JSONValueField):
    """`stop`: a string or up to four strings."""

    def to_internal_value(self, data):
        strings = [data] if isinstance(data, str) else data
        if not isinstance(strings, list) or len(strings) > 4 or not all(isinstance(s, str) for s in strings):
            raise serializers.ValidationError("stop must be a string or a list of at most 4 strings.")
        if any("\x00" in s for s in strings):
            raise serializers.ValidationError("stop must not contain NUL characters.")  # stored in params
        return data


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


@extend_schema_field(RESPONSE_FORMAT_SCHEMA)
class ResponseFormatField(JSONValueField):
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
                "json_schema": under("json_schema", lambda it: named_spec(it, "schema"), spec)}


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = StrictBooleanField(required=False, help_text="Add a last chunk with the usage.")


class ChatCompletionRequestSerializer(serializers.Serializer):
    """The fields of POST /v1/chat/completions that Trio reads; any others are accepted and ignored.

    OpenAI itself refuses unknown fields, but clients send fields Trio has no use for (`logprobs`,
    ...), and refusing them would break those clients outright. `metadata` and `user` are stored with
    the request (tags and the end user, for the history's filters) and never sent to the members.
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
    tools = ChatToolsField(required=False, allow_null=True)
    tool_choice = ChatToolChoiceField(required=False, allow_null=True)
    parallel_tool_calls = StrictBooleanField(required=False, allow_null=True,
                                             help_text="Passed to every member's generation call, with tools.")
    metadata = MetadataField(required=False, allow_null=True)
    user = user_field()

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
