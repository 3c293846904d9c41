"""The app's models, split by domain. Import them from here (`from ensemble.models import X`): this
package's interface; the modules are where they are written.

    history   what a request did, append-only: CompletionRequest, RequestTag, Candidate, Ballot,
              BallotMark, their statuses (RequestStatus, CallStatus, BallotStatus, BallotFormat,
              ANSWERED) and cost_field
    keys      ApiKey, a client's key for /v1/
    feedback  Feedback, a person's verdict on a request's answer (FeedbackSource, MAX_FEEDBACK_COMMENT)
    rollups   per-UTC-day leaderboard aggregates: RollupDay, ModelDayRollup, EnsembleDayRollup,
              PairDayRollup
    config    edited in the admin: EnsembleDefinition, EnsembleMember, AggregationMethod, ModelPrice
"""
from .config import AggregationMethod, EnsembleDefinition, EnsembleMember, ModelPrice
from .feedback import MAX_FEEDBACK_COMMENT, Feedback, FeedbackSource
from .history import (
    ANSWERED,
    Ballot,
    BallotFormat,
    BallotMark,
    BallotStatus,
    CallStatus,
    Candidate,
    CompletionRequest,
    RequestStatus,
    RequestTag,
    UsageFields,
    cost_field,
)
from .keys import ApiKey
from .rollups import EnsembleDayRollup, ModelDayRollup, PairDayRollup, RollupDay

__all__ = [
    "ANSWERED", "MAX_FEEDBACK_COMMENT", "AggregationMethod", "ApiKey", "Ballot", "BallotFormat", "BallotMark",
    "BallotStatus", "CallStatus", "Candidate", "CompletionRequest", "EnsembleDayRollup", "EnsembleDefinition",
    "EnsembleMember", "Feedback", "FeedbackSource", "ModelDayRollup", "ModelPrice", "PairDayRollup",
    "RequestStatus", "RequestTag", "RollupDay", "UsageFields", "cost_field",
]
