"""/metrics labels a backend model by name only when an operator configured it; the rest are `other`.

The fake backend answers any model name, as a LiteLLM wildcard route does: that a name was
answered says nothing about whether the label set stays bounded.
"""
import uuid

from ensemble.models import EnsembleDefinition, EnsembleMember

QUESTION = [{"role": "user", "content": "Name a prime number."}]


def ask(http, model):
    response = http.post("/v1/chat/completions", json={"model": model, "messages": QUESTION})
    assert response.status_code == 200, response.text
    return response


def dsl(*models, **options):
    return {"ensemble": [{"model": m} for m in models], **options}


def series(http) -> set[str]:
    """Return the name and labels of every sample /metrics exposes."""
    lines = http.get("/metrics").text.splitlines()
    return {line.rsplit(" ", 1)[0] for line in lines if line and not line.startswith("#")}


def test_thirty_requests_with_made_up_model_names_add_no_series_for_those_names(http):
    tag = uuid.uuid4().hex[:8]
    ask(http, dsl(f"warm-{tag}-a", f"warm-{tag}-b", f"warm-{tag}-c"))  # the `other` series exist now
    before = series(http)

    for i in range(30):
        ask(http, dsl(*(f"made-up-{tag}-{i}-{j}" for j in range(3))))

    after = series(http)
    assert not [s for s in after if tag in s]
    assert 'trio_backend_call_seconds_count{model="other",round="generation",status="ok"}' in after
    assert 'trio_ballots_total{status="ok",voter_model="other"}' in after
    assert 'trio_wins_total{ensemble="request",model="other"}' in after
    # A label per name added about 2900 series here; what may be left is a status first seen now.
    assert len(after - before) <= 30, sorted(after - before)


def test_a_pass_through_model_nobody_configured_is_labelled_other_answered_or_not(http):
    tag = uuid.uuid4().hex[:8]
    ask(http, f"fresh-{tag}")
    refused = http.post("/v1/chat/completions", json={"model": f"refused-{tag}@status=404", "messages": QUESTION})
    assert refused.status_code == 404

    text = http.get("/metrics").text
    assert tag not in text
    assert 'trio_backend_call_seconds_count{model="other",round="generation",status="ok"}' in text
    assert 'trio_backend_call_seconds_count{model="other",round="generation",status="error"}' in text


def test_configured_models_keep_their_labels_in_a_request_defined_ensemble(http):
    duo = EnsembleDefinition.objects.create(name="duo", judge_model="judge@quality=0.8")
    EnsembleMember.objects.create(ensemble=duo, position=0, model="delta@quality=0.7")
    assert http.get("/v1/models").status_code == 200  # this worker has loaded the named ensembles

    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    ask(http, dsl("alpha@quality=0.9", "delta@quality=0.7", stranger,
                  aggregation_method="judge", judge_model="judge@quality=0.8"))

    text = http.get("/metrics").text
    assert 'trio_backend_call_seconds_count{model="alpha@quality=0.9",round="generation",status="ok"}' in text  # TRIO_MODELS
    assert 'trio_backend_call_seconds_count{model="delta@quality=0.7",round="generation",status="ok"}' in text  # duo's member
    assert 'model="judge@quality=0.8"' in text  # duo's judge
    assert stranger not in text


def test_a_named_ensembles_models_are_labelled_by_name(http):
    duo = EnsembleDefinition.objects.create(name="duo")
    for position, model in enumerate(["omega@quality=0.9", "sigma@quality=0.5"]):
        EnsembleMember.objects.create(ensemble=duo, position=position, model=model)

    ask(http, "duo")

    text = http.get("/metrics").text
    assert 'trio_backend_call_seconds_count{model="sigma@quality=0.5",round="voting",status="ok"}' in text
    assert 'trio_wins_total{ensemble="duo",model="omega@quality=0.9"}' in text
