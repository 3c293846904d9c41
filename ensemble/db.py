"""Database helpers for the async request path."""
from __future__ import annotations

import functools

from django.db import close_old_connections, connection


def releases_connection(function):
    """Decorate a sync function that reads the database from an async view: give the connection back.

    Under ASGI, a request's sync thread keeps the connection it opened until the request ends.
    An async view then awaits the model backend for seconds while holding it, so with
    PostgreSQL's pool (TRIO_DB_POOL_SIZE) the 9th concurrent request would wait for a connection.
    With CONN_MAX_AGE = 0, close_old_connections() returns it to the pool (or closes it) at once.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            # Never inside a transaction: that is the caller's (and in tests, the test case's).
            if not connection.in_atomic_block:
                close_old_connections()

    return wrapper
