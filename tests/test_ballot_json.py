"""Reading a ballot that a voter answered as JSON (no DB): voting.read_ballot, and what counts as a
server refusing a ballot format (ballot_formats.is_refusal)."""
import pytest

from ensemble import voting
from ensemble.voting import formats as ballot_formats
from ensemble.voting import ParsedBallot, UnreadableBallot

HUGE = "9" * 5000  # more digits than int() (and so json.loads) reads


@pytest.mark.parametrize("text, accepted, preferred", [
    ('{"accepted": [1, 3], "preferred": 3}', {1, 3}, 3),
    ('{"accepted": [], "preferred": null}', set(), None),
    ('{"preferred": 2, "accepted": [2]}', {2}, 2),
    ('```json\n{"accepted": [2], "preferred": 2}\n```', {2}, 2),
    ('Here is my ballot:\n```\n{"accepted": [1, 2], "preferred": 1}\n```\nThanks.', {1, 2}, 1),
    ('I weighed {the first} and "the {second}" one. {"accepted": [3], "preferred": 3}', {3}, 3),
    ('{"accepted": [1], "preferred": 3}', {1}, None),  # a preference only counts if also accepted
    ('{"accepted": [1]}', {1}, None),
    ('{\n  "accepted": [\n    2\n  ],\n  "preferred": 2\n}', {2}, 2),
])
def test_it_reads_json_ballots_as_models_write_them(text, accepted, preferred):
    assert voting.read_ballot(text, 3) == ParsedBallot(frozenset(accepted), preferred)


def test_a_json_string_holding_braces_and_quotes_does_not_end_the_object():
    text = 'Note {"why": "a \\"}\\" and a \\\\"} then {"accepted": [2], "preferred": 2}'
    assert voting.read_ballot(text, 3) == ParsedBallot(frozenset({2}), 2)


def test_it_falls_back_to_the_text_lines_when_the_reply_has_no_json_ballot():
    assert voting.read_ballot("I like both.\nACCEPTED: 1, 2\nPREFERRED: 2", 3) == ParsedBallot(frozenset({1, 2}), 2)
    # A JSON object that is no ballot does not hide the lines after it.
    assert voting.read_ballot('{"thinking": "hmm"}\nACCEPTED: 3\nPREFERRED: 3', 3) == ParsedBallot(frozenset({3}), 3)


@pytest.mark.parametrize("marks, note", [
    ("[1, 2.0, 3]", "ACCEPTED 2.0"),
    ("[1, -2, 3]", "ACCEPTED -2"),
    ("[1, 0, 3]", "ACCEPTED 0"),
    ("[1, 7, 3]", "ACCEPTED 7"),
    ("[1, true, 3]", "ACCEPTED true"),
    ('[1, "2", 3]', 'ACCEPTED "2"'),
    ("[1, null, [2], 3]", "ACCEPTED null, ACCEPTED a list"),
    (f"[1, {HUGE}, 3]", "ACCEPTED 999999…(5000 digits)"),
])
def test_a_mark_that_is_no_shown_candidate_is_ignored_and_named(marks, note):
    ballot = voting.read_ballot(f'{{"accepted": {marks}, "preferred": 3}}', 3)

    assert (ballot.accepted, ballot.preferred) == (frozenset({1, 3}), 3)
    assert ballot.note == f"ignored invalid marks, not one of the 3 candidates shown: {note}"


@pytest.mark.parametrize("choice, shown", [
    (HUGE, "999999…(5000 digits)"), ("-1", "-1"), ("4", "4"), ("1.0", "1.0"), ('"1"', '"1"'), ("false", "false"),
])
def test_a_preference_that_is_no_shown_candidate_is_ignored_and_named(choice, shown):
    ballot = voting.read_ballot(f'{{"accepted": [1, 2], "preferred": {choice}}}', 3)

    assert (ballot.accepted, ballot.preferred) == (frozenset({1, 2}), None)
    assert ballot.note == f"ignored invalid marks, not one of the 3 candidates shown: PREFERRED {shown}"


def test_a_repeated_mark_counts_once_and_an_extra_key_is_named():
    ballot = voting.read_ballot('{"accepted": [2, 2, 1], "preferred": 2, "reason": "clearer"}', 3)

    assert (ballot.accepted, ballot.preferred) == (frozenset({1, 2}), 2)
    assert ballot.note == 'ignored repeated marks: ACCEPTED 2; ignored extra keys: "reason"'


@pytest.mark.parametrize("text, reason", [
    ('{"accepted": "1,2", "preferred": 1}', 'the JSON ballot\'s "accepted" is "1,2", not a list of candidate numbers'),
    ('{"accepted": 1, "preferred": 1}', "is 1, not a list"),
    ('{"accepted": null, "preferred": 1}', "is null, not a list"),
    ('{"preferred": 1}', "is null, not a list"),
    ('[{"accepted": [1], "preferred": 1}]', "the JSON ballot is a list, not an object"),
    ('```json\n[1, 2]\n```', "the JSON ballot is a list, not an object"),
    ('"ACCEPTED 1"', 'the JSON ballot is "ACCEPTED 1", not an object'),
    ('{"accepted": [1], "accepted": [2], "preferred": 2}', 'the JSON ballot gives "accepted" twice'),
    (f'{{"accepted": [7, -1, {HUGE}], "preferred": 7}}',
     '"accepted" names none of the 3 candidates shown: ACCEPTED 7, ACCEPTED -1, ACCEPTED 999999…(5000 digits)'),
    ("A lovely set of answers; I cannot choose.", "neither a JSON ballot nor an ACCEPTED line"),
    ("[" * 100_000, "neither a JSON ballot"),  # deeper than json.loads recurses
    ('{"accepted": [' * 50_000, "neither a JSON ballot"),
])
def test_json_that_is_no_vote_is_an_unreadable_ballot_saying_why(text, reason):
    with pytest.raises(UnreadableBallot) as raised:
        voting.read_ballot(text, 3)
    assert reason in str(raised.value)


def test_every_format_ends_the_prompt_with_its_own_instructions_and_params():
    formats = ballot_formats.FORMATS
    assert formats["json_schema"].params == {"response_format": {
        "type": "json_schema", "json_schema": {"name": "ballot", "strict": True, "schema": voting.BALLOT_SCHEMA}}}
    assert formats["json_object"].params == {"response_format": {"type": "json_object", "schema": voting.BALLOT_SCHEMA}}
    assert formats["text"].params == {}
    prompt = voting.ballot_messages([{"role": "user", "content": "q"}], ["a", "b"], "ff00",
                                    instructions=formats["json_schema"].instructions)[-1]["content"]
    assert prompt.endswith('{"accepted": [<the number of every acceptable candidate>], '
                           '"preferred": <the number of the single best accepted candidate, or null>}')
    assert 'fence="ff00"' in prompt and "ACCEPTED:" not in prompt


def test_auto_starts_strict_and_resumes_where_a_model_last_answered(monkeypatch):
    monkeypatch.setattr(ballot_formats, "remembered", {})
    names = lambda setting, model: [f.name for f in ballot_formats.formats_for(setting, model)]  # noqa: E731
    assert names("auto", "m") == ["json_schema", "json_object", "text"]
    ballot_formats.remember("auto", "m", ballot_formats.FORMATS["json_object"])
    assert names("auto", "m") == ["json_object", "text"] and names("auto", "other") == ["json_schema", "json_object", "text"]
    assert names("text", "m") == ["text"]
    ballot_formats.remember("json_schema", "n", ballot_formats.FORMATS["json_schema"])  # not auto: nothing learned
    assert "n" not in ballot_formats.remembered


@pytest.mark.parametrize("status, body, refused", [
    (400, '{"error": {"message": "Invalid parameter: response_format"}}', True),
    (422, '{"detail": "bad request"}', True),
    (500, '{"error":{"code":500,"message":"Unsupported response_format type: json_schema"}}', True),
    (500, '{"error": {"message": "failed to parse grammar"}}', True),
    (501, '{"error": {"message": "JSON schema not supported"}}', True),
    (500, '{"error": {"message": "CUDA out of memory"}}', False),
    (503, '{"error": {"message": "overloaded"}}', False),
    (408, '{"error": {"message": "response_format took too long"}}', False),
    (429, '{"error": {"message": "rate limit"}}', False),
    (401, '{"error": {"message": "bad key"}}', False),
    (404, '{"error": {"message": "no such model"}}', False),
])
def test_a_refusal_is_a_client_error_or_a_server_error_naming_the_format(status, body, refused):
    assert ballot_formats.is_refusal(status, f"HTTP {status}: {body}") is refused
