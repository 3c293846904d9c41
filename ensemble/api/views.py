"""The OpenAI-compatible API: validate → call the service → shape the response."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Awaitable, Iterator

import orjson
from adrf.views import APIView
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, RawPostDataException
from django.utils.http import parse_header_parameters
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.serializers import Serializer

from ..catalog.registry import ensemble_for, ensemble_named, ensembles_all
from ..catalog.spec import PREFIX, Ensemble, OverFanout, Refusal, check_concat, check_fanout
from ..completion import service as services
from ..formats.tools import unanswered_tool_message
from ..outcomes import CompletionOutcome
from .errors import BodyTooLarge, InvalidRequest, ModelNotFound, UnsupportedMediaType, completion_failed
from .presenters import chat_completion_body, consensus_header, details_header
from .response_presenters import response_body, response_echo, stored_response_body
from .responses import (RESPONSE_REQUEST, ResponseRequestSerializer, chat_request, conversation_parts,
                        previous_conversation, stored_response)
from .responses_schema import (RESPONSE_ERRORS, RESPONSE_EXAMPLES, RESPONSE_OK, STORED_RESPONSE_ERRORS,
                               StoredResponseSerializer)
from .schema import (CHAT_EXAMPLES, CHAT_ERRORS, CHAT_OK, COMMON_ERRORS, MODEL_ERRORS, ModelListSerializer,
                     ModelSerializer)
from .chat import ChatCompletionRequestSerializer
from .fields import MAX_CONTENT_PARTS, first_error
from .streaming import chat_completion_stream, response_stream

# Server start, reported as the `created` time of the models we serve.
STARTED_AT = int(time.time())


def json_response(body: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


class ChatCompletionsView(APIView):
    @extend_schema(operation_id="createChatCompletion", request=ChatCompletionRequestSerializer,
                   examples=CHAT_EXAMPLES, responses={**CHAT_OK, **CHAT_ERRORS})
    async def post(self, request):
        payload, ensemble = await _completion_request(request, CHAT_REQUEST)
        with _refusals():
            check_concat(payload, ensemble)
        n = payload.get("n", 1)
        work = services.completion_create(messages=payload["messages"], params=payload, ensemble=ensemble,
                                          api_key_id=_api_key_id(request), **_tags(payload))
        if payload.get("stream"):
            include_usage = payload.get("stream_options", {}).get("include_usage", False)
            return await chat_completion_stream(work, n=n, include_usage=include_usage)
        outcome = await _answered(work)
        return answer_response(chat_completion_body(outcome, n), outcome)


async def _completion_request(request, serializer: Serializer) -> tuple[dict, Ensemble]:
    """Return the body as `serializer` validates it and the ensemble its `model` names, or raise the
    OpenAI error of a bad body, an unknown model, or a body over that ensemble's fan-out budget."""
    payload = validated(parse_json_body(request), serializer)
    ensemble = await _ensemble(payload["model"])
    with _refusals():
        check_fanout(len(request.body), ensemble)
    return payload, ensemble


def _api_key_id(request) -> int | None:
    """Return the id of the request's API key row (request.auth is set by ApiKeyAuthentication)."""
    return request.auth.pk if request.auth else None


def _tags(payload: dict) -> dict:
    """Return the `metadata` and `user` of a validated body: stored with the request, never forwarded."""
    return {"metadata": payload.get("metadata", {}), "user": payload.get("user", "")}


@contextmanager
def _refusals(*, format_param: str = "response_format") -> Iterator[None]:
    """Raise the catalog's refusal of a request as its OpenAI error: 413 over the fan-out budget, else
    400 naming the field (`format_param` for the answer's format: the Responses API calls it text.format)."""
    try:
        yield
    except OverFanout as exc:
        raise BodyTooLarge(str(exc), param=exc.param) from None
    except Refusal as exc:
        raise InvalidRequest(str(exc), param=format_param if exc.param == "response_format" else exc.param) from None


async def _answered(work: Awaitable[CompletionOutcome]) -> CompletionOutcome:
    """Return the outcome of `work` (a completion), or raise the HTTP error of one that has no answer."""
    try:
        return await work
    except services.NoCandidates as exc:
        raise completion_failed(exc.outcome) from None


def answer_response(body: dict, outcome: CompletionOutcome) -> HttpResponse:
    """Return the JSON answer with the X-Trio-Details header, and X-Trio-Consensus when there is a score.

    A stream has neither: its headers go out before the vote (its last chunk carries both under `trio`)."""
    response = json_response(body)
    response["X-Trio-Details"] = details_header(outcome)
    if (consensus := consensus_header(outcome)) is not None:
        response["X-Trio-Consensus"] = consensus
    return response


class ResponsesView(APIView):
    """OpenAI's Responses API over the same ensembles: see ensemble/api/responses.py for the translation."""

    @extend_schema(operation_id="createResponse", request=ResponseRequestSerializer,
                   examples=RESPONSE_EXAMPLES, responses={**RESPONSE_OK, **RESPONSE_ERRORS})
    async def post(self, request):
        payload, ensemble = await _completion_request(request, RESPONSE_REQUEST)
        previous = None
        if "previous_response_id" in payload:  # the only read before the answer, and only when asked for
            previous = await previous_conversation(payload["previous_response_id"], api_key=request.auth)
        messages, params = chat_request(payload, previous)
        _check_tool_outputs(messages)
        with _refusals(format_param="text.format"):
            check_concat(params, ensemble)
        if previous is not None:  # the stored conversation goes out with every call too
            _check_continued(len(request.body) + len(orjson.dumps(previous)), messages, ensemble)
        work = services.completion_create(messages=messages, params=params, ensemble=ensemble,
                                          api_key_id=_api_key_id(request), **_tags(payload))
        echo = response_echo(payload)
        if payload.get("stream"):
            return await response_stream(work, echo=echo)
        outcome = await _answered(work)
        return answer_response(response_body(outcome, echo), outcome)


def _check_tool_outputs(messages: list[dict]) -> None:
    """Refuse a function_call_output that answers no function call before it (OpenAI's 400)."""
    index = unanswered_tool_message(messages)
    if index is not None:
        call_id = messages[index]["tool_call_id"][:64]
        raise InvalidRequest(f"No tool call found for function call output with call_id {call_id}.", param="input")


class ResponseView(APIView):
    @extend_schema(operation_id="retrieveResponse", responses={200: StoredResponseSerializer, **STORED_RESPONSE_ERRORS})
    async def get(self, request, response_id: str):
        # request.auth is set by ApiKeyAuthentication: another key's responses are not found
        return json_response(stored_response_body(await stored_response(response_id, api_key=request.auth)))


async def _ensemble(model: str | dict) -> Ensemble:
    """Return the ensemble that answers `model`, or raise 404 listing the named ones."""
    ensemble = await ensemble_for(model)
    if ensemble is None:
        names = ", ".join(e.name for e in await ensembles_all())
        raise ModelNotFound(f"There is no ensemble `{model}`. Ask for one of: {names}.", param="model")
    return ensemble


class ModelsView(APIView):
    @extend_schema(operation_id="listModels", responses={200: ModelListSerializer, **COMMON_ERRORS})
    async def get(self, request):
        data = [_model_object(e) for e in await ensembles_all()]
        return json_response({"object": "list", "data": data})


class ModelView(APIView):
    @extend_schema(operation_id="retrieveModel", responses={200: ModelSerializer, **MODEL_ERRORS})
    async def get(self, request, model: str):
        # The models listed are the named ensembles; `trio:<name>` names them as a request may.
        ensemble = await ensemble_named(model.removeprefix(PREFIX))
        if ensemble is None:
            raise ModelNotFound(f"The model `{model}` does not exist.", param="model")
        return json_response(_model_object(ensemble))


def _model_object(ensemble: Ensemble) -> dict:
    return {"id": ensemble.name, "object": "model", "created": STARTED_AT, "owned_by": "trio"}


def parse_json_body(request) -> dict:
    """Return the request's JSON object, or raise the OpenAI error that explains what is wrong."""
    # A media type is case-insensitive and may carry parameters (`; charset=utf-8`, which many
    # clients send); the body is read as UTF-8 whatever they say, and refused if it is not.
    content_type = request.content_type or ""
    if parse_header_parameters(content_type)[0] != "application/json":
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


def _check_continued(size: int, messages: list[dict], ensemble: Ensemble) -> None:
    """Raise 413 or 400 if a continued conversation (`size` bytes: the body and the stored one) is over a
    body's limits, or 413 if over the fan-out budget. Each continuation stores the whole conversation
    again, so without the body's limits a chain of small requests grows it without end."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if size > limit:
        raise BodyTooLarge(f"This request and the {size}-byte conversation it continues are over the {limit}-byte "
                           f"limit of a request body (TRIO_MAX_BODY_BYTES): start a new conversation.",
                           param="previous_response_id")
    if conversation_parts(messages) > MAX_CONTENT_PARTS:
        raise InvalidRequest(f"This request and the conversation it continues hold more than {MAX_CONTENT_PARTS} "
                             f"content parts: start a new conversation.", param="previous_response_id")
    with _refusals():
        check_fanout(size, ensemble)


# One instance for every request: a new DRF serializer deep-copies all its fields (and the
# message serializer's) on first use, which was a fifth of the API's CPU per request. Validation
# through run_validation keeps no state on the instance (no context is used), so sharing is safe.
CHAT_REQUEST = ChatCompletionRequestSerializer()


def validated(payload: dict, serializer: Serializer) -> dict:
    """Return the body as `serializer` validates it, or raise the 400 that names the param at fault."""
    try:
        return serializer.run_validation(payload)
    except ValidationError as exc:
        param, message = first_error(exc.detail)
        raise InvalidRequest(f"Invalid value for '{param}': {message}", param=param) from None
