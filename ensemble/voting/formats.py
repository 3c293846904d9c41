"""Ballot formats: how a voter is asked to reply, one small class each, in one registry.

`json_schema` constrains the reply to `ballot.BALLOT_SCHEMA` with OpenAI's structured outputs,
`json_object` asks for JSON with the schema beside it (llama.cpp's server turns that `schema` into
a grammar), `text` asks for the `ACCEPTED:` / `PREFERRED:` lines with no response_format. Whatever
the format, the reply is read by `parse.read_ballot`, JSON first, then the text lines.

`TRIO_BALLOT_FORMAT=auto` asks each model in the first format it is known to answer: `json_schema`
until it refuses one (`is_refusal`), then the next in `AUTO_ORDER`, at once and within the same
deadline. `remembered` keeps the format that worked per model for the life of the process, so a
refusing model costs one refusal per process, not one per request. It is a plain dict with no
lock: requests that ask a model for its first ballots at the same time may each meet its refusal
once before one of them records the answer; that is all a race can cost, and it is cheaper than
serializing first ballots.

Pure: no ORM, no HTTP, no settings (the caller passes the setting in).
"""
from __future__ import annotations

import re

from .ballot import BALLOT_INSTRUCTIONS, BALLOT_SCHEMA, JSON_BALLOT_INSTRUCTIONS

AUTO = "auto"


class BallotFormat:
    """One way of asking for a ballot: its name, the instructions ending the prompt, and the
    parameters it adds to the ballot call."""

    name: str
    instructions: str = JSON_BALLOT_INSTRUCTIONS
    response_format: dict | None = None

    @property
    def params(self) -> dict:
        """Return the parameters this format adds to a ballot call."""
        return {"response_format": self.response_format} if self.response_format else {}


class JsonSchema(BallotFormat):
    name = "json_schema"
    response_format = {"type": "json_schema",
                       "json_schema": {"name": "ballot", "strict": True, "schema": BALLOT_SCHEMA}}


class JsonObject(BallotFormat):
    name = "json_object"
    response_format = {"type": "json_object", "schema": BALLOT_SCHEMA}


class Text(BallotFormat):
    name = "text"
    instructions = BALLOT_INSTRUCTIONS


FORMATS: dict[str, BallotFormat] = {f.name: f for f in (JsonSchema(), JsonObject(), Text())}
AUTO_ORDER = ("json_schema", "json_object", "text")  # what `auto` tries, strictest first
CHOICES = (AUTO, *FORMATS)

remembered: dict[str, str] = {}  # model -> the format `auto` last saw it answer


def formats_for(setting: str, model: str) -> list[BallotFormat]:
    """Return the formats to ask `model` in, in order: the configured one alone, or for `auto`
    the one it last answered in (json_schema at first) and the fallbacks after it."""
    if setting != AUTO:
        return [FORMATS[setting]]
    start = AUTO_ORDER.index(remembered.get(model, AUTO_ORDER[0]))
    return [FORMATS[name] for name in AUTO_ORDER[start:]]


def remember(setting: str, model: str, answered: BallotFormat) -> None:
    """Record under `auto` that `model` answered a ballot asked in `answered`."""
    if setting == AUTO:
        remembered[model] = answered.name


# Statuses that say "not now" or "not you", not "not this format": no format would fare better.
_NOT_A_REFUSAL = frozenset({401, 403, 404, 408, 413, 429})
# A server error about structured output names it: llama.cpp answers 500 to json_schema.
_NAMES_THE_FORMAT = re.compile(r"response[_ ]?format|json|schema|grammar", re.IGNORECASE)


def is_refusal(status: int, error: str) -> bool:
    """Return whether a backend's HTTP error `status` with body `error` refuses the format asked
    for: a 4xx other than authentication, not-found, timeout, size or rate limit, or a 5xx whose
    body names the response format, a schema, a grammar or JSON."""
    if 400 <= status < 500:
        return status not in _NOT_A_REFUSAL
    return status >= 500 and _NAMES_THE_FORMAT.search(error) is not None
