"""A base for middleware that runs natively in both Django's sync and async request paths."""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class HybridMiddleware:
    """Call `process(request, response)` around the view, without Django's thread hop.

    Django's MiddlewareMixin runs sync-style hooks in a worker thread under ASGI; a subclass of
    this one runs in the event loop (async) or inline (sync) and overrides `process`, and
    optionally `enter(request)` / `leave(request, state)` for work that must wrap the call.
    """

    async_capable = True
    sync_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        state = self.enter(request)
        try:
            return self.process(request, self.get_response(request))
        finally:
            self.leave(request, state)

    async def _acall(self, request):
        state = self.enter(request)
        try:
            return self.process(request, await self.get_response(request))
        finally:
            self.leave(request, state)

    def enter(self, request):
        return None

    def leave(self, request, state) -> None:
        pass

    def process(self, request, response):
        return response
