"""Schemathesis against the live server: no 5xx, and every answer matches /v1/openapi.json.

The schema is fetched from the running Trio (what is tested is what is served), requests carry a
real API key, and the fake backend answers those that reach the ensemble. Valid and invalid
requests are generated, a bounded number of each, with a fixed seed so that CI is repeatable.
(Schemathesis' own pytest plugin, `from_fixture`, does not run under pytest 9, hence `@given`.)
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from ensemble.keys import api_key_create, keys_required

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture
def api_key(trio):
    _, key = api_key_create(name="schemathesis")
    yield key
    keys_required.clear()  # the test database is emptied without signals


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_answer_is_documented_and_none_is_a_server_error(trio, api_key, mode):
    schema = schemathesis.openapi.from_url(f"{trio}/v1/openapi.json")
    headers = {"Authorization": f"Bearer {api_key}"}
    statuses = []

    @given(case=schema.as_strategy(generation_mode=mode), ask_the_trio=st.booleans())
    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def answers_match_the_schema(case, ask_the_trio):
        if isinstance(case.body, dict) and "model" in case.body:
            # Else nearly every valid body names some other model, which is passed through to the
            # fake backend (or, as an object, defines an ensemble of such models).
            case.body["model"] = "trio" if ask_the_trio else _without_behaviours(case.body["model"])
        statuses.append(case.call_and_validate(headers=headers, checks=CHECKS).status_code)

    answers_match_the_schema()
    if mode == GenerationMode.POSITIVE:
        assert 200 in statuses, statuses  # real answers were checked against the schema, not only errors


def _without_behaviours(value):
    """Return `value` with "@" taken out of every string: after "@" the fake backend reads a behaviour,
    and a generated one could tell it to fail or hang, which Trio rightly answers with a 502 or 504."""
    if isinstance(value, str):
        return value.replace("@", "")
    if isinstance(value, list):
        return [_without_behaviours(item) for item in value]
    if isinstance(value, dict):
        return {key: _without_behaviours(item) for key, item in value.items()}
    return value


def test_the_schema_is_public_json_and_documents_every_status_the_chat_answers_with(http, api_key):
    response = http.get("/v1/openapi.json")  # no key: the schema describes the API, it holds no secret
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.oai.openapi+json")  # JSON, OpenAPI media type
    paths = response.json()["paths"]
    assert set(paths) == {"/v1/chat/completions", "/v1/responses", "/v1/responses/{response_id}", "/v1/feedback",
                          "/v1/models", "/v1/models/{model}", "/health"}
    assert set(paths["/v1/feedback"]["post"]["responses"]) == {"200", "400", "401", "404", "405", "415"}
    documented = set(paths["/v1/chat/completions"]["post"]["responses"])
    assert documented == {"200", "400", "401", "404", "405", "413", "415", "422", "429", "502", "504"}


def test_every_optional_field_of_a_chat_request_is_nullable_as_the_api_accepts_null(http):
    """Null means "not set" for every optional field (response_format, tools, tool_choice too), so
    the schema must say so, or generated clients refuse to send it and schemathesis never tries it."""
    request = http.get("/v1/openapi.json").json()["components"]["schemas"]["ChatCompletionRequest"]
    optional = set(request["properties"]) - set(request["required"])
    assert {"response_format", "tools", "tool_choice", "parallel_tool_calls"} <= optional
    assert [name for name in sorted(optional) if not request["properties"][name].get("nullable")] == []
    body = {"model": "trio", "messages": [{"role": "user", "content": "hi"}], **dict.fromkeys(optional)}
    assert http.post("/v1/chat/completions", json=body).status_code == 200
