"""n > 1: the top-k candidates by rank as choices, index = rank - 1; fewer if there are fewer."""
import openai
import pytest

from ensemble.models import Candidate

QUESTION = [{"role": "user", "content": "Suggest a name for a cat."}]


@pytest.fixture
def client(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def test_n_returns_the_best_candidates_in_rank_order(client):
    completion = client.chat.completions.create(model="trio", messages=QUESTION, n=2)

    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].message.content.startswith("[alpha quality=0.90]")
    assert completion.choices[1].message.content.startswith("[beta quality=0.60]")
    details = completion.model_extra["trio"]
    assert (details["choices_requested"], details["choices_returned"]) == (2, 2)
    assert "choices_note" not in details
    alpha, beta = Candidate.objects.filter(rank__in=[1, 2]).order_by("rank")
    # Usage as one model answering n times reports it: the prompt once, every completion.
    assert completion.usage.prompt_tokens == alpha.prompt_tokens
    assert completion.usage.completion_tokens == alpha.completion_tokens + beta.completion_tokens


def test_asking_for_more_than_there_are_returns_all_and_says_so(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@status=500", "gamma@quality=0.3"]

    completion = client.chat.completions.create(model="trio", messages=QUESTION, n=5)

    assert [c.message.content[:6] for c in completion.choices] == ["[alpha", "[gamma"]  # the failed one is no answer
    details = completion.model_extra["trio"]
    assert (details["choices_requested"], details["choices_returned"]) == (5, 2)
    assert "n=5" in details["choices_note"]


def test_n_1_is_the_answer_exactly_as_without_n(client):
    with_n = client.chat.completions.create(model="trio", messages=QUESTION, n=1)
    without = client.chat.completions.create(model="trio", messages=QUESTION)

    assert len(with_n.choices) == len(without.choices) == 1
    assert with_n.choices[0].message.content == without.choices[0].message.content
    assert with_n.usage == without.usage
    assert "choices_requested" not in with_n.model_extra["trio"]


@pytest.mark.parametrize("method, extra", [("concat", {}), ("random", {})])
def test_methods_with_one_answer_return_one_choice(http, method, extra):
    model = {"ensemble": [{"model": "alpha"}, {"model": "beta"}], "aggregation_method": method, **extra}

    body = http.post("/v1/chat/completions", json={"model": model, "messages": QUESTION, "n": 3}).json()

    assert len(body["choices"]) == 1 and body["trio"]["choices_returned"] == 1


def test_synthesize_ranks_the_combined_answer_first(http):
    model = {"ensemble": [{"model": "alpha@quality=0.9"}, {"model": "beta"}], "aggregation_method": "synthesize",
             "synthesize_model": "writer"}

    body = http.post("/v1/chat/completions", json={"model": model, "messages": QUESTION, "n": 3}).json()

    assert [c["message"]["content"][:7] for c in body["choices"]] == ["[writer", "[alpha ", "[beta q"]
