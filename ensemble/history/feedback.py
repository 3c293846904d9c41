"""Human feedback on a stored request: find the request a client may rate, and record (or replace) the verdict.

Both the API (`POST /v1/feedback`) and the vote page's staff form write through `feedback_record`;
HTTP is theirs. One request has at most one feedback: giving it again replaces it.
"""
from __future__ import annotations

from django.db import transaction

from ..db import releases_connection
from ..models import CallStatus, CompletionRequest, Feedback, FeedbackSource
from .reads import parse_request_id


class PreferredIndexInvalid(ValueError):
    """`preferred_index` names no candidate of the request that answered; the message says why."""


def feedback_request(*, request_id: str, api_key_id: int | None) -> CompletionRequest | None:
    """Return the top-level request `request_id` (`trio-<hex>`) made with the API key `api_key_id` (None:
    without a stored key), or None.

    One query whatever the reason for None (no such id, another key's, a nested request), so neither
    the status nor the time tells another key's request from one that does not exist.
    """
    pk = parse_request_id(request_id)
    if pk is None:
        return None
    return CompletionRequest.objects.filter(pk=pk, parent__isnull=True, api_key_id=api_key_id).first()


@releases_connection
def feedback_record_for_key(*, request_id: str, api_key_id: int | None, score: float,
                            preferred_index: int | None, comment: str) -> Feedback | None:
    """Return the feedback stored on this key's request `request_id`, or None when it has no such request."""
    request = feedback_request(request_id=request_id, api_key_id=api_key_id)
    if request is None:
        return None
    return feedback_record(request=request, score=score, preferred_index=preferred_index, comment=comment,
                           source=FeedbackSource.API, api_key_id=api_key_id)


def feedback_record(*, request: CompletionRequest, score: float, preferred_index: int | None, comment: str,
                    source: str, api_key_id: int | None = None, user=None) -> Feedback:
    """Store the feedback on `request`, replacing any earlier one, and return it.

    Raises PreferredIndexInvalid when `preferred_index` is not the index of one of its candidates that answered.
    """
    preferred = None
    if preferred_index is not None:
        preferred = request.candidates.filter(index=preferred_index).first()
        if preferred is None:
            raise PreferredIndexInvalid(f"The request has no candidate {preferred_index}: its candidates are "
                                        f"0 to {request.candidates.count() - 1}.")
        if preferred.status != CallStatus.OK:
            raise PreferredIndexInvalid(f"Candidate {preferred_index} did not answer (it is {preferred.status}), "
                                        f"so it cannot be the preferred one.")
    with transaction.atomic():
        # update_or_create locks the row, and re-reads it if a concurrent first feedback created it.
        feedback, _ = Feedback.objects.update_or_create(request=request, defaults={
            "score": score, "preferred_candidate": preferred, "comment": comment, "source": source,
            "api_key_id": api_key_id, "user": user,
        })
    return feedback

