"""The only code that talks HTTP to the model backend: the aiohttp client, its per-event-loop pool, and
its error tree (`errors.py`). It imports only `ensemble.formats` (and Django's settings, late): no voting, no ORM.
"""
from .client import (DEFAULT_MAX_ANSWER_BYTES, MAX_MODEL_LIST_BYTES, BackendClient, ChatResult, client_for_running_loop,
                     clients_close_for_running_loop, normalize_base_url)
from .errors import (BackendBadResponse, BackendError, BackendHTTPError, BackendTimeout, BackendTooLarge,
                     BackendUnavailable)

__all__ = [
    "BackendBadResponse", "BackendClient", "BackendError", "BackendHTTPError", "BackendTimeout", "BackendTooLarge",
    "BackendUnavailable", "ChatResult", "DEFAULT_MAX_ANSWER_BYTES", "MAX_MODEL_LIST_BYTES", "client_for_running_loop",
    "clients_close_for_running_loop", "normalize_base_url",
]
