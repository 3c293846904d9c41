"""ASGI entry points of the skeleton: Django + adrf (`application`) and plain ASGI (`bare_application`)."""
import gc
import os

import orjson

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.skeleton.settings")

import django  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

django.setup(set_prefix=False)


class LeanHandler(ASGIHandler):
    """Django's ASGI handler without the per-request ThreadSensitiveContext, as Trio's APIHandler
    (ensemble/serving/routing.py): its thread start and join per request are not part of the floor."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # lifespan: uvicorn carries on without it
            raise ValueError(f"only HTTP, not {scope['type']}")
        await self.handle(scope, receive, send)


application = LeanHandler()

from .rounds import two_rounds  # noqa: E402  (reads settings)


async def bare_application(scope, receive, send):
    """Answer POST /v1/chat/completions and GET /health with no framework at all."""
    if scope["type"] != "http":
        return  # lifespan: uvicorn carries on without it
    if scope["path"] == "/health":
        return await _send_json(send, {"status": "ok"})
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    await _send_json(send, await two_rounds(orjson.loads(body)["messages"]))


async def _send_json(send, payload: dict) -> None:
    body = orjson.dumps(payload)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# As trio_site/asgi.py does: what is loaded now stays out of the garbage collector's walks.
gc.collect()
gc.freeze()
