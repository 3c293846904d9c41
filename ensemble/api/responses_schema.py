"""The OpenAPI description of POST /v1/responses' answers, field by field as response_presenters.py shapes them.

Like schema.py, these serializers only describe; tests/test_openapi_schemathesis.py checks real
answers against them.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from .schema import CHAT_ERRORS, COMMON_ERRORS, ConsensusSerializer, CostSerializer, TrioDetailsSerializer, error_response


# Named in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]: the live and the stored answer share them,
# and without a name drf-spectacular warns (W001) and invents one such as "StatusFb0Enum".
RESPONSE_OBJECT = ("response",)
RESPONSE_STATUSES = ("completed", "incomplete", "failed", "cancelled")


class OutputTextSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["output_text"])
    text = serializers.CharField(allow_blank=True)
    annotations = serializers.ListField(child=serializers.DictField(), max_length=0)
    logprobs = serializers.ListField(child=serializers.DictField(), max_length=0)


class OutputItemSerializer(serializers.Serializer):
    """A `message` (role, content) or a `function_call` (call_id, name, arguments)."""

    type = serializers.ChoiceField(choices=["message", "function_call"])
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=["completed", "incomplete"])
    role = serializers.CharField(required=False, help_text="A message's: assistant.")
    content = OutputTextSerializer(many=True, required=False, help_text="A message's: one output_text part.")
    call_id = serializers.CharField(allow_blank=True, required=False, help_text="A function call's, as the backend gave it.")
    name = serializers.CharField(required=False, help_text="A function call's.")
    arguments = serializers.CharField(allow_blank=True, required=False, help_text="A function call's, as a JSON string.")


class InputTokensDetailsSerializer(serializers.Serializer):
    cached_tokens = serializers.IntegerField(min_value=0)
    cache_write_tokens = serializers.IntegerField(min_value=0)


class OutputTokensDetailsSerializer(serializers.Serializer):
    reasoning_tokens = serializers.IntegerField(min_value=0)


class ResponseUsageSerializer(serializers.Serializer):
    input_tokens = serializers.IntegerField(min_value=0)
    output_tokens = serializers.IntegerField(min_value=0)
    total_tokens = serializers.IntegerField(min_value=0)
    input_tokens_details = InputTokensDetailsSerializer()
    output_tokens_details = OutputTokensDetailsSerializer()


class IncompleteDetailsSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=["max_output_tokens", "content_filter"])


class ResponseSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The stored request's id (trio-…), usable as previous_response_id.")
    object = serializers.ChoiceField(choices=RESPONSE_OBJECT)
    created_at = serializers.IntegerField()
    completed_at = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RESPONSE_STATUSES,
                                     help_text="failed and cancelled only for a stored request read back.")
    error = serializers.DictField(allow_null=True)
    incomplete_details = IncompleteDetailsSerializer(allow_null=True)
    model = serializers.CharField()
    output = OutputItemSerializer(many=True)
    usage = ResponseUsageSerializer(allow_null=True, help_text="The winning answer's usage; null without one.")
    instructions = serializers.CharField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField(allow_blank=True))
    parallel_tool_calls = serializers.BooleanField()
    previous_response_id = serializers.CharField(allow_null=True, allow_blank=True)
    store = serializers.BooleanField()
    temperature = serializers.FloatField(allow_null=True)
    text = serializers.DictField()
    tool_choice = serializers.JSONField()
    tools = serializers.ListField(child=serializers.DictField())
    top_p = serializers.FloatField(allow_null=True)
    truncation = serializers.ChoiceField(choices=["disabled"])
    background = serializers.BooleanField()
    user = serializers.CharField(allow_null=True, allow_blank=True)
    trio = TrioDetailsSerializer(required=False, help_text="Absent when a backend model was passed through.")


class StoredTrioSerializer(CostSerializer):
    consensus = ConsensusSerializer(allow_null=True, help_text="As it was answered; null for requests stored before "
                                                               "consensus was, and for methods without ballots.")


class StoredResponseSerializer(ResponseSerializer):
    trio = StoredTrioSerializer(required=False, help_text=(
        "Of the voting details only the consensus and the cost (the rest is on /votes/<id>/); absent when a backend model was "
        "passed through, and when the request has no answer."))


RESPONSE_OK = {
    (200, "application/json"): OpenApiResponse(ResponseSerializer, description="The answer."),
    (200, "text/event-stream"): OpenApiResponse(
        {"type": "object", "required": ["data"], "properties": {
            "event": {"type": "string", "description": "The event's type, e.g. response.output_text.delta."},
            "data": {"type": "string", "description": "The event (JSON), with `type` and `sequence_number`."}}},
        description="With `stream: true`: `: keep-alive` comments while the ensemble works, then response.created, "
                    "response.in_progress, per output item its added / delta / done events, and "
                    "response.completed (response.incomplete when cut short, response.failed when every member failed "
                    "after the stream began)."),
}
RESPONSE_ERRORS = {
    **CHAT_ERRORS,
    400: error_response("Invalid JSON or an invalid field, or an unsupported one (images, files, reasoning items, built-in "
                "tools, background mode); `param` names it. Also a previous_response_id whose request has no answer."),
    404: error_response("No ensemble by that name (code model_not_found), or no stored response by previous_response_id for "
                "this API key (code previous_response_not_found)."),
}
STORED_RESPONSE_ERRORS = {
    **COMMON_ERRORS,
    404: error_response("No stored response by that id for this API key (code response_not_found)."),
}
RESPONSE_EXAMPLES = [OpenApiExample(
    "Ask the trio", request_only=True,
    value={"model": "trio", "instructions": "Answer briefly.", "input": "Name a prime number."},
)]
