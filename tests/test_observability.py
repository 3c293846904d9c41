"""Request ids, the per-completion log line, JSON logs, Prometheus metrics and content-free storage."""
import gc
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess

from ensemble.logs import JsonFormatter, RequestIdFilter, request_id_var
from ensemble.models import Ballot, Candidate, CompletionRequest

ROOT = Path(__file__).resolve().parent.parent
BODY = {"model": "trio", "messages": [{"role": "system", "content": "secret system"},
                                      {"role": "user", "content": "secret question"}]}


def test_a_sane_request_id_is_echoed_and_a_missing_one_generated(http):
    assert http.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = http.get("/health").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "abc-123"
    hostile = http.get("/health", headers={"X-Request-ID": "x" * 300}).headers["X-Request-ID"]
    assert hostile != "x" * 300


def test_an_api_error_response_is_logged_once_with_its_request_id(http, caplog, monkeypatch):
    async def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr("ensemble.api.views.ensembles_all", broken)  # any unhandled error in a view
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert http.get("/v1/models", headers={"X-Request-ID": "req-500"}).status_code == 500
        assert http.get("/v1/nowhere", headers={"X-Request-ID": "req-404"}).status_code == 404

    logged = [(r.getMessage().split(":")[0], r.request_id) for r in caplog.records if r.name == "django.request"]
    assert logged == [("Internal Server Error", "req-500"), ("Not Found", "req-404")]


def test_one_log_line_per_completion_names_the_request_winner_and_members(http, caplog):
    with caplog.at_level(logging.INFO, logger="ensemble.completions"):
        response = http.post("/v1/chat/completions", json=BODY, headers={"X-Request-ID": "req-42"})

    lines = [r for r in caplog.records if r.name == "ensemble.completions"]
    assert len(lines) == 1
    record = lines[0]
    assert response.json()["id"] in record.getMessage()
    assert record.winner == "alpha@quality=0.9" and record.status == "ok"
    assert [m["status"] for m in record.members] == ["ok", "ok", "ok"]
    assert response.headers["X-Request-ID"] == "req-42"


def test_json_logs_carry_the_request_id_and_the_extras():
    record = logging.makeLogRecord({"name": "ensemble.completions", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "completion %s", "args": ("trio-1",), "winner": "alpha"})
    token = request_id_var.set("rid-7")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id_var.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "completion trio-1" and line["request_id"] == "rid-7" and line["winner"] == "alpha"


def test_metrics_count_completions_calls_and_votes(http):
    http.post("/v1/chat/completions", json=BODY)
    text = http.get("/metrics").text
    assert 'trio_completions_total{ensemble="trio",status="ok"}' in text
    assert 'trio_backend_call_seconds_count{model="alpha@quality=0.9",round="generation",status="ok"}' in text
    assert 'trio_ballots_total{status="ok",voter_model="beta@quality=0.6"}' in text
    assert 'trio_wins_total{ensemble="trio",model="alpha@quality=0.9"}' in text


def test_without_content_storage_the_votes_are_kept_but_no_text(http, trio_settings):
    trio_settings.TRIO_STORE_CONTENT = False

    response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    request = CompletionRequest.objects.get()
    assert request.messages == [{"role": "system"}, {"role": "user"}] and request.prompt_excerpt == ""
    assert request.winner_model == "alpha@quality=0.9" and request.voter_count == 3
    assert set(Candidate.objects.values_list("content", flat=True)) == {""}
    assert set(Ballot.objects.values_list("raw_text", flat=True)) == {""}
    stored = json.dumps(list(CompletionRequest.objects.values()), default=str) + json.dumps(list(Candidate.objects.values()), default=str)
    assert "secret" not in stored


def test_metrics_time_the_garbage_collectors_pauses_by_generation(http):
    gc.collect()  # a full collection in this process, where the test server runs
    text = http.get("/metrics").text
    counts = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("trio_gc_pause_seconds_count")}
    assert counts['trio_gc_pause_seconds_count{generation="2"}'] >= 1
    assert 'trio_gc_pause_seconds_count{generation="0"}' not in counts


def admission_waits(http) -> float:
    lines = http.get("/metrics").text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith("trio_admission_wait_seconds_count"))


def test_metrics_count_the_waits_at_the_admission_gate(http, trio_settings):
    before = admission_waits(http)
    http.post("/v1/chat/completions", json=BODY)
    http.post("/v1/chat/completions", json=BODY)
    assert admission_waits(http) == before + 2

    trio_settings.TRIO_ADMISSION_SLOTS = 0  # no gate, nothing to wait for
    http.post("/v1/chat/completions", json=BODY)
    assert admission_waits(http) == before + 2


def test_a_management_command_does_not_add_its_collector_pauses_to_the_servers(tmp_path):
    """`make run` runs migrate and rollup_votes with the server's PROMETHEUS_MULTIPROC_DIR."""
    script = ("import django, gc; django.setup(); from django.core.management import call_command; "
              "call_command('check'); gc.collect(); gc.collect()")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=60)

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    assert registry.get_sample_value("trio_gc_pause_seconds_count", {"generation": "2"}) in (None, 0)
