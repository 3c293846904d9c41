"""How a completion fails, end to end: stragglers, retries, deadline, client hang-up, lost database."""
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from django.db import connection

from ensemble.models import Ballot, Candidate, CompletionRequest
from tests.conftest import BACKEND_API_KEY, backend_answering, wait_for
from tests.test_health import ROOT, trio_subprocess

BODY = {"model": "trio", "messages": [{"role": "user", "content": "Is water wet?"}]}


def test_a_straggler_is_left_behind_once_the_quorum_answered(http, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@latency=0.1,quality=0.9", "beta@latency=0.1", "gamma@latency=5"]
    trio_settings.TRIO_STRAGGLER_GRACE = (0.0, 0.5)

    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=BODY)
    elapsed = time.monotonic() - started

    assert response.status_code == 200 and elapsed < 2.0
    statuses = response.json()["trio"]["candidates"]
    assert [c["status"] for c in statuses] == ["ok", "ok", "late"]
    late = Candidate.objects.get(index=2)
    assert late.status == "late" and "grace" in late.error
    assert CompletionRequest.objects.get().status == "partial"
    assert Ballot.objects.count() == 2


def test_absurd_token_counts_from_the_backend_still_get_an_answer_and_are_stored(http, trio_settings):
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 2**63 + 5, "completion_tokens": 1, "total_tokens": 2**63 + 6}}
    with backend_answering(answer) as server:
        trio_settings.TRIO_BACKEND_URL, trio_settings.TRIO_MODELS = server.url, ["alpha", "beta", "gamma"]
        response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 200, response.text  # was a 500: their sum exceeds what JSON encoding takes
    assert response.json()["choices"][0]["message"]["content"] == "hi"
    assert wait_for(lambda: CompletionRequest.objects.filter(status="ok").exists())


def test_a_503_is_retried_once_and_then_answers(http, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@fail_first=1,status=503,quality=0.9", "beta"]
    trio_settings.TRIO_RETRY_BACKOFF = 0.05

    response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 200
    assert [c["status"] for c in response.json()["trio"]["candidates"]] == ["ok", "ok"]
    alpha_generations = [c for c in backend.calls if c.model.startswith("alpha") and not c.is_ballot]
    assert len(alpha_generations) == 2


def test_a_500_is_not_retried(http, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@fail_first=1,status=500", "beta"]

    response = http.post("/v1/chat/completions", json=BODY)

    assert [c["status"] for c in response.json()["trio"]["candidates"]] == ["error", "ok"]
    assert len([c for c in backend.calls if c.model.startswith("alpha")]) == 1


def test_a_refused_connection_is_retried_after_the_backoff(http, trio_settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        trio_settings.TRIO_BACKEND_URL = f"http://127.0.0.1:{sock.getsockname()[1]}"
    trio_settings.TRIO_RETRY_BACKOFF = 0.4

    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 502
    assert time.monotonic() - started >= 0.4  # one backoff, then the second refusal
    assert all(c.status == "error" for c in Candidate.objects.all())


def test_a_failure_the_http_client_does_not_class_as_its_own_is_still_a_member_failure(http, trio_settings):
    # aiohttp refuses a header value with a newline by raising ValueError, not a ClientError;
    # settings strip and refuse such keys, so this stands for any unexpected transport error.
    trio_settings.TRIO_BACKEND_API_KEY = "sk-test\nX-Injected: 1"

    response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 502 and response.json()["error"]["code"] == "backend_error"
    assert "ValueError" in response.json()["error"]["message"]
    assert CompletionRequest.objects.get().status == "failed"  # stored, like any other failure
    assert {c.status for c in Candidate.objects.all()} == {"error"}


def test_the_request_deadline_bounds_the_voting_round(http, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@latency=0.3,quality=0.9", "beta@latency=0.3"]
    trio_settings.TRIO_DEADLINE = 0.6

    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 200 and time.monotonic() - started < 1.5
    assert {b.status for b in Ballot.objects.all()} <= {"timeout", "late"}
    # No ballot counted: the tie-break (ensemble order) decides.
    assert response.json()["trio"]["winner_index"] == 0


def test_a_client_hanging_up_cancels_the_calls_and_is_recorded(trio, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@latency=3", "beta@latency=3"]

    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{trio}/v1/chat/completions", json=BODY, timeout=0.3)

    assert wait_for(lambda: CompletionRequest.objects.filter(status="cancelled").exists(), timeout=5)
    request = CompletionRequest.objects.get()
    assert request.latency_ms < 2500  # recorded at the hang-up, not after the 3 s calls
    assert set(request.candidates.values_list("status", flat=True)) == {"cancelled"}
    # The calls ran until the hang-up (at least the client's 0.3 s), which the vote page shows.
    assert request.generation_ms >= 250
    assert all(250 <= c.latency_ms <= request.latency_ms for c in request.candidates.all())


def test_when_the_database_write_fails_the_client_still_gets_its_answer_and_the_write_is_retried(
    http, trio_settings, caplog
):
    table = CompletionRequest._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    restored = threading.Event()

    def restore_soon():
        time.sleep(0.3)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
        connection.close()
        restored.set()

    try:
        response = http.post("/v1/chat/completions", json=BODY)
    finally:
        threading.Thread(target=restore_soon).start()

    assert response.status_code == 200
    request_id = response.json()["id"]
    assert any(request_id in record.getMessage() and "retrying" in record.getMessage() for record in caplog.records)
    assert restored.wait(5)
    assert wait_for(lambda: CompletionRequest.objects.filter(id=request_id.removeprefix("trio-")).exists())
    assert Candidate.objects.filter(request_id=request_id.removeprefix("trio-")).count() == 3


# --- PostgreSQL restarting under a running Trio --------------------------------------------------

POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432"  # the test server of this kind of machine and CI


@pytest.fixture
def postgres_database():
    """Return the URL of a fresh, migrated PostgreSQL database of this test's own; skip without a server."""
    psycopg = pytest.importorskip("psycopg")
    name = f"trio_restart_{os.getpid()}"
    try:
        admin = psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip(f"no PostgreSQL server at {POSTGRES_SERVER}")
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{POSTGRES_SERVER}/{name}"
        try:
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True, timeout=120,
                           env={**os.environ, "DATABASE_URL": url})
            yield url
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_connections_that_postgresql_dropped_are_replaced_before_a_request_gets_one(postgres_database, backend):
    """As after a restart or a failover: every pooled connection is dead, and no probe or client may notice."""
    import psycopg

    env = {**os.environ, "DATABASE_URL": postgres_database, "TRIO_BACKEND_URL": backend.url,
           "TRIO_BACKEND_API_KEY": BACKEND_API_KEY, "TRIO_MODELS": "alpha,beta"}
    with trio_subprocess(env) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/v1/chat/completions", json=BODY).status_code == 200  # the pool holds connections now
        with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
            database = postgres_database.rsplit("/", 1)[1]
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [database])
            assert wait_for(lambda: not admin.execute(  # gone, not merely asked to go
                "SELECT 1 FROM pg_stat_activity WHERE datname = %s", [database]).fetchone())
        # Readiness reads the database on every probe (requests read it once per cache period).
        assert [client.get("/health/ready").status_code for _ in range(3)] == [200] * 3
        assert client.post("/v1/chat/completions", json=BODY).status_code == 200
