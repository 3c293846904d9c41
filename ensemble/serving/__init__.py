"""How requests reach Django and how a worker stops: ASGI routing (`routing`: the API's lean handler),
the lifespan (`lifespan`), the body-size limit (`body_limit`), Trio's middleware (`middleware`, on
the `hybrid` base) and the probes (`probes`).

No domain logic: may import the API's error shapes, the backend client and the history writer (to
close them), and metrics; nothing imports it but settings, urls and asgi.
"""
