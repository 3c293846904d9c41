"""`Lifespan`, the ASGI wrapper that drains the history writer and closes the backend clients when a
worker stops."""
from __future__ import annotations

from ..backend import clients_close_for_running_loop
from ..history.writer import writer_close, writer_drain


class Lifespan:
    """ASGI wrapper that speaks the lifespan protocol, which Django's handler does not.

    At shutdown it stores what the writer is still retrying (or logs it as lost), then closes the
    backend clients made on the worker's event loop and the writer thread's database connection.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await writer_drain()
                await clients_close_for_running_loop()
                await writer_close()
                await send({"type": "lifespan.shutdown.complete"})
                return
