"""Bad input gets a 4xx OpenAI-shaped error, never a 500 or HTML, and the server keeps answering."""
import pytest

from ensemble.models import CompletionRequest

GOOD = {"model": "trio", "messages": [{"role": "user", "content": "hi"}]}
# A conversation whose assistant turn called two tools.
CALLED = [*GOOD["messages"], {"role": "assistant", "content": None, "tool_calls": [
    {"id": f"c{n}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for n in (1, 2)]}]


def assert_openai_error(response, status, param=None, code=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "trio"}, "messages"),
        ({"model": "trio", "messages": []}, "messages"),
        ({"model": "trio", "messages": "hi"}, "messages"),
        ({"model": "trio", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "trio", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": "trio", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "trio", "messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"model": "trio", "messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        ({"model": "trio", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
        ({"model": "trio", "messages": [{"role": "user", "content": "a\u0000b"}]}, "messages[0].content"),
        ({"model": "trio", "messages": ["hi"]}, "messages[0]"),
        ({"model": "trio", "messages": [{"role": "assistant", "content": None, "tool_calls": "x"}]},
         "messages[0].tool_calls"),
        ({"model": "trio", "messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}]},
         "messages[0].tool_calls"),
        ({"model": "trio", "messages": [{"role": "user", "content": "hi", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
         "messages[0].tool_calls"),
        ({"model": "trio", "messages": [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "\u0000"}}]}]},
         "messages[0].tool_calls"),
        # A tool message answers a call of the assistant turn before it, or OpenAI (and so a
        # backend) refuses the whole conversation.
        ({"model": "trio", "messages": [*GOOD["messages"], {"role": "tool", "tool_call_id": "c", "content": "x"}]},
         "messages[1].tool_call_id"),
        ({"model": "trio", "messages": [*CALLED, {"role": "tool", "content": "x"}]}, "messages[2].tool_call_id"),
        ({"model": "trio", "messages": [*CALLED, {"role": "tool", "tool_call_id": "other", "content": "x"}]},
         "messages[2].tool_call_id"),
        ({"model": "trio", "messages": [*CALLED, {"role": "user", "content": "and?"},
                                        {"role": "tool", "tool_call_id": "c1", "content": "x"}]},
         "messages[3].tool_call_id"),
        ({**GOOD, "max_tokens": -5}, "max_tokens"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "max_completion_tokens": 1.5}, "max_completion_tokens"),
        ({**GOOD, "temperature": 2.5}, "temperature"),
        ({**GOOD, "temperature": "0.5"}, "temperature"),
        ({**GOOD, "top_p": -0.1}, "top_p"),
        ({**GOOD, "n": 10}, "n"),
        ({**GOOD, "n": 0}, "n"),
        ({**GOOD, "stream": "yes"}, "stream"),
        ({**GOOD, "stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**GOOD, "seed": "seven"}, "seed"),
        ({"messages": GOOD["messages"]}, "model"),
        ({"model": 7, "messages": GOOD["messages"]}, "model"),
        ({"model": "  ", "messages": GOOD["messages"]}, "model"),
        # Model names reach the log verbatim: a line break in one would forge log lines.
        ({"model": "m\n2026-01-01 INFO ensemble.completions forged", "messages": GOOD["messages"]}, "model"),
        ({"model": {"ensemble": [{"model": "a\rb"}]}, "messages": GOOD["messages"]}, "model.ensemble[0].model"),
        ({"model": {"ensemble": [{"model": "a"}], "aggregation_method": "judge", "judge_model": "j\u2028x"},
          "messages": GOOD["messages"]}, "model.judge_model"),
    ],
)
def test_it_rejects_invalid_bodies_with_the_offending_param(http, body, param):
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param=param)
    assert http.get("/health").status_code == 200


def test_tool_messages_answering_each_call_of_the_turn_before_them_are_accepted(http, backend):
    answers = [{"role": "tool", "tool_call_id": f"c{n}", "content": "x"} for n in (2, 1)]

    response = http.post("/v1/chat/completions", json={**GOOD, "messages": [*CALLED, *answers]})

    assert response.status_code == 200, response.text
    assert backend.calls[0].body["messages"] == [*CALLED, *answers]


def test_it_rejects_malformed_json(http):
    response = http.post("/v1/chat/completions", content=b'{"model": "trio", "messages": [',
                         headers={"content-type": "application/json"})
    assert_openai_error(response, 400, code="invalid_json")


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"trio"', b"null", b"\xff\xfe{}"])
def test_it_rejects_json_that_is_not_an_object_or_not_utf8(http, raw):
    response = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert_openai_error(response, 400)


def test_it_rejects_a_form_encoded_body_as_unsupported_media(http):
    response = http.post("/v1/chat/completions", data={"model": "trio", "messages": "hi"})
    assert_openai_error(response, 415, code="unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/json;charset=UTF-8",
                                          "Application/JSON"])
def test_any_spelling_of_the_json_media_type_is_accepted(http, content_type):
    # Media types are case-insensitive and may carry parameters; .NET, OkHttp and others send a charset.
    response = http.post("/v1/chat/completions", content=b'{"model": "trio", "messages": [{"role": "user", '
                         b'"content": "hi"}]}', headers={"content-type": content_type})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/jsonx", "multipart/form-data; boundary=x"])
def test_other_media_types_are_unsupported(http, content_type):
    response = http.post("/v1/chat/completions", content=b"{}", headers={"content-type": content_type})
    assert_openai_error(response, 415, code="unsupported_media_type")


def test_it_rejects_get_on_the_post_path(http):
    assert_openai_error(http.get("/v1/chat/completions"), 405, code="method_not_allowed")


def test_unknown_ensembles_are_404_model_not_found(http):
    # A plain unknown name would be passed through to the backend (tests/test_passthrough.py).
    error = assert_openai_error(http.post("/v1/chat/completions", json={**GOOD, "model": "trio:gpt-4o"}),
                                404, param="model", code="model_not_found")
    assert "trio:gpt-4o" in error["message"]


def test_unknown_paths_under_v1_are_json_not_html(http):
    assert_openai_error(http.get("/v1/embeddings"), 404)
    assert_openai_error(http.post("/v1/nope/deeper", json={}), 404)
    assert_openai_error(http.get("/v1"), 404)


def test_unknown_extra_fields_are_ignored_as_openai_does(http):
    response = http.post("/v1/chat/completions", json={**GOOD, "user": "u-1", "logit_bias": {}, "whatever": [1]})
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"


def test_null_optional_fields_mean_unset(http, backend):
    response = http.post("/v1/chat/completions", json={**GOOD, "temperature": None, "stop": None, "n": None})
    assert response.status_code == 200
    assert all("temperature" not in call.body for call in backend.calls if not call.is_ballot)


def test_bad_requests_store_nothing_and_the_server_still_answers(http):
    for body in ({"model": "trio"}, {**GOOD, "max_tokens": -1}, {**GOOD, "model": "trio:x"}):
        assert http.post("/v1/chat/completions", json=body).status_code in (400, 404)
    assert CompletionRequest.objects.count() == 0
    assert http.post("/v1/chat/completions", json=GOOD).status_code == 200
    assert CompletionRequest.objects.count() == 1
