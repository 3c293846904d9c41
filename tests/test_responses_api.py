"""POST /v1/responses end to end: the openai SDK's `responses` → Trio under uvicorn → the fake backend → the database.

The Responses API is translated into the same chat conversation the ensemble answers, so these tests
check the translation (what the backend was sent), the shape (what the SDK parses) and the rows.
"""
import json

import httpx
import openai
import pytest
from openai.types.responses import ResponseError
from pydantic import BaseModel

from ensemble.keys import api_key_create, keys_required
from ensemble.models import Ballot, Candidate, CompletionRequest

WEATHER = {"type": "function", "name": "get_weather", "description": "The current weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def sdk(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def generations(backend):
    return [call for call in backend.calls if not call.is_ballot]


def test_the_sdk_gets_the_voted_winners_text_and_every_vote_is_stored(sdk, backend):
    raw = sdk.responses.with_raw_response.create(model="trio", input="What is the capital of France?")
    response = raw.parse()

    winner = Candidate.objects.get(is_winner=True)
    assert response.output_text == winner.content and winner.content.startswith("[alpha quality=0.90]")
    assert (response.object, response.status, response.model) == ("response", "completed", "trio")
    request = CompletionRequest.objects.get()
    assert response.id == request.public_id
    assert request.messages == [{"role": "user", "content": "What is the capital of France?"}]
    assert (request.status, request.voter_count, Ballot.objects.count()) == ("ok", 3, 3)
    [message] = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert response.usage.output_tokens == winner.completion_tokens and response.usage.input_tokens == winner.prompt_tokens
    assert response.usage.total_tokens == winner.total_tokens > 0
    assert response.model_extra["trio"]["winner_index"] == 0
    assert json.loads(raw.headers["X-Trio-Details"])["request_id"] == request.public_id
    assert len(generations(backend)) == 3


def test_instructions_and_sampling_reach_every_member_as_a_system_message_first(sdk, backend):
    response = sdk.responses.create(model="trio", instructions="Answer briefly.", input="Name a prime.",
                                    temperature=0.3, top_p=0.9, max_output_tokens=400)

    for call in generations(backend):
        assert call.body["messages"] == [{"role": "system", "content": "Answer briefly."},
                                         {"role": "user", "content": "Name a prime."}]
        assert (call.body["temperature"], call.body["top_p"], call.body["max_tokens"]) == (0.3, 0.9, 400)
    assert (response.instructions, response.temperature, response.max_output_tokens) == ("Answer briefly.", 0.3, 400)


def test_a_list_of_input_messages_becomes_the_conversation(sdk, backend):
    conversation = [
        {"role": "developer", "content": "Be terse."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello.", "annotations": []}]},
        {"role": "user", "content": "What is 2 + 2?"},
    ]

    response = sdk.responses.create(model="trio", input=conversation)

    assert response.output_text.startswith('[alpha quality=0.90] This is a fake answer to: "What is 2 + 2?')
    assert generations(backend)[0].body["messages"] == [
        {"role": "developer", "content": "Be terse."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
        {"role": "user", "content": "What is 2 + 2?"}]


def test_previous_response_id_continues_the_stored_conversation_and_its_answer(sdk, backend):
    first = sdk.responses.create(model="trio", instructions="Answer briefly.", input="Name a prime.")
    backend.reset()

    second = sdk.responses.create(model="trio", previous_response_id=first.id, input="And another one?",
                                  instructions="Answer very briefly.")

    assert second.previous_response_id == first.id
    for call in generations(backend):
        assert call.body["messages"] == [
            {"role": "system", "content": "Answer very briefly."},  # the new instructions, not both
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": first.output_text},
            {"role": "user", "content": "And another one?"}]
    assert CompletionRequest.objects.get(pk=second.id.removeprefix("trio-")).messages[2]["content"] == first.output_text


def test_the_fanout_budget_counts_the_stored_conversation_a_response_continues(sdk, trio_settings, backend):
    first = sdk.responses.create(model="trio", input="Tell me everything. " * 500)  # about 10 kB stored
    backend.reset()
    trio_settings.TRIO_MAX_FANOUT_BYTES = 6 * 5_000  # six calls: the new input passes, with the history not

    with pytest.raises(openai.APIStatusError) as caught:
        sdk.responses.create(model="trio", previous_response_id=first.id, input="And?")

    assert caught.value.status_code == 413 and caught.value.body["code"] == "request_too_large"
    assert not backend.calls and CompletionRequest.objects.count() == 1


def test_an_unknown_previous_response_id_is_a_404_and_nothing_is_asked(sdk, backend):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.responses.create(model="trio", previous_response_id="trio-" + "0" * 32, input="Hi")

    assert caught.value.body["code"] == "previous_response_not_found"
    assert caught.value.body["param"] == "previous_response_id"
    assert not backend.calls and not CompletionRequest.objects.exists()


def test_a_failed_previous_response_cannot_be_continued(sdk, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@status=500"]
    with pytest.raises(openai.APIStatusError):
        sdk.responses.create(model="trio", input="Hi")
    failed = CompletionRequest.objects.get()

    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="trio", previous_response_id=failed.public_id, input="Again?")

    assert caught.value.body["param"] == "previous_response_id" and "failed" in caught.value.body["message"]


def test_a_chat_completion_can_be_continued_too(sdk, backend):
    completion = sdk.chat.completions.create(model="trio", messages=[{"role": "user", "content": "Name a prime."}])
    backend.reset()

    sdk.responses.create(model="trio", previous_response_id=completion.id, input="And another one?")

    assert generations(backend)[0].body["messages"] == [
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": completion.choices[0].message.content},
        {"role": "user", "content": "And another one?"}]


def test_a_response_stored_without_its_text_cannot_be_continued(sdk, trio_settings, backend):
    trio_settings.TRIO_STORE_CONTENT = False
    first = sdk.responses.create(model="trio", input="Name a prime.")
    backend.reset()

    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="trio", previous_response_id=first.id, input="And another one?")

    assert "TRIO_STORE_CONTENT" in caught.value.body["message"] and not backend.calls


def test_a_key_cannot_continue_another_keys_response(trio, backend):
    _, mine = api_key_create(name="mine")
    _, theirs = api_key_create(name="theirs")
    try:
        asked = openai.OpenAI(base_url=f"{trio}/v1", api_key=theirs, max_retries=0, timeout=30)
        other = openai.OpenAI(base_url=f"{trio}/v1", api_key=mine, max_retries=0, timeout=30)
        theirs_response = asked.responses.create(model="trio", input="A secret question.")

        with pytest.raises(openai.NotFoundError):
            other.responses.create(model="trio", previous_response_id=theirs_response.id, input="What did they ask?")
        continued = asked.responses.create(model="trio", previous_response_id=theirs_response.id, input="Go on.")
    finally:
        keys_required.clear()  # the test database is emptied without signals

    assert continued.status == "completed" and CompletionRequest.objects.count() == 2


def test_a_tool_call_comes_back_as_a_function_call_item_and_its_output_gets_the_answer(sdk, backend):
    first = sdk.responses.create(model="trio", input="What is the weather in Paris?", tools=[WEATHER])

    [call] = first.output
    assert (call.type, call.name, call.status) == ("function_call", "get_weather", "completed")
    assert json.loads(call.arguments)["city"].startswith("[alpha quality=0.90]")
    winner = Candidate.objects.get(is_winner=True)
    assert call.call_id == winner.tool_calls[0]["id"]
    assert generations(backend)[0].body["tools"] == [{"type": "function", "function": {
        key: value for key, value in WEATHER.items() if key != "type"}}]
    backend.reset()

    final = sdk.responses.create(model="trio", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 °C"}])

    assert final.output_text.startswith('[alpha quality=0.90] This is a fake answer to: "What is the weather')
    sent = generations(backend)[0].body["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": winner.tool_calls}
    assert sent[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny, 24 °C"}


def test_a_function_call_sent_back_as_input_joins_the_assistant_turn(sdk, backend):
    first = sdk.responses.create(model="trio", input="What is the weather in Paris?", tools=[WEATHER])
    [call] = first.output
    backend.reset()

    sdk.responses.create(model="trio", tools=[WEATHER], tool_choice="auto", input=[
        {"role": "user", "content": "What is the weather in Paris?"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}])

    assert generations(backend)[0].body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.call_id, "type": "function", "function": {"name": "get_weather", "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny"}]
    assert generations(backend)[0].body["tool_choice"] == "auto"


class Capital(BaseModel):
    answer: str


def test_parse_with_a_text_format_gives_the_parsed_object(sdk, backend):
    response = sdk.responses.parse(model="trio", input="What is the capital of France?", text_format=Capital)

    assert response.output_parsed.answer.startswith("[alpha quality=0.90]")
    response_format = generations(backend)[0].body["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["name"] == "Capital"
    assert response_format["json_schema"]["schema"]["properties"] == {"answer": {"title": "Answer", "type": "string"}}


def test_the_sdk_streams_the_events_and_the_final_text(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,size=300", "beta@quality=0.6"]

    with sdk.responses.stream(model="trio", input="Tell me about the moons of Jupiter.") as stream:
        events = list(stream)
        final = stream.get_final_response()

    winner = Candidate.objects.get(is_winner=True)
    assert final.output_text == winner.content and final.id == CompletionRequest.objects.get().public_id
    types = [event.type for event in events]
    assert types[:5] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta"]
    assert types[-5:] == ["response.output_text.delta", "response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert types.count("response.output_text.delta") > 2
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == winner.content
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.model_extra["trio"]["winner_index"] == 0


def test_a_streamed_tool_call_has_its_arguments_events(sdk):
    stream = sdk.responses.create(model="trio", input="What is the weather in Paris?", tools=[WEATHER], stream=True)

    events = list(stream)

    types = [event.type for event in events]
    assert "response.function_call_arguments.delta" in types
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments)["city"].startswith("[alpha quality=0.90]")
    assert events[-1].type == "response.completed" and events[-1].response.output[0].type == "function_call"


def test_the_raw_stream_names_each_event_and_keeps_alive_while_the_ensemble_works(trio, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@latency=0.4,quality=0.9", "beta@latency=0.4"]
    trio_settings.TRIO_STREAM_KEEPALIVE = 0.05

    response = httpx.post(f"{trio}/v1/responses", json={"model": "trio", "input": "Hi", "stream": True}, timeout=30)

    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    blocks = [block for block in response.text.split("\n\n") if block]
    first = next(i for i, block in enumerate(blocks) if not block.startswith(":"))
    assert first >= 3 and set(blocks[:first]) == {": keep-alive"}
    for block in blocks[first:]:
        event, data = block.split("\n")
        assert event.removeprefix("event: ") == json.loads(data.removeprefix("data: "))["type"]
    assert blocks[-1].startswith("event: response.completed\n")


def test_a_failure_after_the_stream_began_is_a_response_failed_event(trio, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@latency=0.3,status=500", "beta@latency=0.3,status=500"]
    trio_settings.TRIO_STREAM_KEEPALIVE = 0.05

    response = httpx.post(f"{trio}/v1/responses", json={"model": "trio", "input": "Hi", "stream": True}, timeout=30)

    last = json.loads(response.text.strip().split("\n\n")[-1].split("\n")[1].removeprefix("data: "))
    assert last["type"] == "response.failed" and last["response"]["status"] == "failed"
    # A code from OpenAI's closed list, so that the SDK's ResponseError validates strictly.
    error = ResponseError.model_validate(last["response"]["error"], strict=True)
    assert error.code == "server_error" and "alpha@latency=0.3,status=500" in error.message
    assert last["response"]["id"] == CompletionRequest.objects.get().public_id


def test_a_small_max_output_tokens_makes_the_response_incomplete(sdk, backend):
    response = sdk.responses.create(model="trio", input="Tell me about the moons of Jupiter.", max_output_tokens=3)

    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert all(call.body["max_tokens"] == 3 for call in generations(backend))


def test_completed_at_is_set_only_on_a_completed_response(sdk, trio_settings):
    # The SDK documents completed_at as "only present when the status is completed".
    completed = sdk.responses.create(model="trio", input="Hi")
    incomplete = sdk.responses.create(model="trio", input="Tell me about the moons of Jupiter.", max_output_tokens=3)
    trio_settings.TRIO_MODELS = ["alpha@status=500"]
    with pytest.raises(openai.APIStatusError):
        sdk.responses.create(model="trio", input="Hi")
    failed = CompletionRequest.objects.get(status="failed").public_id

    assert completed.completed_at >= completed.created_at
    assert sdk.responses.retrieve(completed.id).completed_at == completed.completed_at
    assert incomplete.status == "incomplete" and incomplete.completed_at is None
    assert sdk.responses.retrieve(incomplete.id).completed_at is None
    assert sdk.responses.retrieve(failed).completed_at is None


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "Hi"}, "model"),
    ({"model": "trio"}, "input"),
    ({"model": "trio", "input": []}, "input"),
    ({"model": "trio", "input": [{"role": "robot", "content": "Hi"}]}, "input[0].role"),
    ({"model": "trio", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "https://example.com/cat.png"}]}]}, "input[0].content[0].type"),
    ({"model": "trio", "input": [{"type": "reasoning", "summary": []}]}, "input[0].type"),
    ({"model": "trio", "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments"),
    ({"model": "trio", "input": "Hi", "temperature": "0.5"}, "temperature"),
    ({"model": "trio", "input": "Hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "trio", "input": "Hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "trio", "input": "Hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
     "tool_choice.name"),
    ({"model": "trio", "input": "Hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"model": "trio", "input": "Hi", "background": True}, "background"),
    ({"model": "trio", "input": "Hi", "conversation": "conv_123"}, "conversation"),
    ({"model": "trio", "input": "Hi\x00"}, "input"),
    ({"model": "trio", "input": [{"type": "function_call_output", "call_id": "call_1", "output": "Sunny"}]}, "input"),
    ({"model": {"ensemble": [{"model": "alpha"}], "aggregation_method": "concat"}, "input": "Hi",
      "text": {"format": {"type": "json_object"}}}, "text.format"),
])
def test_bad_input_is_a_400_naming_the_param_and_nothing_is_stored_or_asked(http, backend, body, param):
    response = http.post("/v1/responses", json=body)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "invalid_value", "invalid_request_error")
    assert not backend.calls and not CompletionRequest.objects.exists()


def test_an_unknown_ensemble_is_a_404(http):
    response = http.post("/v1/responses", json={"model": "trio:nope", "input": "Hi"})

    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def test_all_models_failing_is_a_502_and_is_still_stored(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@status=500", "beta@status=503"]

    with pytest.raises(openai.APIStatusError) as caught:
        sdk.responses.create(model="trio", input="Hi")

    assert caught.value.status_code == 502 and caught.value.body["code"] == "backend_error"
    assert CompletionRequest.objects.get().status == "failed"


def test_a_passthrough_model_answers_in_the_responses_shape(sdk, backend):
    response = sdk.responses.create(model="solo@quality=0.7", input="Hi")

    assert response.model == "solo@quality=0.7" and response.output_text.startswith("[solo quality=0.70]")
    assert "trio" not in response.model_extra
    assert CompletionRequest.objects.get().aggregation_method == "passthrough"


def test_langchain_with_the_responses_api_gets_the_answer(trio):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="trio", base_url=f"{trio}/v1", api_key="x", max_retries=0, use_responses_api=True)

    message = llm.invoke("What is the capital of France?")

    assert message.text.startswith("[alpha quality=0.90]")
    assert message.id == CompletionRequest.objects.get().public_id  # LangChain keeps the response id
    assert CompletionRequest.objects.get().messages == [{"role": "user", "content": "What is the capital of France?"}]


def test_a_stored_response_can_be_retrieved_as_it_was_answered(sdk):
    created = sdk.responses.create(model="trio", input="What is the weather in Paris?", tools=[WEATHER],
                                   tool_choice="required", temperature=0.5, max_output_tokens=300)

    retrieved = sdk.responses.retrieve(created.id)

    assert retrieved.model_dump(include={"id", "status", "model", "output", "usage", "tool_choice", "temperature",
                                         "max_output_tokens"}) == created.model_dump(
        include={"id", "status", "model", "output", "usage", "tool_choice", "temperature", "max_output_tokens"})
    assert retrieved.tools[0].model_dump(exclude_none=True) == WEATHER


def test_a_retrieved_failure_says_so_and_another_keys_response_is_not_found(sdk, trio, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@status=500"]
    with pytest.raises(openai.APIStatusError):
        sdk.responses.create(model="trio", input="Hi")
    failed = CompletionRequest.objects.get()

    retrieved = sdk.responses.retrieve(failed.public_id)

    assert retrieved.status == "failed" and "HTTP 500" in retrieved.error.message and retrieved.output == []
    assert retrieved.error.code == "server_error"
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve("not-an-id")
    _, key = api_key_create(name="someone")
    try:
        with pytest.raises(openai.NotFoundError) as caught:
            openai.OpenAI(base_url=f"{trio}/v1", api_key=key, max_retries=0).responses.retrieve(failed.public_id)
    finally:
        keys_required.clear()
    assert caught.value.body["code"] == "response_not_found"
