"""Structured output: a client's `response_format` asks every member for JSON.

The members' backends enforce the format (OpenAI, LiteLLM and Ollama's `/v1` pass it on). Trio
holds each candidate to it before the vote, so that a client parsing the answer (the `openai`
SDK's `parse`, LangChain's `with_structured_output`) gets JSON whenever any member answered in
JSON, not the prose of a model that ignored the format. Trio checks for a JSON object, not for
the schema: the backend enforces that, and checking it here would run a client's regular
expressions (`pattern`) on the event loop.
"""
from __future__ import annotations

import re

import orjson

JSON_FORMATS = ("json_object", "json_schema")

# Models that do not enforce the format often still answer JSON, inside a Markdown code fence.
_CODE_FENCE = re.compile(r"\A```(?:json)?[ \t]*\n(.*?)\n?```\Z", re.DOTALL | re.IGNORECASE)


def asks_for_json(params: dict) -> bool:
    """Return whether the forwarded parameters ask the members for a JSON object."""
    response_format = params.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in JSON_FORMATS


def json_object_text(content: str) -> str | None:
    """Return `content` as the text of one JSON object (taken out of a code fence), or None if it is not one."""
    text = content.strip()
    fenced = _CODE_FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return text if isinstance(value, dict) else None
