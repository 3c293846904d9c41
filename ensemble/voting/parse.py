"""Reading a voter's reply into a ballot: its JSON ballot (`BALLOT_SCHEMA`) if it holds one, else its
`ACCEPTED:` / `PREFERRED:` lines, tolerantly; a reply that is neither is an `UnreadableBallot`."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

@dataclass(frozen=True)
class ParsedBallot:
    """A readable ballot, in shown positions (1-based). `preferred` is only set if also accepted;
    `note` says which numbers it named that are no shown candidate (ignored), "" if none."""

    accepted: frozenset[int]
    preferred: int | None
    note: str = ""


# Markdown emphasis and code marks models like to wrap labels in ("**ACCEPTED:** 1").
_DECORATION = re.compile(r"[*_`#>]")
_LABEL = r"^[ \t\-•]*{label}\s*[:=]\s*(?P<value>.*)$"
_ACCEPTED = re.compile(_LABEL.format(label="accepted"), re.IGNORECASE | re.MULTILINE)
_PREFERRED = re.compile(_LABEL.format(label="preferred"), re.IGNORECASE | re.MULTILINE)
_NUMBER = re.compile(r"\d+")
_NONE = re.compile(r"\bnone\b", re.IGNORECASE)
_NOTED_MAX = 5  # invalid numbers quoted in a ballot's note: a reply may name thousands
_QUOTED_DIGITS = 12  # a longer run is quoted by its start and length


def parse_ballot(text: str, size: int) -> ParsedBallot | None:
    """Return the ballot read from a voter's reply, or None if it is no vote: no ACCEPTED line, or
    one that names neither NONE nor any shown candidate (`ACCEPTED: 7` when 3 were shown).

    Tolerates case, markdown emphasis, brackets and prose around the lines; when a label appears
    more than once the last one wins (models often think aloud before answering). A number outside
    1..size, however many digits it has, is an invalid mark: it is ignored and named in the
    ballot's `note`, and the rest of the ballot counts.
    """
    plain = _DECORATION.sub("", text or "")
    accepted_lines = _ACCEPTED.findall(plain)
    if not accepted_lines:
        return None
    accepted_value = accepted_lines[-1]
    named = [(digits, _slot(digits, size)) for digits in _NUMBER.findall(accepted_value)]
    accepted = frozenset(slot for _, slot in named if slot is not None)
    invalid = [f"ACCEPTED {_quoted(digits)}" for digits, slot in named if slot is None]
    if not accepted and not _NONE.search(accepted_value):
        return None  # "ACCEPTED:" followed by nothing usable is not a vote.
    preferred = None
    preferred_lines = _PREFERRED.findall(plain)
    first = _NUMBER.search(preferred_lines[-1]) if preferred_lines else None
    if first is not None:
        slot = _slot(first.group(), size)
        if slot is None:
            invalid.append(f"PREFERRED {_quoted(first.group())}")
        elif slot in accepted:
            preferred = slot
    return ParsedBallot(accepted=accepted, preferred=preferred, note=_invalid_note(invalid, size))


def _slot(digits: str, size: int) -> int | None:
    """Return the shown position a run of digits names, or None if it is outside 1..size.

    The run is measured as text before int() sees it: int() refuses more than 4300 digits
    (sys.get_int_max_str_digits), and a backend may write any number.
    """
    digits = digits.lstrip("0")
    if not digits or len(digits) > len(str(size)):
        return None
    slot = int(digits)
    return slot if slot <= size else None


def _quoted(digits: str) -> str:
    return digits if len(digits) <= _QUOTED_DIGITS else f"{digits[:6]}…({len(digits)} digits)"


def _invalid_note(invalid: list[str], size: int) -> str:
    return _listed(f"ignored invalid marks, not one of the {size} candidates shown", invalid)


class UnreadableBallot(ValueError):
    """A reply that is no vote; its message says why (stored as the ballot's error)."""


def read_ballot(text: str, size: int) -> ParsedBallot:
    """Return the vote in a voter's reply: its JSON ballot (`parse_json_ballot`), else its
    ACCEPTED/PREFERRED lines (`parse_ballot`): a model may ignore the format it was asked in,
    either way. The one reading of a ballot: the live vote and the tests use it.

    Raise UnreadableBallot when the reply is neither, saying why: what is wrong with its JSON if
    it held some, else that it has no ballot lines.
    """
    json_fault = None
    try:
        ballot = parse_json_ballot(text, size)
    except UnreadableBallot as exc:
        ballot, json_fault = None, exc
    ballot = ballot or parse_ballot(text, size)
    if ballot is None:
        raise json_fault or UnreadableBallot(
            f"neither a JSON ballot nor an ACCEPTED line naming NONE or one of the {size} candidates shown")
    return ballot


_BALLOT_KEYS = ("accepted", "preferred")
_FENCED = re.compile(r"\A```[A-Za-z]*\s*\n(.*?)\n?```\Z", re.DOTALL)
_JSON_SYNTAX = re.compile(r'[{}"\\]')


def parse_json_ballot(text: str, size: int) -> ParsedBallot | None:
    """Return the JSON ballot (`BALLOT_SCHEMA`) in a voter's reply, or None if it holds no JSON.

    The reply may be the JSON alone, in a code fence, or inside prose: then the first {...} that
    parses is read (the first with an "accepted" key, if any has one). Raise UnreadableBallot when
    the JSON is no vote: not an object (a list at the top, say), a key given twice, "accepted"
    missing or not a list, or a non-empty list naming no shown candidate. A mark that is no shown
    candidate (out of range, negative, 5000 digits, a float, a string, a bool) or repeats one, a
    preference that is none, and an extra key are ignored and named in the note; the rest counts.
    """
    value = _json_value(text or "")
    if value is None:
        return None
    if not isinstance(value, _JsonObject):
        raise UnreadableBallot(f"the JSON ballot is {_json_shown(value)}, not an object")
    if value.repeated:
        raise UnreadableBallot(f"the JSON ballot gives {', '.join(map(_json_shown, value.repeated))} twice")
    marks = value.get("accepted")
    if not isinstance(marks, list):
        raise UnreadableBallot(f'the JSON ballot\'s "accepted" is {_json_shown(marks)}, not a list of candidate numbers')
    accepted: set[int] = set()
    invalid, repeated = [], []
    for mark in marks:
        slot = _json_slot(mark, size)
        if slot is None:
            invalid.append(f"ACCEPTED {_json_shown(mark)}")
        elif slot in accepted:
            repeated.append(f"ACCEPTED {slot}")
        else:
            accepted.add(slot)
    if marks and not accepted:
        raise UnreadableBallot(f'the JSON ballot\'s "accepted" names none of the {size} candidates shown: '
                               + ", ".join(invalid[:_NOTED_MAX]))
    preferred, choice = None, value.get("preferred")
    if choice is not None:
        slot = _json_slot(choice, size)
        if slot is None:
            invalid.append(f"PREFERRED {_json_shown(choice)}")
        elif slot in accepted:
            preferred = slot
    extra = [_json_shown(key) for key in value if key not in _BALLOT_KEYS]
    notes = [_invalid_note(invalid, size), _listed("ignored repeated marks", repeated),
             _listed("ignored extra keys", extra)]
    return ParsedBallot(frozenset(accepted), preferred, note="; ".join(n for n in notes if n))


class _JsonInt(str):
    """An integer as the JSON wrote it: its digits, unread. json.loads would call int() on them,
    which refuses more than 4300 digits (a ValueError, as if the JSON were broken)."""


class _JsonObject(dict):
    """A JSON object, with the keys it gave more than once (json.loads keeps the last silently)."""

    def __init__(self, pairs: list[tuple[str, object]]):
        super().__init__(pairs)
        seen: set[str] = set()
        self.repeated = [key for key, _ in pairs if key in seen or seen.add(key)]


def _json_value(text: str):
    """Return the JSON value the reply is (code fence removed), else the first {...} in it that
    parses (preferring one with an "accepted" key), else None."""
    whole = text.strip()
    fenced = _FENCED.match(whole)
    value = _json_loads(fenced.group(1) if fenced else whole)
    if value is not None:
        return value
    objects = (value for value in map(_json_loads, _json_object_spans(whole)) if value is not None)
    first = None
    for value in objects:
        if isinstance(value, dict) and "accepted" in value:
            return value
        first = first if first is not None else value
    return first


def _json_loads(text: str):
    """Return the JSON value of `text`, or None if it is not JSON (or is JSON's null: no ballot either)."""
    try:
        return json.loads(text, parse_int=_JsonInt, object_pairs_hook=_JsonObject)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        return None


def _json_object_spans(text: str):
    """Yield each outermost balanced {...} of `text`, braces inside JSON strings not counted."""
    depth, start, in_string, escaped_at = 0, 0, False, -1
    for match in _JSON_SYNTAX.finditer(text):
        char, at = match.group(), match.start()
        if at == escaped_at:
            continue  # the character after a backslash in a string: \" and \\ end nothing
        if in_string:
            escaped_at = at + 1 if char == "\\" else escaped_at
            in_string = char != '"'
        elif char == '"':
            in_string = depth > 0  # quotes in the prose around the JSON open no string
        elif char == "{":
            start = at if depth == 0 else start
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start:at + 1]


def _json_slot(value, size: int) -> int | None:
    """Return the shown position a JSON mark names, or None unless it is an integer in 1..size."""
    if not isinstance(value, _JsonInt) or value.startswith("-"):
        return None
    return _slot(value, size)


def _json_shown(value) -> str:
    """Return a JSON value as a ballot's note quotes it: short values as written, others by kind."""
    if isinstance(value, _JsonInt):
        return _quoted(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (str, float)) and len(shown := json.dumps(value)) <= _QUOTED_DIGITS + 2:
        return shown
    kinds = {str: "a string", float: "a number", list: "a list"}
    return next((kind for cls, kind in kinds.items() if isinstance(value, cls)), "an object")


def _listed(what: str, items: list[str]) -> str:
    if not items:
        return ""
    more = f" and {len(items) - _NOTED_MAX} more" if len(items) > _NOTED_MAX else ""
    return f"{what}: {', '.join(items[:_NOTED_MAX])}{more}"
