"""POST /v1/feedback: a person's score (and preferred candidate, and comment) for a stored answer.

Only the API key that made the request may rate it: another key's request is answered exactly as
an unknown id is (404, from the same single query), so feedback tells nothing about other keys'
requests. While the API is open (no key configured), the requests made without a key are open to
feedback too. Giving feedback again replaces it; every success is 200 with the stored feedback.
"""
from __future__ import annotations

from asgiref.sync import sync_to_async
from adrf.views import APIView
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from ..history.feedback import PreferredIndexInvalid, feedback_record_for_key
from ..models import MAX_FEEDBACK_COMMENT as MAX_COMMENT, Feedback
from .errors import InvalidRequest, OpenAIError
from .schema import COMMON_ERRORS, error_response
from .fields import StrictCharField, StrictFloatField, StrictIntegerField
from .views import json_response, parse_json_body, validated


class FeedbackNotFound(OpenAIError):
    status_code = 404
    default_code = "request_not_found"


class FeedbackRequestSerializer(serializers.Serializer):
    """The body of POST /v1/feedback; unlike chat's, an unknown field is refused (there is no client to
    keep working: a misspelt `prefered_index` would otherwise be lost without a word)."""

    id = StrictCharField(max_length=100, help_text="The answer's id (`trio-…`), from a chat completion or a response.")
    score = StrictFloatField(min_value=0, max_value=1, help_text="How good the answer was: 0 (bad) to 1 (good).")
    preferred_index = StrictIntegerField(required=False, allow_null=True, min_value=0, help_text=(
        "The index (`trio.candidates[].index`) of the candidate the person preferred, one that answered."))
    comment = StrictCharField(required=False, allow_blank=True, max_length=MAX_COMMENT, trim_whitespace=False,
                              help_text=f"Free text, at most {MAX_COMMENT} characters.")

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise ValidationError({unknown[0][:64]: "Unrecognized field: feedback takes id, score, "
                                                    "preferred_index and comment."})
        return super().to_internal_value(data)

    def validate_comment(self, value: str) -> str:
        if "\x00" in value:
            raise ValidationError("Must not contain NUL characters.")  # PostgreSQL cannot store NUL in text
        return value


class FeedbackSerializer(serializers.Serializer):
    """The stored feedback, as `feedback_body` shapes it (describes only)."""

    object = serializers.ChoiceField(choices=["feedback"])
    id = serializers.CharField(help_text="The rated answer's id.")
    score = serializers.FloatField(min_value=0, max_value=1)
    preferred_index = serializers.IntegerField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    source = serializers.ChoiceField(choices=["api", "staff"])
    created_at = serializers.IntegerField(help_text="When feedback was first given (Unix seconds).")
    updated_at = serializers.IntegerField(help_text="When it was last replaced (Unix seconds).")


FEEDBACK_ERRORS = {
    400: error_response("Invalid JSON, an unknown field, or an invalid one (`param` names it): a score that is not a number "
                "from 0 to 1, a preferred_index that is not one of the request's answered candidates, a comment over "
                f"{MAX_COMMENT} characters."),
    **COMMON_ERRORS,
    404: error_response("No answer by that id made with this API key (code request_not_found)."),
    415: error_response("Content-Type is not application/json."),
}
FEEDBACK_EXAMPLES = [OpenApiExample(
    "Rate an answer", request_only=True,
    value={"id": "trio-0f8e4c2a9b7d4e1f8a6b5c4d3e2f1a0b", "score": 1, "preferred_index": 0, "comment": "Right."},
)]

# One instance for every request, as chat's (see views.CHAT_REQUEST): validation keeps no state on it.
FEEDBACK_REQUEST = FeedbackRequestSerializer()


class FeedbackView(APIView):
    @extend_schema(operation_id="createFeedback", summary="Rate a stored answer (human feedback).",
                   description="Only with the API key that made the request (any request while the API is open). "
                               "Giving feedback again replaces it; every success is 200 with the stored feedback.",
                   request=FeedbackRequestSerializer, examples=FEEDBACK_EXAMPLES,
                   responses={200: OpenApiResponse(FeedbackSerializer, description="The stored feedback."),
                              **FEEDBACK_ERRORS})
    async def post(self, request):
        payload = validated(parse_json_body(request), FEEDBACK_REQUEST)
        api_key = request.auth  # set by ApiKeyAuthentication; None while the API is open
        if api_key is not None and api_key.pk is None:
            # A TRIO_API_KEYS key has no row, so its requests are stored without a key: whose they are is unknown.
            raise FeedbackNotFound("Feedback is given only with keys made by create_api_key: a TRIO_API_KEYS "
                                   "key's requests cannot be told from anyone else's.", param="id")
        try:
            feedback = await sync_to_async(feedback_record_for_key)(
                request_id=payload["id"], api_key_id=api_key.pk if api_key else None, score=payload["score"],
                preferred_index=payload.get("preferred_index"), comment=payload.get("comment", ""))
        except PreferredIndexInvalid as exc:
            raise InvalidRequest(f"Invalid value for 'preferred_index': {exc}", param="preferred_index") from None
        if feedback is None:
            raise FeedbackNotFound(f"No answer with id '{payload['id']}' was found for this API key.", param="id")
        return json_response(feedback_body(feedback))


def feedback_body(feedback: Feedback) -> dict:
    """Return the stored feedback as the API answers it."""
    return {
        "object": "feedback", "id": f"trio-{feedback.request_id.hex}", "score": feedback.score,
        "preferred_index": feedback.preferred_index, "comment": feedback.comment, "source": feedback.source,
        "created_at": int(feedback.created_at.timestamp()), "updated_at": int(feedback.updated_at.timestamp()),
    }
