"""Structured ballots end to end, on the fake backend over HTTP: each voter is asked for a JSON
ballot under a constrained response_format (TRIO_BALLOT_FORMAT, ensemble.voting.formats), a server
that refuses one is asked in the next format once per process, and each ballot stores its format."""
import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ensemble import voting
from ensemble.voting import formats as ballot_formats
from ensemble.models import Ballot, Candidate, CompletionRequest

QUESTION = [{"role": "user", "content": "Name a prime number."}]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_process_memory(monkeypatch):
    """Each test starts as a new process would: no model's ballot format known yet."""
    monkeypatch.setattr(ballot_formats, "remembered", {})


def ask(http, times: int = 1) -> list[dict]:
    bodies = []
    for _ in range(times):
        response = http.post("/v1/chat/completions", json={"model": "trio", "messages": QUESTION})
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    return bodies


def asked_in(call) -> str:
    response_format = call.body.get("response_format")
    return response_format["type"] if response_format else "text"


def ballot_calls(backend) -> collections.Counter:
    """Return how many ballot calls each (model, format) got."""
    return collections.Counter((call.model, asked_in(call)) for call in backend.calls if call.is_ballot)


def test_a_panel_that_votes_only_in_json_parses_its_ballots_and_its_best_member_wins(http, trio_settings):
    # Best member last: without a vote, the tie-break would pick the first, the worst.
    trio_settings.TRIO_MODELS = ["gamma@quality=0.3,constrained_only", "beta@quality=0.6,constrained_only",
                                 "alpha@quality=0.9,constrained_only"]

    answers = ask(http, times=8)

    wins = sum(a["choices"][0]["message"]["content"].startswith("[alpha quality=0.90]") for a in answers)
    ballots = Ballot.objects.all()
    parsed = ballots.filter(status="ok").count() / ballots.count()
    assert ballots.count() == 24 and parsed >= 0.95 and wins >= 7, (parsed, wins)
    assert set(ballots.values_list("format", flat=True)) == {"json_schema"}


def test_a_ballot_the_server_accepts_in_json_schema_costs_one_call(http, trio_settings, backend):
    ask(http)

    calls = [call for call in backend.calls if call.is_ballot]
    assert len(calls) == 3 and len({call.model for call in calls}) == 3  # one round trip per voter, no retry
    for call in calls:
        assert call.body["response_format"] == {
            "type": "json_schema", "json_schema": {"name": "ballot", "strict": True, "schema": voting.BALLOT_SCHEMA}}
        assert call.body["messages"][-1]["content"].endswith('"preferred": <the number of the single best accepted '
                                                               'candidate, or null>}')
    assert set(Ballot.objects.values_list("format", "status")) == {("json_schema", "ok")}


@pytest.mark.parametrize("status", [400, 500])
def test_a_server_refusing_json_schema_is_asked_in_json_object_once_per_process(http, trio_settings, backend, status):
    # constrained_only: had the ballots fallen back to text, none would parse.
    models = [f"{name}@quality={quality},constrained_only,refuse_json_schema={status}"
              for name, quality in (("gamma", 0.3), ("beta", 0.6), ("alpha", 0.9))]
    trio_settings.TRIO_MODELS = models

    answers = ask(http, times=4)

    assert all(a["choices"][0]["message"]["content"].startswith("[alpha quality=0.90]") for a in answers)
    assert ballot_calls(backend) == {
        **{(model, "json_schema"): 1 for model in models},  # the one refusal each model costs
        **{(model, "json_object"): 4 for model in models},
    }
    ballots = Ballot.objects.all()
    assert ballots.count() == 12 and set(ballots.values_list("format", "status")) == {("json_object", "ok")}
    json_object = next(call for call in backend.calls if call.is_ballot and asked_in(call) == "json_object")
    assert json_object.body["response_format"] == {"type": "json_object", "schema": voting.BALLOT_SCHEMA}


def test_a_server_refusing_both_json_formats_is_asked_in_text(http, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,refuse_json_schema=422,refuse_json_object=500",
                                 "beta@quality=0.6,refuse_json_schema=500,refuse_json_object=400"]

    ask(http, times=3)

    calls = ballot_calls(backend)
    for model in trio_settings.TRIO_MODELS:
        assert [calls[model, name] for name in ("json_schema", "json_object", "text")] == [1, 1, 3]
    assert set(Ballot.objects.values_list("format", "status")) == {("text", "ok")}


def test_a_voter_answering_garbage_in_every_format_is_unparseable_and_the_vote_goes_on(http, trio_settings):
    trio_settings.TRIO_MODELS = ["gamma@quality=0.3", "alpha@quality=0.9", "beta@quality=0.6,garbage_ballot"]

    [answer] = ask(http)

    assert answer["choices"][0]["message"]["content"].startswith("[alpha quality=0.90]")
    garbage = Ballot.objects.get(voter_model="beta@quality=0.6,garbage_ballot")
    assert (garbage.status, garbage.format) == ("unparseable", "json_schema")
    assert garbage.error.startswith("neither a JSON ballot nor an ACCEPTED line") and garbage.raw_text
    assert CompletionRequest.objects.get().voter_count == 2


def test_a_voter_ignoring_the_constraint_still_counts_in_text_lines(http, trio_settings):
    trio_settings.TRIO_MODELS = ["gamma@quality=0.3,ignore_format", "alpha@quality=0.9,ignore_format"]

    [answer] = ask(http)

    assert answer["choices"][0]["message"]["content"].startswith("[alpha quality=0.90]")
    assert set(Ballot.objects.values_list("format", "status")) == {("json_schema", "ok")}
    assert all("PREFERRED:" in ballot.raw_text for ballot in Ballot.objects.all())


@pytest.mark.parametrize("setting, sent", [
    ("text", None),
    ("json_object", {"type": "json_object", "schema": voting.BALLOT_SCHEMA}),
    ("json_schema", {"type": "json_schema",
                     "json_schema": {"name": "ballot", "strict": True, "schema": voting.BALLOT_SCHEMA}}),
])
def test_a_configured_format_is_the_only_one_asked(http, trio_settings, backend, setting, sent):
    trio_settings.TRIO_BALLOT_FORMAT = setting

    ask(http)

    calls = [call for call in backend.calls if call.is_ballot]
    assert len(calls) == 3 and all(call.body.get("response_format") == sent for call in calls)
    assert all(("ACCEPTED:" in call.body["messages"][-1]["content"]) is (setting == "text") for call in calls)
    assert set(Ballot.objects.values_list("format", "status")) == {(setting, "ok")}
    assert Candidate.objects.get(is_winner=True).model == "alpha@quality=0.9"


def test_a_configured_format_is_not_abandoned_when_refused(http, trio_settings, backend):
    trio_settings.TRIO_BALLOT_FORMAT = "json_schema"
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,refuse_json_schema=400", "beta@quality=0.6,refuse_json_schema=400"]

    ask(http)

    assert set(ballot_calls(backend)) == {(model, "json_schema") for model in trio_settings.TRIO_MODELS}
    assert set(Ballot.objects.values_list("format", "status")) == {("json_schema", "error")}


def test_the_vote_page_shows_the_format_each_ballot_was_asked_in(http, trio_settings, client, django_user_model):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@quality=0.6,refuse_json_schema=400"]
    ask(http)
    client.force_login(django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True))

    html = client.get(f"/votes/{CompletionRequest.objects.get().pk}/").content.decode()

    assert 'asked in <span class="ballot-format">json_schema</span>' in html
    assert 'asked in <span class="ballot-format">json_object</span>' in html


def settings_in_a_new_process(**env) -> subprocess.CompletedProcess:
    script = "from trio_site import settings; print(settings.TRIO_BALLOT_FORMAT)"
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_the_ballot_format_setting_defaults_to_auto_and_refuses_an_unknown_one():
    assert settings_in_a_new_process(TRIO_BALLOT_FORMAT="").stdout.strip() == "auto"
    assert settings_in_a_new_process(TRIO_BALLOT_FORMAT="json_object").stdout.strip() == "json_object"
    refused = settings_in_a_new_process(TRIO_BALLOT_FORMAT="xml")
    assert refused.returncode != 0 and "ImproperlyConfigured: TRIO_BALLOT_FORMAT='xml' must be one of" in refused.stderr
