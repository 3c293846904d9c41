"""How one fake model behaves: the `Behaviour` dataclass, the recorded `Call`, and ``key=value`` specs.

A requested model ``name@latency=0.2,quality=0.9`` or a CLI ``--model NAME:spec`` option is parsed here
(see the package docstring for what each field does).
"""

import dataclasses
import functools
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class Behaviour:
    """How one fake model answers; every field has a harmless default."""

    latency: float = 0.0  # seconds slept before answering
    jitter: float = 0.0  # extra uniform 0..jitter seconds
    status: int | None = None  # answer this HTTP error status
    fail_first: int = 0  # first N calls fail with status (or 503), then succeed
    hang: bool = False  # never answer until the client disconnects
    malformed: bool = False  # 200 with a non-JSON body
    endless: bool = False  # 200 with a body that never ends, until the client hangs up
    empty: bool = False  # 200 with message content ""
    garbage_ballot: bool = False  # ballots answered with prose, no ballot lines
    huge_number_ballot: bool = False  # ballots also name a 5000-digit number, preferred
    inject: bool = False  # generation answer is a prompt-injection attack
    quality: float = 0.5  # 0..1, shown in the answer's quality tag
    size: int = 0  # pad generation answers to at least this many chars
    self_favour: bool = False  # as voter, prefer the candidate tagged with own name
    accept_only_self: bool = False  # as voter, accept (and prefer) only the candidate tagged with own name
    first_slot: bool = False  # as voter, accept and prefer whichever candidate is shown first
    ignore_format: bool = False  # answer prose even when response_format asks for JSON
    ignore_tools: bool = False  # answer text even when tools are offered
    constrained_only: bool = False  # ballots: prose in text, an honest vote only when JSON is asked
    refuse_json_schema: int | None = None  # answer this status to a response_format of type json_schema
    refuse_json_object: int | None = None  # answer this status to a response_format of type json_object
    cost: str | None = None  # x-litellm-response-cost sent with every answer, as written


@dataclass(frozen=True)
class Call:
    """One recorded chat request, as the fake model saw it."""

    model: str
    path: str
    headers: dict[str, str]  # lower-case header names
    body: dict[str, typing.Any]
    is_ballot: bool


_FIELD_TYPES = typing.get_type_hints(Behaviour)
_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off"}


def _parse_field(key: str, raw: str | None) -> typing.Any:
    """Return the value of Behaviour field `key` parsed from `raw` (None = bare flag)."""
    kind = _FIELD_TYPES[key]
    if raw is None:
        if kind is bool:
            return True
        raise ValueError(f"behaviour key {key!r} needs a value ({key}=...)")
    raw = raw.strip()
    if kind is bool:
        if raw.lower() in _TRUE_WORDS:
            return True
        if raw.lower() in _FALSE_WORDS:
            return False
        raise ValueError(f"behaviour key {key!r} expects a boolean, got {raw!r}")
    if kind == (int | None):
        return None if raw.lower() in ("", "none") else int(raw)
    if kind == (str | None):
        return raw
    return kind(raw)  # int or float; their own ValueError is clear enough


def parse_behaviour(spec: str, base: Behaviour) -> Behaviour:
    """Return `base` with the fields named in `spec` replaced.

    `spec` is comma-separated ``key=value`` items or bare flags
    (``"latency=0.2,status=500,hang"``); an empty spec returns `base`.
    Raises ValueError on an unknown key or an unparsable value.
    """
    changes: dict[str, typing.Any] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if key not in _FIELD_TYPES:
            known = ", ".join(_FIELD_TYPES)
            raise ValueError(f"unknown behaviour key {key!r} (known: {known})")
        changes[key] = _parse_field(key, raw if sep else None)
    for key in ("latency", "jitter", "fail_first", "size"):
        if changes.get(key, 0) < 0:
            raise ValueError(f"behaviour key {key!r} must not be negative")
    return dataclasses.replace(base, **changes) if changes else base


def parse_model_option(text: str, base: Behaviour) -> tuple[str, Behaviour]:
    """Return ``(name, behaviour)`` from a CLI ``NAME:spec`` option.

    The split is at the last colon, since specs never contain one; a name
    that itself has a colon therefore needs a trailing one (``llama3:8b:``).
    A bare ``NAME`` gets `base` unchanged.
    """
    name, sep, spec = text.rpartition(":")
    if not sep:
        name, spec = text, ""
    name = name.strip()
    if not name:
        raise ValueError(f"model option {text!r} has no name")
    return name, parse_behaviour(spec, base)


# Behaviour specs repeat on every request of a benchmark; parse each once.
parse_cached = functools.lru_cache(maxsize=1024)(parse_behaviour)
