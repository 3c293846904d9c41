"""The OpenAPI description of what the API answers: response bodies, the error envelope, /health.

The serializers here only describe; nothing instantiates them. They follow presenters.py and
errors.py field by field, and tests/test_openapi_schemathesis.py checks real answers against them.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField(help_text="invalid_request_error, or api_error for 5xx.")
    param = serializers.CharField(allow_null=True, help_text="The request field at fault, e.g. messages[0].role.")
    code = serializers.CharField(allow_null=True, help_text="e.g. invalid_value, model_not_found, invalid_api_key.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField(min_value=0)
    completion_tokens = serializers.IntegerField(min_value=0)
    total_tokens = serializers.IntegerField(min_value=0)


class FunctionCallSerializer(serializers.Serializer):
    name = serializers.CharField()
    arguments = serializers.CharField(allow_blank=True, help_text="The arguments, as a JSON string.")


class ToolCallSerializer(serializers.Serializer):
    id = serializers.CharField(allow_blank=True, help_text="As the backend gave it.")
    type = serializers.ChoiceField(choices=["function"])
    function = FunctionCallSerializer()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["assistant"])
    content = serializers.CharField(allow_blank=True, allow_null=True, help_text="Null when it only calls tools.")
    # Optional: a pass-through answer is the backend's own JSON, which may leave these out.
    refusal = serializers.CharField(allow_null=True, required=False)
    tool_calls = ToolCallSerializer(many=True, required=False, help_text="The winning answer's tool calls.")


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    logprobs = serializers.DictField(allow_null=True, required=False)
    finish_reason = serializers.CharField()


class CandidateDetailSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    model = serializers.CharField()
    status = serializers.CharField(help_text="ok, timeout, error, too_large, late or cancelled.")
    response = serializers.CharField(allow_null=True, allow_blank=True)
    error = serializers.CharField(allow_null=True)
    accepted = serializers.IntegerField(help_text="Voters that accepted this answer.")
    preferred = serializers.IntegerField(help_text="Voters that preferred this answer.")
    rank = serializers.IntegerField(allow_null=True)
    finish_reason = serializers.CharField(allow_null=True)
    latency_ms = serializers.IntegerField()
    usage = UsageSerializer()
    cost_usd = serializers.FloatField(allow_null=True, help_text=(
        "USD: the backend's x-litellm-response-cost, else usage at the admin's model price; null: unknown."))
    request_id = serializers.CharField(required=False, help_text="A nested ensemble's own stored request.")


class BallotDetailSerializer(serializers.Serializer):
    voter_index = serializers.IntegerField()
    voter_model = serializers.CharField()
    status = serializers.CharField(help_text="ok, unparseable, timeout, error, too_large, late or cancelled.")
    shown_order = serializers.ListField(child=serializers.IntegerField())
    accepted = serializers.ListField(child=serializers.IntegerField())
    preferred = serializers.IntegerField(allow_null=True)
    raw_text = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_null=True)
    latency_ms = serializers.IntegerField()
    usage = UsageSerializer()
    cost_usd = serializers.FloatField(allow_null=True, help_text=(
        "USD: the backend's x-litellm-response-cost, else usage at the admin's model price; null: unknown."))


class CostSerializer(serializers.Serializer):
    cost_total = serializers.FloatField(allow_null=True, help_text=(
        "USD: the known costs of every backend call of the request summed; null when none is known."))
    cost_unknown_calls = serializers.IntegerField(required=False, help_text=(
        "Calls whose cost is unknown, when there are any: cost_total is then a lower bound."))


class ConsensusSerializer(serializers.Serializer):
    score = serializers.FloatField(allow_null=True, help_text=(
        "Share of the other voters' parsed ballots that accepted the winner (the winner's own ballot left out); "
        "null when no other voter's ballot parsed, or no vote was held."))
    preferred_share = serializers.FloatField(allow_null=True, help_text="Share of them that also preferred it.")
    margin = serializers.IntegerField(help_text="The winner's counted acceptances minus the runner-up's.")
    low = serializers.BooleanField(help_text="score below TRIO_LOW_CONSENSUS, or null.")


class TrioDetailsSerializer(CostSerializer):
    request_id = serializers.CharField()
    ensemble = serializers.CharField()
    aggregation_method = serializers.CharField(help_text="acceptance_voting, judge, synthesize, random or concat.")
    status = serializers.CharField(help_text="ok, or partial when some members failed.")
    winner_index = serializers.IntegerField(allow_null=True)
    consensus = ConsensusSerializer(allow_null=True, help_text=(
        "How far the panel agreed with the winner (also the X-Trio-Consensus header); null for a method "
        "without ballots: synthesize, random, concat."))
    self_vote = serializers.BooleanField()
    latency_ms = serializers.IntegerField()
    generation_ms = serializers.IntegerField()
    voting_ms = serializers.IntegerField()
    usage_total = UsageSerializer(help_text="Every backend call of the request, generation and voting.")
    candidates = CandidateDetailSerializer(many=True)
    ballots = BallotDetailSerializer(many=True, help_text="Votes; for judge, the judge's single ballot.")
    choices_requested = serializers.IntegerField(required=False, help_text="n, when n > 1.")
    choices_returned = serializers.IntegerField(required=False, help_text="How many choices there are.")
    choices_note = serializers.CharField(required=False, help_text="Set when there were fewer answers than n.")


class ChatCompletionSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["chat.completion"])
    created = serializers.IntegerField()
    model = serializers.CharField()
    system_fingerprint = serializers.CharField(allow_null=True, required=False)  # absent in some pass-through answers
    choices = ChoiceSerializer(many=True)
    usage = UsageSerializer(help_text="The winning answer's usage, as the client's own model would report.")
    trio = TrioDetailsSerializer(required=False, help_text="Absent when a backend model was passed through.")


class ModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.ChoiceField(choices=["model"])
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    object = serializers.ChoiceField(choices=["list"])
    data = ModelSerializer(many=True)


def error_response(description: str) -> OpenApiResponse:
    """Return the OpenAPI description of an error answer (the OpenAI error envelope) for one status."""
    return OpenApiResponse(ErrorSerializer, description=description)


# Every error status the API answers with, each in the OpenAI error envelope.
COMMON_ERRORS = {
    401: error_response("No API key, or a wrong or revoked one (code invalid_api_key), once any key exists."),
    405: error_response("Wrong HTTP method (code method_not_allowed)."),
}
CHAT_ERRORS = {
    400: error_response("Invalid JSON or an invalid field; `param` names it. For a pass-through model, the "
                "backend's own 400 (also 413 and 422) is relayed with code backend_refused."),
    **COMMON_ERRORS,
    404: error_response("No ensemble by that name (code model_not_found); for a pass-through name, the backend "
                "has no such model either."),
    413: error_response("Body larger than TRIO_MAX_BODY_BYTES, or body size times the ensemble's backend calls over "
                "TRIO_MAX_FANOUT_BYTES (param messages); code request_too_large."),
    415: error_response("Content-Type is not application/json."),
    422: error_response("A pass-through model's backend refused the request (code backend_refused)."),
    429: error_response("A pass-through model's backend rate-limited the request (code rate_limit_exceeded), "
                "with the backend's Retry-After header when it sent one."),
    502: error_response("Every ensemble member failed (code backend_error)."),
    504: error_response("Every ensemble member timed out (code backend_timeout)."),
}

MODEL_ERRORS = {
    **COMMON_ERRORS,
    404: error_response("No named ensemble by that id (code model_not_found); `GET /v1/models` lists them."),
}

# One server-sent event as schemathesis and clients read it: `data` holds a chat.completion.chunk
# object as JSON, an error object (`{"error": ...}`, once the headers are sent), or `[DONE]`.
SSE_EVENT_SCHEMA = {
    "type": "object", "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "description": "A chat.completion.chunk (JSON), an error object, or [DONE]."},
    },
}
CHAT_OK = {
    (200, "application/json"): OpenApiResponse(ChatCompletionSerializer, description="The answer."),
    (200, "text/event-stream"): OpenApiResponse(SSE_EVENT_SCHEMA, description=(
        "With `stream: true`: `: keep-alive` comments while the ensemble works, then chat.completion.chunk "
        "events (the role, the text in pieces, tool calls, finish chunks, the last with the details under `trio`, "
        "the usage chunk if `stream_options.include_usage`) and `data: [DONE]`.")),
}

CHAT_EXAMPLE = OpenApiExample(
    "Ask the trio", request_only=True,
    value={"model": "trio", "messages": [{"role": "user", "content": "Name a prime number."}]},
)
DSL_EXAMPLE = OpenApiExample(
    "Define the ensemble in the request", request_only=True,
    value={"model": {"ensemble": [{"model": "llama3.2:3b"}, {"model": "mistral", "system_prompt": "Be terse."}],
                     "aggregation_method": "judge", "judge_model": "qwen2.5:7b"},
           "messages": [{"role": "user", "content": "Name a prime number."}]},
)
CHAT_EXAMPLES = [CHAT_EXAMPLE, DSL_EXAMPLE]


def add_health_path(result, generator, request, public):
    """drf-spectacular post-processing hook: describe /health, a plain Django view it cannot see."""
    result["paths"]["/health"] = {"get": {
        "operationId": "health", "summary": "Liveness: 200 while the process answers.", "tags": ["health"],
        "security": [{}],
        "responses": {"200": {"description": "The process is up.", "content": {"application/json": {"schema": {
            "type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}},
        }}}}},
    }}
    return result
