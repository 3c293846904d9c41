"""The fake OpenAI-compatible backend (being split into modules; see http.py)."""

from .http import RETRY_AFTER_SECONDS, Behaviour, Call, FakeBackend, parse_behaviour, parse_model_option

__all__ = ["RETRY_AFTER_SECONDS", "Behaviour", "Call", "FakeBackend", "parse_behaviour", "parse_model_option"]
