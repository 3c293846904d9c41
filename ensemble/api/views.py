"""The OpenAI-compatible API: validate → call the service → shape the response."""
from __future__ import annotations

import time

import orjson
from adrf.views import APIView
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, RawPostDataException
from drf_spectacular.utils import extend_schema

from .. import services
from ..ensembles import ensemble_get, ensemble_names
from .errors import (
    BackendFailed, BackendTimedOut, BodyTooLarge, InvalidRequest, ModelNotFound, UnsupportedMediaType,
)
from .presenters import chat_completion_body, details_header
from .schema import CHAT_ERRORS, CHAT_EXAMPLE, COMMON_ERRORS, ChatCompletionSerializer, ModelListSerializer
from .serializers import ChatCompletionRequestSerializer, first_error

# Server start, reported as the `created` time of the models we serve.
STARTED_AT = int(time.time())


def json_response(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


class ChatCompletionsView(APIView):
    @extend_schema(operation_id="createChatCompletion", request=ChatCompletionRequestSerializer,
                   examples=[CHAT_EXAMPLE], responses={200: ChatCompletionSerializer, **CHAT_ERRORS})
    async def post(self, request):
        payload = _validated(parse_json_body(request))
        ensemble = ensemble_get(payload["model"])
        if ensemble is None:
            raise ModelNotFound(f"The model `{payload['model']}` does not exist. Ask for one of: "
                                f"{', '.join(ensemble_names())}.", param="model")
        try:
            outcome = await services.completion_create(
                messages=payload["messages"], params=payload, ensemble=ensemble,
                api_key_id=request.auth.pk if request.auth else None,  # set by ApiKeyAuthentication
            )
        except services.NoCandidates as exc:
            failure = BackendTimedOut if exc.outcome.all_timed_out else BackendFailed
            raise failure(f"Every ensemble member failed ({exc.outcome.public_id}): {exc.outcome.error}")
        response = json_response(chat_completion_body(outcome))
        response["X-Trio-Details"] = details_header(outcome)
        return response


class ModelsView(APIView):
    @extend_schema(operation_id="listModels", responses={200: ModelListSerializer, **COMMON_ERRORS})
    async def get(self, request):
        data = [{"id": name, "object": "model", "created": STARTED_AT, "owned_by": "trio"}
                for name in ensemble_names()]
        return json_response({"object": "list", "data": data})


def parse_json_body(request) -> dict:
    """Return the request's JSON object, or raise the OpenAI error that explains what is wrong."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, not {content_type or 'missing'}.")
    try:
        raw = request.body  # enforces DATA_UPLOAD_MAX_MEMORY_SIZE
    except RequestDataTooBig:
        raise BodyTooLarge("The request body is too large.") from None
    except RawPostDataException:
        raise InvalidRequest("The request body could not be read.") from None
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request: it is not valid "
                             "JSON (or not UTF-8).", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The JSON body must be an object.", code="invalid_json")
    return payload


def _validated(payload: dict) -> dict:
    serializer = ChatCompletionRequestSerializer(data=payload)
    if not serializer.is_valid():
        param, message = first_error(serializer.errors)
        raise InvalidRequest(f"Invalid value for '{param}': {message}", param=param)
    data = serializer.validated_data
    if data.get("stream"):
        raise InvalidRequest("Streaming (stream: true) is not supported yet; send stream: false "
                             "or leave it out.", param="stream", code="unsupported_parameter")
    return data
