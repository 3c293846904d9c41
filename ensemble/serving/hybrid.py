"""A base for middleware that runs natively in both Django's sync and async request paths."""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class HybridMiddleware:
    """Call `process(request, response)` around the view, without Django's thread hop.

    Django's MiddlewareMixin runs sync-style hooks in a worker thread under ASGI; a subclass of
    this one runs in the event loop (async) or inline (sync) and overrides `process`, and
    optionally `enter(request)` / `leave(request, state)` for work that must wrap the call, or
    `refuse(request)` to answer a request itself before the view.
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
        if (refusal := self.refuse(request)) is not None:
            return refusal
        state = self.enter(request)
        try:
            return self.process(request, self.get_response(request))
        finally:
            self.leave(request, state)

    async def _acall(self, request):
        if (refusal := self.refuse(request)) is not None:
            return refusal
        state = self.enter(request)
        try:
            return self.process(request, await self.get_response(request))
        finally:
            self.leave(request, state)

    def refuse(self, request):
        """Return the response that answers `request` instead of the view, or None to go on."""
        return None

    def enter(self, request):
        return None

    def leave(self, request, state) -> None:
        pass

    def process(self, request, response):
        return response
