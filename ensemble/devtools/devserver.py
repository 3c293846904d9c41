"""Run an ASGI app under a real uvicorn server in a background thread.

Tests and benchmarks use this for both the fake backend and the Trio app:
real sockets and real HTTP, but started and stopped from Python.  This
module deliberately does not import Django.

    with run_in_thread(app) as server:
        httpx.get(server.url + "/health")
"""

import asyncio
import socket
import threading
import time

import uvicorn

__all__ = ["RunningServer", "run_in_thread"]


class RunningServer:
    """A uvicorn server running in a daemon thread; stop() it when done."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        self.host = _connectable_host(host)
        self.port: int = port
        self.url: str = f"http://{self.host}:{port}"

    def call(self, coroutine_function, timeout: float = 10.0):
        """Run `coroutine_function()` on the server's event loop and return its result."""
        loop = self.server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(coroutine_function(), loop).result(timeout)

    def stop(self, grace: float = 2.0) -> None:
        """Shut the server down and join its thread; safe to call twice.

        Requests still running after `grace` seconds (e.g. a hanging fake
        model whose client never gives up) get their connections closed,
        so they end as client disconnects rather than cancelled tasks.
        """
        if not self.thread.is_alive():
            return
        self.server.should_exit = True
        self.thread.join(grace)
        if self.thread.is_alive():
            self._drop_connections()
            self.thread.join(grace)
        if self.thread.is_alive():
            self.server.force_exit = True  # last resort: uvicorn cancels what is left
            self.thread.join(grace)

    def _drop_connections(self) -> None:
        """Close every open connection, from inside the server's event loop."""
        def close_all() -> None:
            for connection in list(self.server.server_state.connections):
                connection.transport.close()

        try:
            self.server.servers[0].get_loop().call_soon_threadsafe(close_all)
        except RuntimeError:
            pass  # the loop has just closed: the thread is ending anyway

    def __enter__(self) -> "RunningServer":
        """Return self; the server is already running."""
        return self

    def __exit__(self, *exc_info) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url}>"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago on `host` (for a server started in another process)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _connectable_host(host: str) -> str:
    """Return a host a client can connect to, bracketed for IPv6 URLs."""
    if host == "0.0.0.0":
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def run_in_thread(app, *, host: str = "127.0.0.1", port: int = 0,
                  startup_timeout: float = 10.0, **uvicorn_options) -> RunningServer:
    """Start `app` under uvicorn in a daemon thread and return a RunningServer.

    ``port=0`` picks a free port; the real one is on the returned object.
    Extra keyword arguments go to ``uvicorn.Config`` (defaults here:
    ``lifespan="off"``, ``log_level="warning"``).  Raises RuntimeError if
    the server does not start within `startup_timeout` seconds.
    """
    uvicorn_options.setdefault("lifespan", "off")
    uvicorn_options.setdefault("log_level", "warning")
    config = uvicorn.Config(app, host=host, port=port, **uvicorn_options)
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        # uvicorn reports startup errors (e.g. port in use) with sys.exit,
        # which would otherwise vanish silently inside the thread.
        try:
            server.run()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            failure.append(exc)

    thread = threading.Thread(target=serve, name=f"uvicorn-{host}:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn failed to start on {host}:{port}: {failure!r}")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"uvicorn did not start on {host}:{port} "
                               f"within {startup_timeout} s")
        time.sleep(0.005)
    return RunningServer(server, thread)
