"""The backend client against the real fake server over HTTP: answers, failures, auth, URL forms."""
import asyncio
import socket
import time

import pytest

from ensemble.backend import (
    BackendBadResponse, BackendClient, BackendHTTPError, BackendTimeout, BackendUnavailable, normalize_base_url,
)
from ensemble.formats.usage import Usage
from tests.conftest import BACKEND_API_KEY, backend_answering

MESSAGES = [{"role": "user", "content": "hello"}]


def chat(url, model, *, api_key=BACKEND_API_KEY, timeout=5.0, params=None):
    async def call():
        client = BackendClient(url, api_key=api_key, timeout=timeout)
        try:
            return await client.chat(model, MESSAGES, params)
        finally:
            await client.aclose()

    return asyncio.run(call())


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_it_accepts_the_backend_url_with_or_without_v1(backend, suffix):
    result = chat(backend.url + suffix, "alpha")
    assert result.content.startswith("[alpha quality=0.50]")
    assert result.finish_reason == "stop" and result.usage.total_tokens > 0


def test_normalize_base_url():
    assert normalize_base_url("http://h:4000") == "http://h:4000/v1"
    assert normalize_base_url("http://h:4000/v1/") == "http://h:4000/v1"


def test_it_sends_the_api_key_as_a_bearer_token_and_the_parameters(backend):
    chat(backend.url, "alpha", params={"temperature": 0.2, "stop": ["x"]})
    call = backend.calls[-1]
    assert call.headers["authorization"] == f"Bearer {BACKEND_API_KEY}"
    assert call.body["temperature"] == 0.2 and call.body["stop"] == ["x"] and call.body["model"] == "alpha"


def test_a_wrong_api_key_is_an_http_401(backend):
    with pytest.raises(BackendHTTPError) as caught:
        chat(backend.url, "alpha", api_key="wrong")
    assert caught.value.status_code == 401 and caught.value.reason == "http_401"


def test_a_500_is_an_http_error_with_the_status(backend):
    with pytest.raises(BackendHTTPError) as caught:
        chat(backend.url, "alpha@status=500")
    assert caught.value.status_code == 500 and "500" in str(caught.value)


def test_a_hang_is_a_timeout_after_the_calls_deadline(backend):
    started = time.monotonic()
    with pytest.raises(BackendTimeout):
        chat(backend.url, "alpha@hang", timeout=0.3)
    assert time.monotonic() - started < 2


def test_slow_answers_within_the_deadline_succeed(backend):
    assert chat(backend.url, "alpha@latency=0.2", timeout=2).content


@pytest.mark.parametrize("behaviour, message", [("malformed", "not JSON"), ("empty", "empty content")])
def test_malformed_or_empty_answers_are_bad_responses(backend, behaviour, message):
    with pytest.raises(BackendBadResponse, match=message):
        chat(backend.url, f"alpha@{behaviour}")


def test_connection_refused_is_unavailable():
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackendUnavailable):
        chat(f"http://127.0.0.1:{port}", "alpha")


def test_an_unreachable_backend_is_not_named_in_the_error():
    # The message reaches API clients (a 502 lists each member's error) and /health/ready, which
    # anyone may call: it says what failed, never where the backend lives.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackendUnavailable) as failure:
        chat(f"http://127.0.0.1:{port}", "alpha")
    message = str(failure.value)
    assert message.startswith("alpha: ") and "connect" in message.lower()
    assert "127.0.0.1" not in message and str(port) not in message


def test_list_models_reads_the_backend_model_ids(backend):
    async def call():
        client = BackendClient(backend.url, api_key=BACKEND_API_KEY)
        try:
            return await client.list_models()
        finally:
            await client.aclose()

    assert "fake" in asyncio.run(call())


@pytest.mark.parametrize("finish_reason", [{"type": "stop"}, ["stop"], 7, None, ""])
def test_a_finish_reason_that_is_not_a_word_is_read_as_stop(finish_reason):
    # It is relayed to clients, who expect a string, and stored in a text column.
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": finish_reason}]}
    with backend_answering(body) as server:
        assert chat(server.url, "odd").finish_reason == "stop"


@pytest.mark.parametrize("content, text", [
    ([{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Paris"}, {"type": "text", "text": "."}],
     "Paris."),
    ([{"type": "text", "text": "Paris"}], "Paris"),
])
def test_an_answer_given_as_parts_is_read_as_its_text_parts(content, text):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
    with backend_answering(body) as server:
        assert chat(server.url, "parts").content == text


@pytest.mark.parametrize("content", [[], [{"type": "thinking", "thinking": "hmm"}], [{"type": "text", "text": " "}],
                                     [{"type": "text", "text": 7}]])
def test_parts_without_text_are_an_empty_answer(content):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
    with backend_answering(body) as server, pytest.raises(BackendBadResponse, match="empty content"):
        chat(server.url, "parts")


def test_a_token_count_past_what_a_database_column_holds_counts_as_0():
    # Sums of such counts outgrew 64 bits: the API could not even encode its answer.
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2**63 + 5, "completion_tokens": 2**31 - 1, "total_tokens": 2**63 + 2**31 + 4}}
    with backend_answering(body) as server:
        assert chat(server.url, "odd").usage == Usage(0, 2**31 - 1, 0)


CALL = {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


@pytest.mark.parametrize("message", [
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "assistant", "tool_calls": [{**CALL, "extra": 1}]},  # no content at all; unknown keys dropped
])
def test_an_answer_with_tool_calls_and_no_text_is_an_answer(message):
    body = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    with backend_answering(body) as server:
        result = chat(server.url, "tooly")
    assert (result.content, result.finish_reason, result.tool_calls) == ("", "tool_calls", [CALL])


def test_text_and_tool_calls_are_both_kept_and_a_missing_finish_reason_says_tool_calls():
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL]}}]}
    with backend_answering(body) as server:
        result = chat(server.url, "tooly")
    assert (result.content, result.finish_reason, result.tool_calls) == ("Let me look.", "tool_calls", [CALL])


@pytest.mark.parametrize("tool_calls", [
    [], "call", [{"id": "x", "type": "function"}], [{**CALL, "type": "code"}],
    [{**CALL, "function": {"name": "f", "arguments": {"city": "Paris"}}}], [{**CALL, "id": 7}],
])
def test_malformed_tool_calls_without_text_are_a_bad_response(tool_calls):
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": tool_calls},
                         "finish_reason": "tool_calls"}]}
    with backend_answering(body) as server, pytest.raises(BackendBadResponse, match="empty content"):
        chat(server.url, "tooly")
