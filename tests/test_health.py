"""/health (liveness) and /health/ready (database and model backend), against real servers.

The backend client is cached per event loop, so a test that points Trio at another backend URL
serves Trio from a fresh server (a new loop, hence a new client built from the changed settings).
A broken database cannot be arranged inside the test process (its connections are set up once),
so that case runs Trio as a subprocess with a DATABASE_URL that cannot be opened.
"""
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ensemble.devtools.devserver import run_in_thread
from ensemble.serving import probes

from .conftest import BACKEND_API_KEY

ROOT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    """Return a loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def silent_backend():
    """Yield the URL of a port that accepts connections and never answers them."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def fresh_trio(trio_settings, transactional_db, django_db_blocker):
    """Return a function that serves Trio from a new server, reading the settings as they are now."""
    from trio_site.asgi import application

    servers = []

    def start() -> str:
        with django_db_blocker.unblock():
            servers.append(run_in_thread(application, lifespan="on"))
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


def test_liveness_answers_without_looking_at_anything(http):
    response = http.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_it_is_ready_when_the_database_and_the_backend_answer(http, backend):
    response = http.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "backend": "ok"}}
    assert list(backend.calls) == []  # listing models costs no chat call


def test_it_names_the_backend_when_nothing_listens_on_its_port(fresh_trio, trio_settings):
    trio_settings.TRIO_BACKEND_URL = f"http://127.0.0.1:{closed_port()}"
    response = httpx.get(f"{fresh_trio()}/health/ready", timeout=30)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "backend": "error"}
    assert "connect" in body["errors"]["backend"].lower()
    assert "database" not in body["errors"]


def test_it_names_the_backend_when_it_answers_with_an_error(fresh_trio, trio_settings, backend):
    trio_settings.TRIO_BACKEND_URL = f"{backend.url}/no-such-prefix"  # /no-such-prefix/v1/models: 404
    response = httpx.get(f"{fresh_trio()}/health/ready", timeout=30)

    assert response.status_code == 503
    assert response.json()["errors"]["backend"].startswith("/models: HTTP 404")


def test_it_gives_up_on_a_backend_that_never_answers(fresh_trio, trio_settings, monkeypatch):
    monkeypatch.setattr(probes, "READY_TIMEOUT", 0.3)
    with silent_backend() as url:
        trio_settings.TRIO_BACKEND_URL = url
        started = time.monotonic()
        response = httpx.get(f"{fresh_trio()}/health/ready", timeout=30)

    assert time.monotonic() - started < 5
    assert response.status_code == 503
    assert response.json()["errors"] == {"backend": "/models: no answer within 0.3s"}


# --- the database check, with a database that really is unreachable ------------------------------

@contextmanager
def trio_subprocess(env: dict):
    """Serve Trio under uvicorn in a child process; yield its URL once /health answers."""
    port = closed_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "trio_site.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--lifespan", "off", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_live(process, url)
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def _wait_until_live(process: subprocess.Popen, url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"Trio did not start within {timeout} s"
        time.sleep(0.1)


def readiness_on(database_file: Path, backend) -> httpx.Response:
    """Return /health/ready of a Trio serving `database_file` (as it is) and the fake backend."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database_file}",
        "TRIO_BACKEND_URL": backend.url,
        "TRIO_BACKEND_API_KEY": BACKEND_API_KEY,
    }
    with trio_subprocess(env) as url:
        return httpx.get(f"{url}/health/ready", timeout=30)


def test_it_names_the_database_when_it_cannot_be_opened(backend, tmp_path):
    # A SQLite file in a directory that does not exist: every connection attempt fails.
    response = readiness_on(tmp_path / "missing" / "trio.sqlite3", backend)

    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "error", "backend": "ok"}
    assert body["errors"] == {"database": "OperationalError: unable to open database file"}


def test_a_completion_is_a_503_naming_the_database_when_it_cannot_be_opened(backend, tmp_path):
    """An outage, not a bug: OpenAI-shaped, and a status clients retry, rather than a bare 500."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'missing' / 'trio.sqlite3'}",
           "TRIO_BACKEND_URL": backend.url, "TRIO_BACKEND_API_KEY": BACKEND_API_KEY}
    with trio_subprocess(env) as url:
        response = httpx.post(f"{url}/v1/chat/completions", timeout=30,
                              json={"model": "trio", "messages": [{"role": "user", "content": "Hi"}]})

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "api_error"
    assert response.json()["error"]["code"] == "database_unavailable"
    assert "database" in response.json()["error"]["message"]


def test_a_completion_is_a_503_within_the_pool_timeout_while_postgresql_is_down(backend):
    # Nothing listens on the port, so the pool never gets a connection: each request waits
    # TRIO_DB_POOL_TIMEOUT (5 s by default) for one, not psycopg_pool's own 30 s.
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{closed_port()}/trio",
           "TRIO_BACKEND_URL": backend.url, "TRIO_BACKEND_API_KEY": BACKEND_API_KEY}
    env.pop("TRIO_DB_POOL_TIMEOUT", None)
    with trio_subprocess(env) as url:
        response = httpx.post(f"{url}/v1/chat/completions", timeout=15,  # a 30 s wait fails here
                              json={"model": "trio", "messages": [{"role": "user", "content": "Hi"}]})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"


def test_it_names_the_database_when_its_tables_were_never_created(backend, tmp_path):
    # The file opens and answers SELECT 1, but nobody ran `migrate`: every API request would fail.
    response = readiness_on(tmp_path / "empty.sqlite3", backend)

    assert response.status_code == 503
    error = response.json()["errors"]["database"]
    assert "not applied" in error and "manage.py migrate" in error


@pytest.mark.parametrize("path", ["/health", "/health/ready", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "TRACE", "DELETE"])
def test_probes_answer_only_get_and_head(http, path, method):
    response = http.request(method, path)

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert http.head(path).status_code == 200
