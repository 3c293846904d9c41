"""Shape a `CompletionOutcome` as an OpenAI Responses API `response` object and its stream events.

The answer is the winner's reply (or a pass-through model's own): a `message` item with one
`output_text` part when it has text, then a `function_call` item per tool call. The request's
settings are echoed as OpenAI does (`response_echo`); the voting details travel under `trio`.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from ..voting.methods import method_named
from ..outcomes import CompletionOutcome, Reply
from ..history.stored import StoredResponse
from .errors import OpenAIError
from .presenters import consensus_body, cost_body, details, text_pieces
from .responses import responses_settings

# A backend's finish_reason that cut the answer short, as the Responses API names the cause.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def response_echo(payload: dict) -> dict:
    """Return the settings of a validated request that a `response` object repeats."""
    return {
        "instructions": payload.get("instructions") or None,
        "max_output_tokens": payload.get("max_output_tokens"),
        "metadata": payload.get("metadata", {}),
        "parallel_tool_calls": payload.get("parallel_tool_calls", True),
        "previous_response_id": payload.get("previous_response_id"),
        "store": payload.get("store", True),
        "temperature": payload.get("temperature"),
        "text": payload.get("text", {"format": {"type": "text"}}),
        "tool_choice": payload.get("tool_choice", "auto"),
        "tools": payload.get("tools", []),
        "top_p": payload.get("top_p"),
        "truncation": "disabled",
        "background": False,
        "user": payload.get("user"),
    }


def response_body(outcome: CompletionOutcome, echo: dict) -> dict:
    """Return the `response` object of a decided outcome, with the voting details under `trio`."""
    body = {**_started(outcome, echo), **_answered(outcome.id, outcome.replies(1)[0])}
    _completed_at(body, outcome.latency_ms)
    if not outcome.ensemble.method.passes_through:
        body["trio"] = details(outcome)
    return body


def stored_response_body(stored: StoredResponse) -> dict:
    """Return the `response` object of a stored request, as far as its row tells: its settings are read
    back from the parameters it forwarded (and its metadata and user columns); of the voting details only the consensus and cost, the rest is left to
    the vote pages."""
    request = stored.request
    settings = {**responses_settings(request.params), "metadata": request.metadata}  # metadata and user: stored apart
    if request.user:
        settings["user"] = request.user
    body = _envelope(request.id, request.created_at, request.ensemble, response_echo(settings))
    if stored.answer is not None:
        reply = Reply(stored.answer["content"] or "", stored.finish_reason, stored.usage,
                      stored.answer.get("tool_calls", []))
        body = _completed_at({**body, **_answered(request.id, reply)}, request.latency_ms)
        if not method_named(request.aggregation_method).passes_through:
            body["trio"] = {"consensus": consensus_body(stored.consensus),
                            **cost_body(request.cost_total, request.cost_unknown_calls)}
        return body
    status = "cancelled" if request.status == "cancelled" else "failed"
    return {**body, "status": status, "error": _response_error("backend_error", request.error)}


def _response_error(code: str, message: str) -> dict:
    """Return a response's `error`: its code from OpenAI's closed list (the SDK's `ResponseError`),
    so every member failing is a `server_error`; the message names each member and why."""
    return {"code": code if code == "rate_limit_exceeded" else "server_error", "message": message}


def _completed_at(body: dict, latency_ms: int) -> dict:
    """Return `body` with its completion time set if it completed: OpenAI leaves it null otherwise
    (incomplete, failed, cancelled)."""
    if body["status"] == "completed":
        body["completed_at"] = body["created_at"] + latency_ms // 1000
    return body


def _answered(request_id: uuid.UUID, reply: Reply) -> dict:
    """Return the fields of a `response` object that its answer sets: status, output, usage."""
    cut = INCOMPLETE_REASONS.get(reply.finish_reason)
    return {
        "status": "incomplete" if cut else "completed",
        "incomplete_details": {"reason": cut} if cut else None,
        "output": _output(request_id, reply, "incomplete" if cut else "completed"),
        "usage": {
            "input_tokens": reply.usage.prompt_tokens, "output_tokens": reply.usage.completion_tokens,
            "total_tokens": reply.usage.total_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def failed_response_body(outcome: CompletionOutcome, error: OpenAIError, echo: dict) -> dict:
    """Return the `response` object of an outcome no member answered, its error that of the HTTP answer."""
    return {**_started(outcome, echo), "status": "failed", "error": _response_error(error.code, error.message)}


def _started(outcome: CompletionOutcome, echo: dict) -> dict:
    return _envelope(outcome.id, outcome.created_at, outcome.ensemble.name, echo)


def _envelope(request_id: uuid.UUID, created_at: datetime, model: str, echo: dict) -> dict:
    """Return the `response` object as it is before any output: in progress."""
    return {
        "id": f"trio-{request_id.hex}", "object": "response", "created_at": int(created_at.timestamp()),
        "status": "in_progress", "completed_at": None, "error": None, "incomplete_details": None,
        "model": model, "output": [], "usage": None, **echo,
    }


def _output(request_id: uuid.UUID, reply: Reply, status: str) -> list[dict]:
    items = []
    if reply.content or not reply.tool_calls:
        items.append({"type": "message", "id": f"msg_{request_id.hex}", "status": status, "role": "assistant",
                      "content": [{"type": "output_text", "text": reply.content, "annotations": [], "logprobs": []}]})
    items += [{"type": "function_call", "id": f"fc_{request_id.hex}_{position}", "call_id": call["id"],
               "name": call["function"]["name"], "arguments": call["function"]["arguments"], "status": "completed"}
              for position, call in enumerate(reply.tool_calls)]
    return items


def response_events(outcome: CompletionOutcome, echo: dict) -> list[dict]:
    """Return the stream events of a decided outcome, in OpenAI's order, numbered: the response created
    and in progress, each output item added, its text or arguments in pieces, done; the response done."""
    final = response_body(outcome, echo)
    started = _started(outcome, echo)
    events = [{"type": "response.created", "response": started},
              {"type": "response.in_progress", "response": started}]
    for index, item in enumerate(final["output"]):
        events += _item_events(index, item)
    events.append({"type": f"response.{final['status']}", "response": final})
    return _numbered(events)


def failed_response_events(outcome: CompletionOutcome, error: OpenAIError, echo: dict) -> list[dict]:
    """Return the stream events of an outcome no member answered: created, in progress, failed."""
    started = _started(outcome, echo)
    return _numbered([{"type": "response.created", "response": started},
                      {"type": "response.in_progress", "response": started},
                      {"type": "response.failed", "response": failed_response_body(outcome, error, echo)}])


def _item_events(index: int, item: dict) -> list[dict]:
    where = {"output_index": index, "item_id": item["id"]}
    if item["type"] == "function_call":
        arguments = item["arguments"]
        return [
            {"type": "response.output_item.added", "output_index": index,
             "item": {**item, "arguments": "", "status": "in_progress"}},
            *({"type": "response.function_call_arguments.delta", **where, "delta": piece}
              for piece in text_pieces(arguments)),
            {"type": "response.function_call_arguments.done", **where, "name": item["name"], "arguments": arguments},
            {"type": "response.output_item.done", "output_index": index, "item": item},
        ]
    part = item["content"][0]
    text, at = part["text"], {**where, "content_index": 0}
    return [
        {"type": "response.output_item.added", "output_index": index,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
        *({"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []} for piece in text_pieces(text)),
        {"type": "response.output_text.done", **at, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **at, "part": part},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]


def _numbered(events: list[dict]) -> list[dict]:
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]
