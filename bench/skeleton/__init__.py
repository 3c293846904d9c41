"""The least a completion can cost on Trio's stack: two rounds of backend calls, nothing else.

`bench/stack_floor.py` serves these apps under the same gunicorn + uvicorn worker as Trio and fires
bench 1's load at them. They call the backend exactly as a three-model completion does (three
generation calls at once through Trio's own `BackendClient`, then three calls carrying every
answer), and answer with a chat.completion, but validate nothing, vote on nothing and store
nothing:

- `asgi.application`: Django's ASGI handler with no middleware, serving an adrf view with no
  authentication (the fixed stack, Django + adrf + uvicorn, at its leanest) and the same as a plain
  Django async view (under /plain/);
- `asgi.bare_application`: the same calls from a plain ASGI callable, without Django.

What they measure is a floor: no Trio code path can be cheaper than the stack it runs on.
"""
