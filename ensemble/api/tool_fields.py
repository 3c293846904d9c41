"""`tools` and `tool_choice` of both request bodies: one validation, two shapes of a function tool.

Chat completions nests a function under `function` (`{"type": "function", "function": {"name"}}`);
the Responses API flattens it (`{"type": "function", "name"}`). Each field below checks the list,
the type and the name once; a subclass per API says only where the function's keys are and what
its messages show. Both return only the keys OpenAI knows.
"""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .fields import NAME_SCHEMA, JSONValueField, named_spec, spec_name, under

MAX_TOOLS = 128  # OpenAI's own limit
TOOL_CHOICES = ("none", "auto", "required")


class ToolsField(JSONValueField):
    """`tools`: function tools, `min_tools` to MAX_TOOLS of them."""

    min_tools: int
    too_many: str  # the message for a value that is not a list of that many
    shape: str  # a tool, as the messages show it
    not_function: str  # the message for another type of tool; {kind} is replaced by it

    def to_internal_value(self, data):
        if not isinstance(data, list) or not self.min_tools <= len(data) <= MAX_TOOLS:
            raise serializers.ValidationError(self.too_many)
        return [under(index, self.tool, tool) for index, tool in enumerate(data)]

    def tool(self, tool) -> dict:
        """Return one tool of `tools`, or raise with the path to the fault."""
        if not isinstance(tool, dict):
            raise serializers.ValidationError(f"Must be an object: {self.shape}.")
        if tool.get("type") != "function":
            raise serializers.ValidationError({"type": self.not_function.format(kind=str(tool.get("type"))[:64])})
        return {"type": "function", **self.function(tool)}

    def function(self, tool: dict) -> dict:
        """Return the keys of a function tool after `type`."""
        raise NotImplementedError


class ToolChoiceField(JSONValueField):
    """`tool_choice`: a word, or the function to call (checked against `tools` by the request's serializer)."""

    shape: str  # a chosen function, as the messages show it
    not_function: str

    def to_internal_value(self, data):
        if isinstance(data, str) and data in TOOL_CHOICES:
            return data
        if not isinstance(data, dict):
            raise serializers.ValidationError(f'Must be one of {", ".join(TOOL_CHOICES)}, or {self.shape}.')
        if data.get("type") != "function":
            raise serializers.ValidationError({"type": self.not_function})
        return {"type": "function", **self.function(data)}

    def function(self, data: dict) -> dict:
        """Return the keys naming the chosen function, after `type`."""
        raise NotImplementedError


CHAT_TOOL_SCHEMA = {
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


@extend_schema_field({"type": "array", "minItems": 1, "maxItems": MAX_TOOLS, "items": CHAT_TOOL_SCHEMA,
                      "description": "Passed to every member's generation call; a member may answer with tool "
                                     "calls, which voters read as sentences, and the winner's are the answer's."})
class ChatToolsField(ToolsField):
    """Chat's `tools`: 1 to 128 functions, each nested under `function`."""

    min_tools = 1
    too_many = f"Must be a list of 1 to {MAX_TOOLS} tools."
    shape = '{"type": "function", "function": {"name": ...}}'
    not_function = "Must be function."

    def function(self, tool: dict) -> dict:
        spec = tool.get("function")
        if not isinstance(spec, dict):
            raise serializers.ValidationError({"function": "Required: an object."})
        return {"function": under("function", lambda it: named_spec(it, "parameters"), spec)}


@extend_schema_field({"oneOf": [
    {"type": "string", "enum": list(TOOL_CHOICES)},
    {"type": "object", "required": ["type", "function"], "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {"type": "object", "required": ["name"], "properties": {"name": NAME_SCHEMA}}}},
], "description": "none, auto, required, or one of `tools` by name; passed to every member's generation call."})
class ChatToolChoiceField(ToolChoiceField):
    """Chat's `tool_choice`: a word, or `{"type": "function", "function": {"name": ...}}`."""

    shape = '{"type": "function", "function": {"name": ...}}'
    not_function = "Must be function."

    def function(self, data: dict) -> dict:
        if not isinstance(data.get("function"), dict):
            raise serializers.ValidationError({"function": "Required: an object naming the tool."})
        return {"function": {"name": under("function", spec_name, data["function"].get("name"))}}


FUNCTION_TOOL_SCHEMA = {
    "type": "object", "required": ["type", "name"],
    "properties": {"type": {"type": "string", "enum": ["function"]}, "name": NAME_SCHEMA,
                   "description": {"type": "string", "nullable": True},
                   "parameters": {"type": "object", "nullable": True, "description": "A JSON Schema of the arguments."},
                   "strict": {"type": "boolean", "nullable": True}},
}


@extend_schema_field({"type": "array", "maxItems": MAX_TOOLS, "items": FUNCTION_TOOL_SCHEMA,
                      "description": "Function tools, passed to every member's generation call. Built-in tools "
                                     "(web_search, file_search, ...) are refused."})
class FlatToolsField(ToolsField):
    """The Responses API's `tools`: up to 128 flat function tools."""

    min_tools = 0
    too_many = f"Must be a list of at most {MAX_TOOLS} tools."
    shape = '{"type": "function", "name": ...}'
    not_function = "Tools of type {kind!r} are not supported; Trio forwards function tools only."

    def function(self, tool: dict) -> dict:
        return named_spec(tool, "parameters")


@extend_schema_field({"oneOf": [
    {"type": "string", "enum": list(TOOL_CHOICES)},
    {"type": "object", "required": ["type", "name"],
     "properties": {"type": {"type": "string", "enum": ["function"]}, "name": NAME_SCHEMA}},
], "description": "none, auto, required, or one of `tools` by name."})
class FlatToolChoiceField(ToolChoiceField):
    """The Responses API's `tool_choice`: a word or `{"type": "function", "name": ...}`."""

    shape = '{"type": "function", "name": ...}'
    not_function = "Only function tools can be chosen."

    def function(self, data: dict) -> dict:
        return {"name": under("name", spec_name, data.get("name"))}
