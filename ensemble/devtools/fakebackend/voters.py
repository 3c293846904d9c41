"""Ballots: recognising a Trio voting prompt, reading its fenced candidates, and each voter's vote.

See "Ballots" in the package docstring.
"""

import re

from .behaviour import Behaviour

# A candidate block: the closing tag must repeat the opening's nonce (\2), so
# a forged close with another nonce is just text inside the block.
# At most 9 digits: a forged block with a longer number is text, not a number int() refuses.
_CANDIDATE_RE = re.compile(
    r'<candidate number="(\d{1,9})" fence="([^"\s]+)">\n?(.*?)\n?</candidate fence="\2">',
    re.DOTALL,
)
_CANDIDATE_OPEN_RE = re.compile(r'<candidate number="\d+" fence="[^"\s]+">')
_QUALITY_TAG_RE = re.compile(r"\[([^\[\]\s]+) quality=(\d+(?:\.\d+)?)\]")

HUGE_NUMBER = "9" * 5000  # past int()'s 4300-digit limit
GARBAGE_BALLOT = (
    "What a delightful set of answers. Each has its own charm, much like"
    " the changing of the seasons, and I would rather not pick one today."
)


def is_ballot_prompt(user_text: str) -> bool:
    """Return True when the message is a Trio voting prompt (text or JSON ballot)."""
    asks_vote = "ACCEPTED:" in user_text or '"accepted"' in user_text
    return asks_vote and _CANDIDATE_OPEN_RE.search(user_text) is not None


def _candidates(user_text: str) -> list[tuple[int, str | None, float]]:
    """Return ``(number, tag_name, quality)`` for each properly fenced candidate."""
    found: dict[int, tuple[int, str | None, float]] = {}
    for match in _CANDIDATE_RE.finditer(user_text):
        number = int(match.group(1))
        tag = _QUALITY_TAG_RE.search(match.group(3))
        name, quality = (tag.group(1), float(tag.group(2))) if tag else (None, 0.5)
        found.setdefault(number, (number, name, quality))
    return sorted(found.values())


def ballot_lines(voter: str, behaviour: Behaviour, user_text: str) -> tuple[str, str]:
    """Return the ``(reasoning, "ACCEPTED: ...\\nPREFERRED: ...")`` of a voter."""
    reasoning, numbers, choice = _vote(voter, behaviour, user_text)
    return reasoning, f"ACCEPTED: {', '.join(numbers) or 'NONE'}\nPREFERRED: {choice or 'NONE'}"


def ballot_json(voter: str, behaviour: Behaviour, user_text: str) -> str:
    """Return a voter's JSON ballot, written by hand: a 5000-digit number is more than json.dumps takes."""
    _, numbers, choice = _vote(voter, behaviour, user_text)
    return f'{{"accepted": [{", ".join(numbers)}], "preferred": {choice or "null"}}}'


def _vote(voter: str, behaviour: Behaviour, user_text: str) -> tuple[str, list[str], str | None]:
    """Return a voter's ``(reasoning, accepted numbers, preferred number or None)``, as written."""
    candidates = _candidates(user_text)
    accepted = [c for c in candidates if c[2] >= 0.5]
    preferred = max(accepted, key=lambda c: (c[2], -c[0])) if accepted else None
    reasoning = f"I compared the {len(candidates)} answers."
    if behaviour.accept_only_self:
        accepted = [c for c in candidates if c[1] == voter][:1]
        preferred = accepted[0] if accepted else None
    if behaviour.self_favour:
        own = [c for c in candidates if c[1] == voter]
        if own:
            preferred = own[0]
            accepted = sorted(set(accepted) | {preferred})
            reasoning = "I compared the answers; mine is clearly the best."
    if behaviour.first_slot and candidates:
        preferred = candidates[0]  # sorted by number: the one shown first
        accepted = sorted(set(accepted) | {preferred})
    numbers = [str(c[0]) for c in accepted]
    choice = str(preferred[0]) if preferred else None
    if behaviour.huge_number_ballot:
        numbers, choice = [*numbers, HUGE_NUMBER], HUGE_NUMBER
    return reasoning, numbers, choice
