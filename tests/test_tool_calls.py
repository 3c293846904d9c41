"""Tool calling through an ensemble: the members get the tools, voters read tool calls as sentences,
and the winner's calls come back as OpenAI's `tool_calls`.

Through the real stack: the `openai` SDK and LangChain → Trio under uvicorn → the fake backend,
whose models call the first tool offered (its arguments carry their quality tag) unless told to
`ignore_tools`, and answer text once a tool has answered.
"""
import json

import openai
import pytest

from ensemble.models import Candidate, CompletionRequest
from tests.conftest import backend_answering

QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
DEEP: dict = {"type": "string"}
for _ in range(200):
    DEEP = {"type": "object", "properties": {"x": DEEP}}  # deeper than the params' JSON may be stored
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture
def sdk(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def generations(backend):
    return [call for call in backend.calls if not call.is_ballot]


def ballots(backend):
    return [call for call in backend.calls if call.is_ballot]


def test_the_sdk_gets_the_voted_winners_tool_call(sdk, backend):
    raw = sdk.chat.completions.with_raw_response.create(model="trio", messages=QUESTION, tools=[WEATHER])
    choice = raw.parse().choices[0]

    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"].startswith("[alpha quality=0.90]")  # the best member won
    winner = Candidate.objects.get(is_winner=True)
    assert (winner.model, winner.content, winner.finish_reason) == ("alpha@quality=0.9", "", "tool_calls")
    assert winner.tool_calls == [call.model_dump()]  # stored, its id as the backend gave it
    assert all(c.tool_calls and c.tool_calls[0]["function"]["name"] == "get_weather"
               for c in Candidate.objects.all())
    assert len(generations(backend)) == 3 and all(g.body["tools"] == [WEATHER] for g in generations(backend))
    # Voters read each call as a sentence, and are never offered the tools themselves.
    assert len(ballots(backend)) == 3
    for ballot in ballots(backend):
        assert "tools" not in ballot.body
        assert 'Calls the tool get_weather with arguments {"city": "[beta quality=0.60]' in (
            ballot.body["messages"][-1]["content"])
    header = json.loads(raw.headers["X-Trio-Details"])
    assert header["winner_index"] == 0
    assert header["candidates"][0]["response"].startswith('Calls the tool get_weather with arguments {"city": ')


def test_a_tool_loop_ends_in_a_text_answer(sdk, backend):
    first = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER]).choices[0].message
    [call] = first.tool_calls
    conversation = [*QUESTION, first.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 °C"}]
    backend.reset()

    final = sdk.chat.completions.create(model="trio", messages=conversation, tools=[WEATHER]).choices[0]

    assert final.finish_reason == "stop" and not final.message.tool_calls
    assert final.message.content.startswith('[alpha quality=0.90] This is a fake answer to: "What is the weather')
    # The members got the call and its result as sent; voters read the call as a sentence.
    assert generations(backend)[0].body["messages"][1]["tool_calls"] == [call.model_dump()]
    assert generations(backend)[0].body["messages"][2]["tool_call_id"] == call.id
    assert "[assistant]\nCalls the tool get_weather with arguments" in ballots(backend)[0].body["messages"][-1]["content"]
    assert CompletionRequest.objects.count() == 2


def test_langchain_bind_tools_gets_the_tool_call(trio):
    from langchain_openai import ChatOpenAI

    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return "sunny"

    llm = ChatOpenAI(model="trio", base_url=f"{trio}/v1", api_key="x", max_retries=0).bind_tools([get_weather])

    message = llm.invoke("What is the weather in Paris?")

    [call] = message.tool_calls
    assert call["name"] == "get_weather" and call["args"]["city"].startswith("[alpha quality=0.90]")
    assert call["id"] == Candidate.objects.get(is_winner=True).tool_calls[0]["id"]

    streamed = None
    for chunk in llm.stream("What is the weather in Paris?"):
        streamed = chunk if streamed is None else streamed + chunk
    [call] = streamed.tool_calls
    assert call["name"] == "get_weather" and call["args"]["city"].startswith("[alpha quality=0.90]")


def test_the_sdk_accumulates_a_streamed_tool_call(sdk):
    with sdk.chat.completions.stream(model="trio", messages=QUESTION, tools=[WEATHER]) as stream:
        completion = stream.get_final_completion()

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments)["city"].startswith("[alpha quality=0.90]")
    assert call.id == Candidate.objects.get(is_winner=True).tool_calls[0]["id"]


def test_voters_choose_between_text_and_tool_calls(sdk, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.4,ignore_tools", "beta@quality=0.8", "gamma@quality=0.6,ignore_tools"]

    choices = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER], n=2).choices

    assert choices[0].finish_reason == "tool_calls" and choices[0].message.content is None
    assert json.loads(choices[0].message.tool_calls[0].function.arguments)["city"].startswith("[beta quality=0.80]")
    assert choices[1].finish_reason == "stop" and not choices[1].message.tool_calls
    assert choices[1].message.content.startswith("[gamma quality=0.60]")
    prompt = ballots(backend)[0].body["messages"][-1]["content"]
    assert "[alpha quality=0.40] This is a fake answer" in prompt and "Calls the tool get_weather" in prompt
    assert [c.tool_calls != [] for c in Candidate.objects.order_by("index")] == [False, True, False]


def test_a_text_answer_can_win_over_a_tool_call(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,ignore_tools", "beta@quality=0.6"]

    choice = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER]).choices[0]

    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert choice.message.content.startswith("[alpha quality=0.90]")


def test_a_nested_ensembles_tool_call_is_its_candidate_in_the_outer_vote(sdk):
    nested = {"ensemble": [{"model": "beta@quality=0.8"}, {"model": "gamma@quality=0.6,ignore_tools"}]}
    model = {"ensemble": [{"model": "alpha@quality=0.4,ignore_tools"}, {"model": nested}]}

    choice = sdk.chat.completions.create(model=model, messages=QUESTION, tools=[WEATHER]).choices[0]

    assert choice.finish_reason == "tool_calls"
    assert json.loads(choice.message.tool_calls[0].function.arguments)["city"].startswith("[beta quality=0.80]")
    outer = CompletionRequest.objects.get(parent=None)
    assert outer.candidates.get(index=1).tool_calls == [choice.message.tool_calls[0].model_dump()]


def test_tool_choice_none_makes_every_member_answer_text(sdk, backend):
    choice = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER], tool_choice="none",
                                         parallel_tool_calls=False).choices[0]

    assert choice.message.content.startswith("[alpha quality=0.90]") and choice.message.tool_calls is None
    assert not any(c.tool_calls for c in Candidate.objects.all())
    for call in generations(backend):
        assert (call.body["tool_choice"], call.body["parallel_tool_calls"]) == ("none", False)
    assert CompletionRequest.objects.get().params["tool_choice"] == "none"


def test_tool_choice_required_fails_a_member_that_answers_text(sdk, trio_settings):
    # OpenAI guarantees a tool call under "required"; a client (LangChain's agents, its
    # function_calling structured output) reads tool_calls and gets nothing from a text winner.
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,ignore_tools", "beta@quality=0.6"]

    choice = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER],
                                         tool_choice="required").choices[0]

    assert choice.finish_reason == "tool_calls"
    assert json.loads(choice.message.tool_calls[0].function.arguments)["city"].startswith("[beta quality=0.60]")
    text = Candidate.objects.get(index=0)
    assert text.status == "error" and "calls no tool, which tool_choice asked for" in text.error
    assert CompletionRequest.objects.get().status == "partial"


def test_a_named_tool_choice_fails_an_answer_that_calls_another_tool(http, trio_settings):
    wrong = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    body = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [wrong]},
                         "finish_reason": "tool_calls"}]}
    with backend_answering(body) as server:
        trio_settings.TRIO_BACKEND_URL = server.url
        trio_settings.TRIO_MODELS = ["solo"]

        response = http.post("/v1/chat/completions", json={
            "model": "trio", "messages": QUESTION, "tools": [WEATHER, {"type": "function", "function": {"name": "get_time"}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})

    assert response.status_code == 502
    assert "solo: the answer does not call get_weather, which tool_choice asked for" in response.json()["error"]["message"]


TWO_CALLS = [{"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
             for i in (1, 2)]


@pytest.mark.parametrize(("calls", "settings_sent", "why"), [
    (TWO_CALLS[:1], {"tool_choice": "none"}, "solo: the answer calls a tool, which tool_choice none forbids"),
    (TWO_CALLS, {"parallel_tool_calls": False}, "solo: the answer makes 2 tool calls, but parallel_tool_calls is false"),
])
def test_a_call_where_the_request_forbids_it_fails_the_member(http, trio_settings, calls, settings_sent, why):
    body = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": calls},
                         "finish_reason": "tool_calls"}]}
    with backend_answering(body) as server:
        trio_settings.TRIO_BACKEND_URL = server.url
        trio_settings.TRIO_MODELS = ["solo"]

        response = http.post("/v1/chat/completions", json={
            "model": "trio", "messages": QUESTION, "tools": [WEATHER], **settings_sent})

    assert response.status_code == 502 and why in response.json()["error"]["message"]


def test_one_call_under_parallel_tool_calls_false_is_an_answer(sdk, backend):
    choice = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER],
                                         parallel_tool_calls=False).choices[0]

    assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
    assert all(call.body["parallel_tool_calls"] is False for call in generations(backend))


def test_every_member_answering_text_under_tool_choice_required_is_a_502(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@ignore_tools", "beta@ignore_tools"]

    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER], tool_choice="required")

    assert caught.value.status_code == 502
    assert caught.value.body["message"].count("calls no tool, which tool_choice asked for") == 2


def test_a_named_tool_choice_is_forwarded_and_that_tool_is_called(sdk, backend):
    clock = {"type": "function", "function": {"name": "get_time"}}
    choice = {"type": "function", "function": {"name": "get_time"}}

    answer = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER, clock],
                                         tool_choice=choice).choices[0]

    assert answer.message.tool_calls[0].function.name == "get_time"
    assert all(call.body["tool_choice"] == choice for call in generations(backend))


def test_a_tool_call_is_not_failed_for_not_being_the_json_asked_for(sdk):
    choice = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER],
                                         response_format={"type": "json_object"}).choices[0]

    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls[0].function.name == "get_weather"
    assert CompletionRequest.objects.get().status == "ok"


def test_tool_choice_and_parallel_tool_calls_without_tools_are_not_forwarded(sdk, backend):
    sdk.chat.completions.create(model="trio", messages=QUESTION, tool_choice="auto", parallel_tool_calls=True)

    assert not any({"tools", "tool_choice", "parallel_tool_calls"} & set(call.body) for call in backend.calls)


def test_a_pass_through_model_forwards_tools_and_relays_the_answer_unchanged(sdk, http, backend):
    response = http.post("/v1/chat/completions", json={
        "model": "solo@quality=0.7", "messages": QUESTION, "tools": [WEATHER], "tool_choice": "required",
        "parallel_tool_calls": False})

    assert response.status_code == 200
    [call] = backend.calls
    assert (call.body["tools"], call.body["tool_choice"], call.body["parallel_tool_calls"]) == (
        [WEATHER], "required", False)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None and set(choice["message"]) == {"role", "content", "tool_calls"}
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"])["city"].startswith("[solo quality=0.70]")

    with sdk.chat.completions.stream(model="solo@quality=0.7", messages=QUESTION, tools=[WEATHER]) as stream:
        streamed = stream.get_final_completion().choices[0].message.tool_calls
    [relayed] = choice["message"]["tool_calls"]
    assert [(c.id, c.function.name, c.function.arguments) for c in streamed] == [
        (relayed["id"], relayed["function"]["name"], relayed["function"]["arguments"])]


@pytest.mark.parametrize("extra, param", [
    ({"tools": []}, "tools"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": [WEATHER] * 129}, "tools"),
    ({"tools": ["get_weather"]}, "tools[0]"),
    ({"tools": [WEATHER, {"type": "code", "function": {"name": "run"}}]}, "tools[1].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": "get weather"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "object"}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": 7}}]}, "tools[0].function.description"),
    ({"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]}, "tools[0].function.strict"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": "a\x00b"}}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": DEEP}}]}, "tools[0].function"),
    ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "code"}}, "tool_choice.type"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function"}}, "tool_choice.function"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": ""}}}, "tool_choice.function.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
     "tool_choice.function.name"),
    ({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice.function.name"),
    ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
])
def test_malformed_tools_are_a_400_naming_the_field(http, backend, extra, param):
    response = http.post("/v1/chat/completions", json={"model": "trio", "messages": QUESTION, **extra})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert not backend.calls and not CompletionRequest.objects.exists()


def test_only_the_known_keys_of_a_tool_are_forwarded_and_stored(sdk, backend):
    tool = {"type": "function", "extra": 1, "function": {**WEATHER["function"], "strict": None, "unknown": "x"}}

    sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[tool])

    assert generations(backend)[0].body["tools"] == [WEATHER]
    assert CompletionRequest.objects.get().params["tools"] == [WEATHER]


def test_without_content_storage_no_tool_call_is_stored(sdk, trio_settings):
    trio_settings.TRIO_STORE_CONTENT = False

    choice = sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[WEATHER]).choices[0]

    assert choice.message.tool_calls  # answered as usual
    assert list(Candidate.objects.values_list("tool_calls", flat=True)) == [[], [], []]


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True))
    return client


def test_the_vote_page_shows_a_candidates_tool_call_escaped(sdk, staff, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@quality=0.6,ignore_tools"]
    tool = {"type": "function", "function": {"name": "render", "parameters": {
        "type": "object", "properties": {"html": {"const": "<b>bold</b>"}}}}}

    sdk.chat.completions.create(model="trio", messages=QUESTION, tools=[tool])

    html = staff.get(f"/votes/{CompletionRequest.objects.get().pk}/").content.decode()
    assert "Calls the tool render with arguments {&quot;html&quot;: &quot;&lt;b&gt;bold&lt;/b&gt;&quot;}" in html
    assert "<b>bold</b>" not in html
    assert "[beta quality=0.60] This is a fake answer" in html  # the text answer beside it
