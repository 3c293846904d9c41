"""gunicorn's settings for Trio: `gunicorn -c python:trio_site.gunicorn_conf`, as `make run` and
docker/entrypoint.sh start it (their command lines keep the address, worker class and workers).

It reads Trio's settings module (the environment only, no Django set-up), so a variable Trio
cannot use also stops the gunicorn master at once, with its message.
"""
import math
import socket
import sys

from trio_site import settings

# Besides the request deadline, the longest a finished completion may still wait before its
# answer goes out: the write it waits for. On SQLite that is the lock wait (TRIO_SQLITE_TIMEOUT).
_WRITE_WAIT = settings.DATABASES["default"].get("OPTIONS", {}).get("timeout", 0)
_MARGIN = 10  # admission queueing, the last bytes of a stream, the lifespan shutdown

# On SIGTERM, SIGINT or SIGHUP gunicorn stops accepting and gives each worker this long to finish
# what it has in flight, then kills it: a completion cut off there gets no answer and leaves no
# row. gunicorn's default, 30 s, is shorter than a completion may take (TRIO_DEADLINE, 120 s by
# default). Whatever stops the container must wait as long (compose: stop_grace_period).
graceful_timeout = math.ceil(settings.TRIO_DEADLINE + _WRITE_WAIT + _MARGIN)

if settings.TRIO_LOG_JSON:
    # gunicorn's own lines, and uvicorn's (the worker reuses gunicorn's handlers), as one JSON
    # object each too: a worker killed or timed out is the line a log pipeline must not drop.
    # gunicorn merges this into its logging defaults, whose loggers also propagate to the root
    # logger (each line would be written twice) and turn on the access log, which is off by
    # default: the completion's own line is the one per request.
    logconfig_dict = {
        "formatters": {"generic": {"()": "ensemble.logs.JsonFormatter"}},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }


def on_starting(server) -> None:
    """Refuse to start where something already listens, also with one socket per worker.

    With --reuse-port (more than one worker) each worker binds its own socket, and so could
    another Trio's: a second `make run` on the same port started quietly and took half of the
    connections, to its own database. Without it, gunicorn's bind already fails loudly.
    """
    if not server.cfg.reuse_port:
        return
    for address in server.cfg.address:
        if not isinstance(address, tuple):  # a unix socket path
            continue
        host, port = address[:2]
        try:
            socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
        except OSError as exc:
            sys.exit(f"Cannot serve on {host}:{port}, is another server listening there? {exc}")
