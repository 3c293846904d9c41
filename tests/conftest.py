"""Shared fixtures: a real fake backend and a real Trio server, both uvicorn on free loopback ports."""
from __future__ import annotations

import os
import time

import httpx
import orjson
import pytest
from pytest_django.fixtures import _set_suffix_to_test_databases

from ensemble.backend import clients_close_for_running_loop
from ensemble.devtools.devserver import run_in_thread
from ensemble.history.writer import writer_close
from ensemble.devtools.fakebackend import FakeBackend

BACKEND_API_KEY = "sk-test-master-key"


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Return True as soon as `predicate()` is true, False if it is not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def backend_answering(body: dict):
    """Return a running backend (a real local server) whose every answer is `body`: for the odd
    answers the fake backend has no behaviour for. Use it as a context manager."""
    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(body)})

    return run_in_thread(app)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each pytest process its own test database, so two runs in one checkout cannot collide."""
    _set_suffix_to_test_databases(suffix=f"pid{os.getpid()}")


@pytest.fixture(scope="session")
def fake_backend():
    """Return the session's fake OpenAI-compatible backend (its calls are cleared per test)."""
    app = FakeBackend(api_key=BACKEND_API_KEY)
    with run_in_thread(app) as server:
        app.url = server.url
        yield app


@pytest.fixture
def backend(fake_backend):
    fake_backend.reset()
    return fake_backend


@pytest.fixture
def trio_settings(settings, backend):
    """Point Trio at the fake backend with three well-behaved models; tests override TRIO_MODELS."""
    settings.TRIO_BACKEND_URL = backend.url
    settings.TRIO_BACKEND_API_KEY = BACKEND_API_KEY
    settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@quality=0.6", "gamma@quality=0.3"]
    settings.TRIO_TIMEOUT = 5.0
    settings.TRIO_SELF_VOTE = "include"
    # Generous, so that jitter never makes a test's model "late"; straggler tests set their own.
    settings.TRIO_STRAGGLER_GRACE = (5.0, 0.0)
    settings.TRIO_QUORUM = 0
    settings.TRIO_DEADLINE = 20.0
    from ensemble.catalog.registry import ensemble_cache

    ensemble_cache.clear()  # the test database is emptied without signals: forget the last test's ensembles
    from ensemble.catalog.prices import price_cache

    price_cache.clear()  # and its prices
    return settings


@pytest.fixture(scope="session")
def trio_server(django_db_setup, django_db_blocker):
    """Return a running Trio (the real ASGI application under uvicorn) on the test database."""
    from trio_site.asgi import application

    from django.db import connections

    with django_db_blocker.unblock():
        with run_in_thread(application, lifespan="on") as server:
            yield server
            # What the lifespan shutdown does, done here too: a stop that has to force-exit
            # (a test left a hanging request behind) skips the lifespan.
            server.call(clients_close_for_running_loop)
            server.call(writer_close)
        # The server's threads leave pooled PostgreSQL connections open; close them so the
        # test database can be dropped.
        for connection in connections.all():
            if hasattr(connection, "close_pool"):
                connection.close_pool()


@pytest.fixture
def trio(trio_server, trio_settings, transactional_db):
    """Return the URL of a Trio server whose requests are answered by the fake backend."""
    return trio_server.url


@pytest.fixture
def http(trio):
    with httpx.Client(base_url=trio, timeout=30) as client:
        yield client
