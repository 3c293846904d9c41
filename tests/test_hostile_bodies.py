"""Hostile bodies get a 4xx in the OpenAI shape (or a correct answer), and the server keeps answering.

Each test ends by asking a normal question, so a body that wedged or crashed the server fails there.
"""
import socket
from urllib.parse import urlsplit

import orjson
import pytest
from django.test import Client
from django.urls import path

from ensemble.models import CompletionRequest

from .test_bad_input import GOOD, assert_openai_error

JSON = {"content-type": "application/json"}
USER = {"role": "user", "content": "hi"}


def post_raw(http, raw: bytes):
    return http.post("/v1/chat/completions", content=raw, headers=JSON)


def assert_still_answers(http):
    response = http.post("/v1/chat/completions", json=GOOD)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("opening, closing", [(b"[", b"]"), (b'{"a":', b"}")])
def test_a_hundred_thousand_levels_of_nesting_are_400(http, opening, closing):
    depth = 100_000
    raw = b'{"model": "trio", "messages": ' + opening * depth + b"1" + closing * depth + b"}"
    assert_openai_error(post_raw(http, raw), 400, code="invalid_json")
    assert_still_answers(http)


def test_a_30_mb_body_is_413_in_the_openai_shape(http):
    raw = orjson.dumps({"model": "trio", "messages": [{"role": "user", "content": "a" * (30 << 20)}]})
    assert_openai_error(post_raw(http, raw), 413, code="request_too_large")
    assert CompletionRequest.objects.count() == 0
    assert_still_answers(http)


def test_a_30_mb_chunked_body_without_content_length_is_413_too(http):
    chunks = (b"a" * (1 << 20) for _ in range(30))
    response = http.post("/v1/chat/completions", content=chunks, headers=JSON)
    assert "content-length" not in response.request.headers
    assert_openai_error(response, 413, code="request_too_large")
    assert_still_answers(http)


def test_a_body_over_the_limit_is_refused_before_a_byte_of_it_is_sent(http, trio):
    """Only the headers go out: a server that waited for the body would never answer."""
    url = urlsplit(trio)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 31457280\r\n\r\n")
        reply = b"".join(iter(lambda: sock.recv(65536), b""))  # until the server closes
    assert reply.startswith(b"HTTP/1.1 413"), reply
    assert b'"code":"request_too_large"' in reply
    assert_still_answers(http)


def test_the_early_413_carries_cors_headers_for_an_allowed_origin_only(http, trio, settings):
    """A browser app on an allowed origin must be able to read why its upload was refused."""
    settings.CORS_ALLOWED_ORIGINS = ["https://chat.example.com"]
    url = urlsplit(trio)

    def refuse(origin: bytes) -> bytes:
        with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: " + origin +
                         b"\r\nContent-Type: application/json\r\nContent-Length: 31457280\r\n\r\n")
            return b"".join(iter(lambda: sock.recv(65536), b"")).lower()

    allowed, other = refuse(b"https://chat.example.com"), refuse(b"https://evil.example.com")
    assert allowed.startswith(b"http/1.1 413") and other.startswith(b"http/1.1 413")
    assert b"access-control-allow-origin: https://chat.example.com" in allowed
    assert b"access-control-allow-origin" not in other


def test_the_limit_is_trio_max_body_bytes(http, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # what TRIO_MAX_BODY_BYTES sets
    under = {"model": "trio", "messages": [{"role": "user", "content": "a" * 60_000}]}
    assert http.post("/v1/chat/completions", json=under).status_code == 200
    over = {"model": "trio", "messages": [{"role": "user", "content": "a" * 70_000}]}
    assert_openai_error(http.post("/v1/chat/completions", json=over), 413, code="request_too_large")
    assert_still_answers(http)


@pytest.mark.parametrize("raw", [
    b'{"model": "trio", "messages": [{"role": "user", "content": "a\x00b"}]}',
    b'{"model": "trio"\x00, "messages": [{"role": "user", "content": "hi"}]}',
    b"\x00" * 1024,
])
def test_raw_nul_bytes_are_400(http, raw):
    assert_openai_error(post_raw(http, raw), 400, code="invalid_json")
    assert_still_answers(http)


@pytest.mark.parametrize("body, param", [
    ({**GOOD, "model": "tr\u0000io"}, "model"),
    ({"model": "trio", "messages": [{"role": "user", "content": "\u0000"}]}, "messages[0].content"),
    ({"model": "trio", "messages": [{"role": "user", "content": [{"type": "text", "text": "a\u0000"}]}]},
     "messages[0].content"),
    ({"model": "trio", "messages": [{**USER, "name": "bob\u0000"}]}, "messages[0].name"),
    ({"model": "trio", "messages": [{**USER, "tool_call_id": "\u0000"}]}, "messages[0].tool_call_id"),
    ({**GOOD, "stop": "\u0000"}, "stop"),
    ({**GOOD, "stop": ["END", "\u0000"]}, "stop"),
])
def test_nul_characters_in_any_stored_string_are_400(http, body, param):
    """PostgreSQL cannot store NUL in text or jsonb: refused here, not lost at write time."""
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param=param)
    assert CompletionRequest.objects.count() == 0
    assert_still_answers(http)


@pytest.mark.parametrize("raw", [
    b'{"model": "trio", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    b'{"model": "trio", "messages": [{"role": "user", "content": "\xc3\x28"}]}',
    b'{"model": "trio", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',  # UTF-8 surrogate
    b'{"model": "trio", "messages": [{"role": "user", "content": "\\ud800"}]}',  # lone escaped surrogate
    b'\xef\xbb\xbf{"model": "trio", "messages": [{"role": "user", "content": "hi"}]}',  # BOM
    '{"model": "trio", "messages": [{"role": "user", "content": "é"}]}'.encode("latin-1"),
])
def test_invalid_utf8_is_400(http, raw):
    assert_openai_error(post_raw(http, raw), 400, code="invalid_json")
    assert_still_answers(http)


@pytest.mark.parametrize("field, value", [
    ("temperature", "0.5"), ("top_p", "1"), ("max_tokens", "10"), ("max_completion_tokens", "10"),
    ("n", "1"), ("seed", "7"), ("presence_penalty", "0"), ("frequency_penalty", "0"), ("stream", "false"),
    ("max_tokens", 10.0), ("max_tokens", True), ("temperature", False),
])
def test_numbers_and_booleans_of_the_wrong_type_are_400(http, field, value):
    assert_openai_error(http.post("/v1/chat/completions", json={**GOOD, field: value}), 400, param=field)
    assert_still_answers(http)


@pytest.mark.parametrize("raw, param", [
    (b'{"model": "trio", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}', None),
    (b'{"model": "trio", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e30}', "max_tokens"),
    (b'{"model": "trio", "messages": [{"role": "user", "content": "hi"}], "seed": 100000000000000000000000}',
     "seed"),
    (b'{"model": "trio", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', None),
])
def test_numbers_out_of_any_range_are_400(http, raw, param):
    assert_openai_error(post_raw(http, raw), 400, param=param)
    assert_still_answers(http)


EVERY_FIELD = ("model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n",
               "stream", "stop", "seed", "presence_penalty", "frequency_penalty")


@pytest.mark.parametrize("body, param", [
    (dict.fromkeys(EVERY_FIELD), "model"),
    ({"model": None, "messages": [USER]}, "model"),
    ({"model": "trio", "messages": None}, "messages"),
    ({"model": "trio", "messages": [None]}, "messages[0]"),
    ({"model": "trio", "messages": [{"role": None, "content": "hi"}]}, "messages[0].role"),
    ({"model": "trio", "messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"model": "trio", "messages": [{**USER, "name": None}]}, "messages[0].name"),
    ({"model": "trio", "messages": [{"role": None, "content": None, "name": None, "tool_call_id": None}]},
     "messages[0].role"),
    ({"model": "trio", "messages": [{"role": "user", "content": [None]}]}, "messages[0].content"),
    ({"model": "trio", "messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]},
     "messages[0].content"),
])
def test_nulls_where_values_are_needed_are_400(http, body, param):
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param=param)
    assert_still_answers(http)


def test_nulls_in_every_optional_field_mean_unset(http):
    body = {**dict.fromkeys(EVERY_FIELD), **GOOD}
    assert http.post("/v1/chat/completions", json=body).status_code == 200


def test_ten_thousand_messages_are_answered(http):
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(9_999)]
    response = http.post("/v1/chat/completions", json={"model": "trio", "messages": [*turns, USER]})
    assert response.status_code == 200, response.text
    assert len(CompletionRequest.objects.get().messages) == 10_000


def test_more_than_ten_thousand_messages_are_400(http):
    body = {"model": "trio", "messages": [USER] * 10_001}
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param="messages")
    assert_still_answers(http)


EMPTY_PART = {"type": "text", "text": ""}


@pytest.mark.parametrize("messages, param", [
    ([{"role": "user", "content": [EMPTY_PART] * 330_000}], "messages[0].content"),
    ([USER, {"role": "user", "content": [EMPTY_PART] * 5_000}, {"role": "user", "content": [EMPTY_PART] * 5_001}],
     "messages[2].content"),
], ids=["in-one-message", "over-several"])
def test_more_than_ten_thousand_content_parts_are_400_naming_the_message(http, messages, param):
    error = assert_openai_error(http.post("/v1/chat/completions", json={"model": "trio", "messages": messages}),
                                400, param=param)
    assert "at most 10000 content parts" in error["message"]
    assert CompletionRequest.objects.count() == 0
    assert_still_answers(http)


def test_ten_thousand_content_parts_are_answered(http):
    messages = [{"role": "user", "content": [EMPTY_PART] * 5_000}, {"role": "user", "content": [EMPTY_PART] * 4_999},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    response = http.post("/v1/chat/completions", json={"model": "trio", "messages": messages})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("raw, status", [
    (b'{"model": "trio:gpt-4o", "model": "trio", "messages": [{"role": "user", "content": "hi"}]}', 200),
    (b'{"model": "trio", "model": "trio:gpt-4o", "messages": [{"role": "user", "content": "hi"}]}', 404),
    (b'{"model": "trio", "messages": [{"role": "user", "content": "hi", "content": 5}]}', 400),
])
def test_with_duplicate_keys_the_last_one_wins_as_in_python_and_openai(http, raw, status):
    assert post_raw(http, raw).status_code == status
    assert_still_answers(http)


# A URLconf with views that crash, to see what Django's own 500 handler produces under /v1/.
async def crash(request):
    raise RuntimeError("a bug")


urlpatterns = [path("v1/crash", crash), path("crash", crash)]


@pytest.mark.urls(__name__)
def test_a_crash_under_v1_is_an_openai_json_500_and_elsewhere_stays_django_s_page():
    client = Client(raise_request_exception=False)
    response = client.get("/v1/crash")
    assert response.status_code == 500
    assert response.json() == {"error": {"message": "The server had an error while processing your request.",
                                         "type": "api_error", "param": None, "code": "internal_error"}}
    assert "a bug" not in response.content.decode()
    outside = client.get("/crash")
    assert outside.status_code == 500 and not outside["Content-Type"].startswith("application/json")


def test_an_unknown_path_and_a_disallowed_host_under_v1_are_openai_json(http):
    assert_openai_error(http.get("/v1/files"), 404, code="unknown_url")
    assert_openai_error(http.get("/v1/models", headers={"Host": "evil.example"}), 400)
    assert_still_answers(http)
