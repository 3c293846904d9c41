"""POST /v1/responses: OpenAI's Responses API body, validated and turned into a chat conversation.

The ensemble pipeline speaks chat completions, so a Responses request becomes one:

    instructions                    a system message, first (it replaces the leading system
                                    message of a continued conversation, so it is never doubled)
    previous_response_id            the stored request's messages, then its answer (text, tool calls)
    input                           a string (one user message), or items: messages (input_text /
                                    output_text parts), function_call (an assistant turn's tool call)
                                    and function_call_output (a tool message)
    max_output_tokens               max_tokens
    tools (flat function tools)     chat tools; tool_choice {"type": "function", "name"} likewise
    text.format                     response_format

Anything Trio cannot honour (images, files, reasoning items, built-in tools, background mode) is a
400 naming the param, as bad values are: answering without it would be answering another question.
"""
from __future__ import annotations

from asgiref.sync import sync_to_async
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..history import stored as stored_responses
from ..models import ApiKey
from ..formats.structured import JSON_FORMATS
from .errors import InvalidRequest, ResponseNotFound
from .dsl import ModelField
from .fields import (
    NAME_SCHEMA, JSONValueField, MetadataField, StrictBooleanField, StrictCharField, StrictFloatField,
    StrictIntegerField, count_parts, json_fault, named_spec, spec_name, under, user_field,
)
from .tool_fields import FlatToolChoiceField, FlatToolsField

MAX_ITEMS = 10_000  # as chat's messages
ITEM_TYPES = ("message", "function_call", "function_call_output")
MESSAGE_ROLES = ("user", "system", "developer", "assistant")
TEXT_PART_TYPES = ("input_text", "output_text")

# Not chat's CHAT_TEXT_PART_SCHEMA: the Responses API types its text parts input_text and output_text.
INPUT_TEXT_PART_SCHEMA = {
    "type": "object", "required": ["type", "text"],
    "properties": {"type": {"type": "string", "enum": list(TEXT_PART_TYPES)}, "text": {"type": "string"}},
}
INPUT_ITEM_SCHEMA = {"oneOf": [
    {"type": "object", "required": ["role", "content"], "description": "A message (`type` may be left out).",
     "properties": {"type": {"type": "string", "enum": ["message"]},
                    "role": {"type": "string", "enum": list(MESSAGE_ROLES)},
                    "content": {"oneOf": [{"type": "string"},
                                          {"type": "array", "minItems": 1, "items": INPUT_TEXT_PART_SCHEMA}]}}},
    {"type": "object", "required": ["type", "call_id", "name", "arguments"],
     "description": "A tool call an earlier answer made.",
     "properties": {"type": {"type": "string", "enum": ["function_call"]}, "call_id": {"type": "string", "minLength": 1},
                    "name": NAME_SCHEMA, "arguments": {"type": "string"}}},
    {"type": "object", "required": ["type", "call_id", "output"], "description": "What a tool call returned.",
     "properties": {"type": {"type": "string", "enum": ["function_call_output"]},
                    "call_id": {"type": "string", "minLength": 1}, "output": {"type": "string"}}},
]}


@extend_schema_field({"oneOf": [{"type": "string"},
                                {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": INPUT_ITEM_SCHEMA}],
                      "description": "Text (one user message), or a list of messages, function calls and their "
                                     "outputs. Images, files and reasoning items are refused."})
class InputField(JSONValueField):
    """`input`, returned as the chat messages it stands for."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return [{"role": "user", "content": _text(data)}]
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_ITEMS:
            raise serializers.ValidationError(f"Must be a string or a list of 1 to {MAX_ITEMS} input items.")
        count_parts(data, ("content", "output"), "input items")  # chat's limit, counted the same way
        messages: list[dict] = []
        for index, item in enumerate(data):
            under(index, lambda it: _add_item(messages, it), item)
        return messages


def conversation_parts(messages: list[dict]) -> int:
    """Return how many content parts the chat `messages` hold in all."""
    return sum(len(m["content"]) for m in messages if isinstance(m.get("content"), list))


def _add_item(messages: list[dict], item) -> None:
    """Append the chat message an input item stands for; a function call joins the assistant turn before it."""
    if not isinstance(item, dict):
        raise serializers.ValidationError("Must be an object: a message, a function_call or a function_call_output.")
    fault = json_fault(item)
    if fault:
        raise serializers.ValidationError(fault)
    kind = item.get("type", "message")
    if kind not in ITEM_TYPES:
        raise serializers.ValidationError({"type": f"Input items of type {str(kind)[:64]!r} are not supported; "
                                                   f"Trio reads {', '.join(ITEM_TYPES)}."})
    if kind == "message":
        messages.append(_message(item))
    elif kind == "function_call_output":
        messages.append({"role": "tool", "tool_call_id": _required_string(item, "call_id"),
                         "content": under("output", _output, item.get("output"))})
    elif messages and messages[-1]["role"] == "assistant":
        messages[-1].setdefault("tool_calls", []).append(_function_call(item))
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [_function_call(item)]})


def _message(item: dict) -> dict:
    if item.get("role") not in MESSAGE_ROLES:
        raise serializers.ValidationError({"role": f"Must be one of: {', '.join(MESSAGE_ROLES)}."})
    return {"role": item["role"], "content": under("content", _content, item.get("content"))}


def _content(content):
    """Return a message's content as chat has it: the string, or its text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise serializers.ValidationError("Must be a string or a non-empty list of input_text parts.")
    return [{"type": "text", "text": under(index, _text_part, part)} for index, part in enumerate(content)]


def _text_part(part) -> str:
    if not isinstance(part, dict):
        raise serializers.ValidationError('Must be an object: {"type": "input_text", "text": "..."}.')
    if part.get("type") not in TEXT_PART_TYPES:
        raise serializers.ValidationError({"type": f"Content parts of type {str(part.get('type'))[:64]!r} are not "
                                                   "supported (no images, files or audio); only input_text and "
                                                   "output_text."})
    if not isinstance(part.get("text"), str):
        raise serializers.ValidationError({"text": "Required: a string."})
    return part["text"]


def _output(output) -> str:
    """Return a function call's output: a string, or the text of its input_text parts."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and output:
        return "".join(under(index, _text_part, part) for index, part in enumerate(output))
    raise serializers.ValidationError("Required: a string.")


def _function_call(item: dict) -> dict:
    return {"id": _required_string(item, "call_id"), "type": "function",
            "function": {"name": under("name", spec_name, item.get("name")),
                         "arguments": under("arguments", _string, item.get("arguments"))}}


def _required_string(item: dict, key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise serializers.ValidationError({key: "Required: a string of 1 to 256 characters."})
    return value


def _string(value) -> str:
    if not isinstance(value, str):
        raise serializers.ValidationError("Required: a string.")
    return value


def _text(value: str) -> str:
    if "\x00" in value:
        raise serializers.ValidationError("Must not contain NUL characters.")  # PostgreSQL cannot store them
    return value


TEXT_FORMAT_SCHEMA = {
    "type": "object", "required": ["type"],
    "properties": {"type": {"type": "string", "enum": ["text", *JSON_FORMATS]},
                   "name": {**NAME_SCHEMA, "description": "Required for json_schema."},
                   "schema": {"type": "object", "description": "Required for json_schema."},
                   "description": {"type": "string", "nullable": True},
                   "strict": {"type": "boolean", "nullable": True}},
}


@extend_schema_field({"type": "object", "properties": {"format": TEXT_FORMAT_SCHEMA},
                      "description": "`format` asks every member for text, a JSON object or JSON of a schema."})
class TextField(JSONValueField):
    """`text`: `{"format": {...}}`, returned with only the keys OpenAI knows (`verbosity` is dropped)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError('Must be an object such as {"format": {"type": "text"}}.')
        if data.get("format") is None:
            return {"format": {"type": "text"}}
        return {"format": under("format", _text_format, data["format"])}


def _text_format(spec) -> dict:
    if not isinstance(spec, dict) or spec.get("type") not in ("text", *JSON_FORMATS):
        raise serializers.ValidationError({"type": f"Must be one of: text, {', '.join(JSON_FORMATS)}."})
    if spec["type"] != "json_schema":
        return {"type": spec["type"]}
    if not isinstance(spec.get("schema"), dict):
        raise serializers.ValidationError({"schema": "Required for json_schema: an object."})
    return {"type": "json_schema", **named_spec(spec, "schema")}


class ResponseRequestSerializer(serializers.Serializer):
    """The fields of POST /v1/responses that Trio reads; any others are accepted and ignored."""

    model = ModelField()
    input = InputField()
    instructions = StrictCharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False,
                                   help_text="A system message put first.")
    previous_response_id = StrictCharField(required=False, allow_null=True, max_length=200,
                                           help_text="Continue a stored response: its conversation and answer.")
    temperature = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=2)
    top_p = StrictFloatField(required=False, allow_null=True, min_value=0, max_value=1)
    max_output_tokens = StrictIntegerField(required=False, allow_null=True, min_value=1,
                                           help_text="Passed as max_tokens to every member's generation call.")
    tools = FlatToolsField(required=False, allow_null=True)
    tool_choice = FlatToolChoiceField(required=False, allow_null=True)
    parallel_tool_calls = StrictBooleanField(required=False, allow_null=True)
    text = TextField(required=False, allow_null=True)
    stream = StrictBooleanField(required=False, allow_null=True,
                                help_text="Answer with server-sent events (text/event-stream).")
    store = StrictBooleanField(required=False, allow_null=True, help_text="Ignored: Trio stores every request.")
    background = StrictBooleanField(required=False, allow_null=True, help_text="Only false: no background mode.")
    conversation = serializers.JSONField(required=False, allow_null=True,
                                         help_text="Only null: Trio has no conversation objects (previous_response_id "
                                                   "continues a conversation).")
    prompt = serializers.JSONField(required=False, allow_null=True, help_text="Only null: no stored prompt templates.")
    metadata = MetadataField(required=False, allow_null=True)
    user = user_field()

    def validate(self, attrs):
        attrs = {key: value for key, value in attrs.items() if value is not None}
        if attrs.get("background"):
            raise serializers.ValidationError({"background": "Background mode is not supported."})
        for unsupported in ("conversation", "prompt"):
            if unsupported in attrs:
                raise serializers.ValidationError({unsupported: "Not supported by Trio; leave it out."})
        names = {tool["name"] for tool in attrs.get("tools", ())}
        choice = attrs.get("tool_choice")
        if isinstance(choice, dict) and choice["name"] not in names:
            raise serializers.ValidationError({"tool_choice": {"name": "Must name one of the functions in tools."}})
        return attrs


# Shared by every request, as chat's serializer is (see views.CHAT_REQUEST).
RESPONSE_REQUEST = ResponseRequestSerializer()


def chat_request(payload: dict, previous: list[dict] | None = None) -> tuple[list[dict], dict]:
    """Return the chat messages and parameters a validated Responses body asks for, after the `previous`
    conversation (a stored request's messages and answer) when it continues one."""
    previous = list(previous or ())
    if payload.get("instructions"):
        if previous and previous[0]["role"] == "system":
            previous = previous[1:]  # the earlier instructions: OpenAI does not carry them over either
        previous.insert(0, {"role": "system", "content": payload["instructions"]})
    params = {key: payload[key] for key in ("temperature", "top_p") if key in payload}
    if "max_output_tokens" in payload:
        params["max_tokens"] = payload["max_output_tokens"]
    text_format = payload.get("text", {}).get("format", {"type": "text"})
    if text_format["type"] == "json_schema":
        params["response_format"] = {"type": "json_schema", "json_schema": {
            key: value for key, value in text_format.items() if key != "type"}}
    elif text_format["type"] != "text":
        params["response_format"] = {"type": text_format["type"]}
    if payload.get("tools"):
        # Without tools, tool_choice and parallel_tool_calls are dropped, as chat completions does.
        params["tools"] = [{"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
                           for tool in payload["tools"]]
        choice = payload.get("tool_choice")
        if choice is not None:
            params["tool_choice"] = choice if isinstance(choice, str) else {
                "type": "function", "function": {"name": choice["name"]}}
        if "parallel_tool_calls" in payload:
            params["parallel_tool_calls"] = payload["parallel_tool_calls"]
    return [*previous, *payload["input"]], params


def responses_settings(params: dict) -> dict:
    """Return the Responses settings that a stored request's chat parameters stand for: `chat_request`'s
    parameters read back."""
    settings = {key: params[key] for key in ("temperature", "top_p", "parallel_tool_calls") if key in params}
    if "max_tokens" in params:
        settings["max_output_tokens"] = params["max_tokens"]
    settings["tools"] = [{"type": "function", **tool["function"]} for tool in params.get("tools", ())]
    choice = params.get("tool_choice")
    if choice is not None:
        settings["tool_choice"] = choice if isinstance(choice, str) else {"type": "function", **choice["function"]}
    response_format = params.get("response_format")
    if response_format is not None:
        settings["text"] = {"format": {"type": response_format["type"], **response_format.get("json_schema", {})}}
    return settings


async def previous_conversation(response_id: str, *, api_key: ApiKey | None) -> list[dict]:
    """Return the conversation a stored response continues (its messages, then its answer), or raise
    404 for an id that is not this API key's response, 400 for one that has no answer to continue."""
    stored = await stored_response(response_id, api_key=api_key, param="previous_response_id")
    messages = stored.request.messages
    if stored.answer is None:
        why = f"has no answer (it is {stored.request.status})"
    elif any("content" not in message for message in messages):
        why = "was stored without its text (TRIO_STORE_CONTENT=0)"
    else:
        return [*messages, stored.answer]
    raise InvalidRequest(f"The response {response_id} {why}, so it cannot be continued.",
                         param="previous_response_id")


async def stored_response(response_id: str, *, api_key: ApiKey | None,
                          param: str | None = None) -> stored_responses.StoredResponse:
    """Return the stored response `response_id` of this API key (None: the API is open), or raise 404
    (naming `param` when a request field gave the id)."""
    code = f"{param.removesuffix('_id')}_not_found" if param else None
    if api_key is not None and api_key.pk is None:
        # A TRIO_API_KEYS key has no row, so its requests are stored without a key, as are every
        # other such key's and those the API answered while open: whose they are is unknown.
        raise ResponseNotFound("Stored responses are read only with keys made by create_api_key: a "
                               "TRIO_API_KEYS key's responses cannot be told from anyone else's.",
                               param=param, code=code)
    stored = await sync_to_async(stored_responses.stored_response)(
        response_id=response_id, api_key_id=api_key.pk if api_key else None)
    if stored is None:
        raise ResponseNotFound(f"Response with id '{response_id}' not found.", param=param, code=code)
    return stored
