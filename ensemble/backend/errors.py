"""The backend client's errors. Every failed call raises one of them:

    BackendError                 any failed call; `.reason` is a short machine-readable word,
    │                            `.call_status` the status the call is stored with
    ├── BackendTimeout           no complete answer within the call's timeout       reason "timeout"
    ├── BackendUnavailable       connection refused / reset / DNS failure           reason "unavailable"
    ├── BackendHTTPError         a non-2xx status; `.status_code`                    reason "http_<status>"
    ├── BackendTooLarge          a 2xx answer longer than the client's              reason "too_large"
    │                            `max_answer_bytes` (TRIO_MAX_ANSWER_BYTES), or a model
    │                            list over MAX_MODEL_LIST_BYTES; reading stops there
    └── BackendBadResponse       2xx but not JSON, not a chat completion, or empty  reason "bad_response"
                                 (neither text nor well-formed tool calls)
"""
from __future__ import annotations


class BackendError(Exception):
    reason = "error"
    call_status = "error"  # a CallStatus / BallotStatus value
    retry_after = ""  # the backend's Retry-After header (HTTP errors only), relayed with a pass-through 429


class BackendTimeout(BackendError):
    reason = "timeout"
    call_status = "timeout"


class BackendTooLarge(BackendError):
    reason = "too_large"
    call_status = "too_large"


class BackendUnavailable(BackendError):
    reason = "unavailable"


class BackendHTTPError(BackendError):
    def __init__(self, status_code: int, message: str, *, retry_after: str = ""):
        super().__init__(message)
        self.status_code = status_code
        self.reason = f"http_{status_code}"
        self.retry_after = retry_after


class BackendBadResponse(BackendError):
    reason = "bad_response"
