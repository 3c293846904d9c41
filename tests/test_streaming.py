"""stream: true — server-sent chunks once the vote is decided, keep-alives before, hang-ups recorded."""
import json

import httpx
import openai
import pytest

from ensemble.models import Candidate, CompletionRequest
from tests.conftest import wait_for

QUESTION = [{"role": "user", "content": "Tell me about the moons of Jupiter."}]


@pytest.fixture
def client(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def events(response: httpx.Response) -> list[str]:
    """Return the raw SSE blocks of a response: comments and `data:` lines."""
    return [block for block in response.text.split("\n\n") if block]


def test_the_openai_sdk_streams_the_winning_answer_with_the_vote_in_the_last_chunk(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,size=300", "beta@quality=0.6", "gamma@quality=0.3"]

    chunks = list(client.chat.completions.create(model="trio", messages=QUESTION, stream=True))

    winner = Candidate.objects.get(is_winner=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == winner.content
    assert len(chunks) > 4  # role, several pieces of a 300-character answer, finish
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert {c.id for c in chunks} == {CompletionRequest.objects.get().public_id}
    assert {c.model for c in chunks} == {"trio"}
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    details = last.model_extra["trio"]
    assert details["winner_index"] == 0 and len(details["ballots"]) == 3
    assert all(c.usage is None for c in chunks)  # usage only when asked for


def test_include_usage_adds_a_last_chunk_with_the_usage(client):
    chunks = list(client.chat.completions.create(
        model="trio", messages=QUESTION, stream=True, stream_options={"include_usage": True}))

    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    winner = Candidate.objects.get(is_winner=True)
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.total_tokens) == (winner.prompt_tokens, winner.total_tokens)
    assert all(c.usage is None for c in chunks[:-1])
    assert "trio" in chunks[-2].model_extra  # the finish chunk keeps the details


def test_keep_alive_comments_flow_while_the_ensemble_works(trio, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@latency=0.4,quality=0.9", "beta@latency=0.4"]
    trio_settings.TRIO_STREAM_KEEPALIVE = 0.05
    body = {"model": "trio", "messages": QUESTION, "stream": True}

    response = httpx.post(f"{trio}/v1/chat/completions", json=body, timeout=30)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    blocks = events(response)
    first_data = next(i for i, block in enumerate(blocks) if block.startswith("data:"))
    assert first_data >= 3 and set(blocks[:first_data]) == {": keep-alive"}
    assert blocks[-1] == "data: [DONE]"
    chunks = [json.loads(block.removeprefix("data: ")) for block in blocks[first_data:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == Candidate.objects.get(
        is_winner=True).content


def test_langchain_chat_openai_streams_against_it(trio):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{trio}/v1", api_key="x", model="trio", streaming=True, max_retries=0, timeout=30)

    pieces = [chunk.content for chunk in llm.stream("What is 2 + 2?")]
    answer = llm.invoke("What is 2 + 2?")

    assert "".join(pieces).startswith("[alpha quality=0.90]")
    assert answer.content.startswith("[alpha quality=0.90]")
    assert CompletionRequest.objects.count() == 2


def test_a_client_hanging_up_mid_stream_cancels_the_work_and_is_recorded(trio, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@latency=3", "beta@latency=3"]
    trio_settings.TRIO_STREAM_KEEPALIVE = 0.05
    body = {"model": "trio", "messages": QUESTION, "stream": True}

    with httpx.Client(timeout=30) as http:
        with http.stream("POST", f"{trio}/v1/chat/completions", json=body) as response:
            assert next(response.iter_lines()) == ": keep-alive"  # the stream has begun; now hang up

    assert wait_for(lambda: CompletionRequest.objects.filter(status="cancelled").exists(), timeout=5)
    request = CompletionRequest.objects.get()
    assert request.latency_ms < 2500  # recorded at the hang-up, not after the 3 s calls
    assert set(request.candidates.values_list("status", flat=True)) == {"cancelled"}


def test_a_quick_failure_is_an_http_error_not_a_stream(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@status=500", "beta@status=500"]

    with pytest.raises(openai.APIStatusError) as caught:
        list(client.chat.completions.create(model="trio", messages=QUESTION, stream=True))

    assert caught.value.status_code == 502
    assert CompletionRequest.objects.get().status == "failed"


def test_a_failure_after_the_stream_began_is_an_error_event(client, trio, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@latency=0.3,status=500", "beta@latency=0.3,status=500"]
    trio_settings.TRIO_STREAM_KEEPALIVE = 0.05
    body = {"model": "trio", "messages": QUESTION, "stream": True}

    blocks = events(httpx.post(f"{trio}/v1/chat/completions", json=body, timeout=30))

    assert blocks[0] == ": keep-alive" and blocks[-1] == "data: [DONE]"
    error = json.loads(blocks[-2].removeprefix("data: "))["error"]
    assert error["code"] == "backend_error" and "alpha" in error["message"]
    with pytest.raises(openai.APIError, match="alpha"):
        list(client.chat.completions.create(model="trio", messages=QUESTION, stream=True))


def test_n_choices_stream_side_by_side(client):
    chunks = list(client.chat.completions.create(model="trio", messages=QUESTION, stream=True, n=2))

    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts[0].startswith("[alpha quality=0.90]") and texts[1].startswith("[beta quality=0.60]")
    assert [c.choices[0].finish_reason for c in chunks[-2:]] == ["stop", "stop"]
