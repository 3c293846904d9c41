"""`response_format`: the members are asked for JSON, and the answer is JSON whenever a member gave it.

Through the real stack: the `openai` SDK and LangChain → Trio under uvicorn → the fake backend,
which answers JSON (an instance of the schema) unless a model is told to `ignore_format`.
"""
import json

import openai
import pydantic
import pytest

from ensemble.models import Candidate, CompletionRequest
from tests.conftest import backend_answering

QUESTION = [{"role": "user", "content": "Which city is the capital of France?"}]


class City(pydantic.BaseModel):
    name: str
    population_millions: float
    landmarks: list[str]


@pytest.fixture
def client(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def test_the_sdk_parses_the_voted_answer_into_its_model(client, backend):
    completion = client.chat.completions.parse(model="trio", messages=QUESTION, response_format=City)

    city = completion.choices[0].message.parsed
    assert isinstance(city, City)
    assert city.name.startswith("[alpha quality=0.90]")  # the voters still picked the best member
    generations = [call for call in backend.calls if not call.is_ballot]
    assert len(generations) == 3
    for call in generations:
        sent = call.body["response_format"]
        assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "City"
        assert sent["json_schema"]["strict"] is True
        assert set(sent["json_schema"]["schema"]["properties"]) == {"name", "population_millions", "landmarks"}
    ballots = [call for call in backend.calls if call.is_ballot]
    # Ballots are asked in their own format, never the client's.
    assert len(ballots) == 3 and all(call.body["response_format"]["json_schema"]["name"] == "ballot" for call in ballots)
    assert CompletionRequest.objects.get().params["response_format"]["json_schema"]["name"] == "City"


def test_langchain_with_structured_output_gets_its_model_back(trio):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="trio", base_url=f"{trio}/v1", api_key="x", max_retries=0)

    city = llm.with_structured_output(City, method="json_schema").invoke("Which city is the capital of France?")

    assert isinstance(city, City) and city.name.startswith("[alpha quality=0.90]")


def test_a_member_answering_prose_fails_and_a_json_one_wins(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,ignore_format", "beta@quality=0.6", "gamma@quality=0.8"]

    raw = client.chat.completions.with_raw_response.create(
        model="trio", messages=QUESTION, response_format={"type": "json_object"})

    answer = json.loads(raw.parse().choices[0].message.content)
    assert answer["answer"].startswith("[gamma quality=0.80]")  # alpha, the best, answered prose
    header = json.loads(raw.headers["X-Trio-Details"])
    assert header["winner_index"] == 2 and header["candidates"][0]["status"] == "error"
    prose = Candidate.objects.get(index=0)
    assert prose.status == "error" and "not a JSON object" in prose.error
    assert CompletionRequest.objects.get().status == "partial"


def test_every_member_answering_prose_is_a_502_saying_why(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@ignore_format", "beta@ignore_format"]

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="trio", messages=QUESTION, response_format={"type": "json_object"})

    assert caught.value.status_code == 502
    assert caught.value.body["message"].count("not a JSON object, which response_format asked for") == 2
    assert CompletionRequest.objects.get().status == "failed"


def test_a_nested_ensembles_answer_is_held_to_the_format_too(client):
    # A nested concat joins its members' JSON under Markdown headings: not one JSON object, so it
    # must not win over the sibling that answered JSON.
    nested = {"ensemble": [{"model": "alpha@quality=0.9"}, {"model": "gamma@quality=0.8"}],
              "aggregation_method": "concat"}
    model = {"ensemble": [{"model": "beta@quality=0.6"}, {"model": nested}]}

    completion = client.chat.completions.create(model=model, messages=QUESTION,
                                                response_format={"type": "json_object"})

    assert json.loads(completion.choices[0].message.content)["answer"].startswith("[beta quality=0.60]")
    outer = CompletionRequest.objects.get(parent=None)
    held = outer.candidates.get(index=1)
    assert held.status == "error" and "not a JSON object" in held.error


def test_json_cut_off_at_the_clients_token_limit_is_answered_as_it_is(client, backend):
    completion = client.chat.completions.create(
        model="trio", messages=QUESTION, response_format={"type": "json_object"}, max_tokens=3)

    # As OpenAI answers it: the unfinished JSON, with finish_reason length, rather than a 502.
    choice = completion.choices[0]
    assert choice.finish_reason == "length" and choice.message.content == '{"answer": "[alpha quality=0.90]'
    assert set(Candidate.objects.values_list("status", flat=True)) == {"ok"}


def test_json_in_a_code_fence_is_taken_out_of_it(client, trio_settings):
    fenced = '```json\n{"name": "Paris", "population_millions": 2.1, "landmarks": ["Louvre"]}\n```'
    body = {"choices": [{"message": {"role": "assistant", "content": fenced}, "finish_reason": "stop"}]}
    with backend_answering(body) as server:
        trio_settings.TRIO_BACKEND_URL = server.url
        trio_settings.TRIO_MODELS = ["solo"]

        completion = client.chat.completions.parse(model="trio", messages=QUESTION, response_format=City)

    assert completion.choices[0].message.parsed == City(name="Paris", population_millions=2.1, landmarks=["Louvre"])
    assert Candidate.objects.get().content.startswith('{"name": "Paris"')


def test_a_pass_through_model_is_relayed_as_the_backend_answered(client, backend):
    completion = client.chat.completions.create(
        model="alpha@ignore_format", messages=QUESTION, response_format={"type": "json_object"})

    assert completion.choices[0].message.content.startswith("[alpha quality=0.50] This is a fake answer")
    assert backend.calls[0].body["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("response_format, param", [
    ("json", "response_format"),
    ({"type": "xml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "a city"}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "City", "schema": "object"}},
     "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "City", "strict": "yes"}}, "response_format.json_schema.strict"),
    ({"type": "json_schema", "json_schema": {"name": "City", "schema": {"description": "a\x00b"}}},
     "response_format.json_schema"),
])
def test_a_malformed_response_format_is_a_400_naming_the_field(http, backend, response_format, param):
    response = http.post("/v1/chat/completions",
                         json={"model": "trio", "messages": QUESTION, "response_format": response_format})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert not backend.calls and not CompletionRequest.objects.exists()


def test_a_schema_nested_deeper_than_json_can_store_is_a_400(http, backend):
    schema: dict = {"type": "string"}
    for _ in range(200):
        schema = {"type": "object", "properties": {"x": schema}}
    response = http.post("/v1/chat/completions", json={
        "model": "trio", "messages": QUESTION,
        "response_format": {"type": "json_schema", "json_schema": {"name": "Deep", "schema": schema}}})

    assert response.status_code == 400
    assert "nested more than" in response.json()["error"]["message"]
    assert not backend.calls
