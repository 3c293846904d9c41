"""TRIO_MAX_FANOUT_BYTES: the body times the backend calls its ensemble can make is bounded.

Every backend call carries its own copy of the conversation, so a body within TRIO_MAX_BODY_BYTES
sent to a large request-defined ensemble could hold half a gigabyte in a worker; it is refused with
a 413 before any call is made and before anything is stored.
"""
import orjson
import pytest
from django.conf import settings

from ensemble.catalog.spec import Ensemble, ensemble_calls_max, ensemble_default, ensemble_passthrough
from ensemble.models import CompletionRequest

from .test_bad_input import GOOD, assert_openai_error
from .test_dsl import members


def deepest_allowed() -> dict:
    """Return the DSL ensemble with the most calls the member limits allow: three levels of 9
    members (27 in all), each level 8 models and the next level, the last 9 models."""
    spec = {"ensemble": members(*(f"c{i}" for i in range(9)))}
    for level in ("b", "a"):
        spec = {"ensemble": [{"model": spec}, *members(*(f"{level}{i}" for i in range(8)))]}
    return spec


def body(model, size: int = 1000) -> bytes:
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": "a" * size}]})


def post(http, raw: bytes):
    return http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})


def test_it_counts_generations_at_every_level_and_what_aggregation_adds():
    pair, trio = ("a", "b"), ("a", "b", "c")
    inner = Ensemble("ensemble(a,b)", pair)
    assert ensemble_calls_max(Ensemble("trio", trio)) == 3 + 3  # a ballot per member
    assert ensemble_calls_max(Ensemble("j", trio, aggregation="judge", judge_model="j")) == 3 + 1
    assert ensemble_calls_max(Ensemble("s", trio, aggregation="synthesize", synthesize_model="s")) == 3 + 1
    assert ensemble_calls_max(Ensemble("c", trio, aggregation="concat")) == 3
    assert ensemble_calls_max(Ensemble("r", ("a", inner.name), aggregation="random", inner=(None, inner))) == 4
    assert ensemble_calls_max(Ensemble("n", ("a", inner.name), inner=(None, inner))) == 1 + 4 + 2
    assert ensemble_calls_max(Ensemble("one", ("a",))) == 1  # nobody votes on a single answer
    assert ensemble_calls_max(ensemble_passthrough("gpt-4o")) == 1


def test_the_default_budget_lets_any_named_ensemble_take_a_full_body():
    nine = Ensemble("nine", tuple(f"m{i}" for i in range(9)))  # the most members a named ensemble has
    assert ensemble_calls_max(nine) * settings.DATA_UPLOAD_MAX_MEMORY_SIZE <= settings.TRIO_MAX_FANOUT_BYTES
    assert ensemble_calls_max(ensemble_default()) == 6


def test_the_review_s_request_is_413_before_any_call_and_nothing_is_stored(http, backend):
    """A 9 MB body (under the 10 MiB body limit) to the 27-member ensemble: 52 calls, 468 MB."""
    raw = body(deepest_allowed(), 9_000_000)
    error = assert_openai_error(post(http, raw), 413, param="messages", code="request_too_large")
    assert error["type"] == "invalid_request_error"
    assert f"{len(raw)}-byte request would be sent to 52 backend calls ({len(raw) * 52} bytes" in error["message"]
    assert "fewer members" in error["message"] and "shorter conversation" in error["message"]
    assert not backend.calls and not CompletionRequest.objects.exists()


def test_a_request_at_the_budget_is_answered_and_one_byte_over_is_413(http, backend, trio_settings):
    model = {"ensemble": [{"model": {"ensemble": members("alpha", "beta")}}, *members("gamma")]}
    raw = body(model)
    calls = (2 + 2) + 1 + 2  # inner generations and ballots, gamma, the outer ballots
    trio_settings.TRIO_MAX_FANOUT_BYTES = len(raw) * calls
    assert post(http, raw).status_code == 200
    assert len(backend.calls) == calls  # the count is what the service really does

    backend.reset()
    trio_settings.TRIO_MAX_FANOUT_BYTES = len(raw) * calls - 1
    error = assert_openai_error(post(http, raw), 413, param="messages", code="request_too_large")
    assert f"at most {len(raw) - 1} bytes with this one" in error["message"]
    assert not backend.calls and CompletionRequest.objects.count() == 2  # the first request and its nested one


@pytest.mark.parametrize("model", ["trio", "solo"], ids=["named", "passthrough"])
def test_named_ensembles_and_passthrough_models_are_held_to_it_too(http, backend, trio_settings, model):
    raw = orjson.dumps({**GOOD, "model": model})
    trio_settings.TRIO_MAX_FANOUT_BYTES = len(raw) * (6 if model == "trio" else 1) - 1
    assert_openai_error(post(http, raw), 413, param="messages", code="request_too_large")
    assert not backend.calls and not CompletionRequest.objects.exists()
