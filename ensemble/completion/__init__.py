"""Orchestration of one completion: `service.completion_create` fans out to the members, runs the
aggregation method's step, decides and hands the outcome to history; `calls`, `steps`, `fallback`,
`rounds` and `admission` are its parts. It may import voting, backend, history (the writer), the
ensembles, outcomes, metrics and formats; never request parsing or HTML.
"""
from .service import NoCandidates, completion_create

__all__ = ["NoCandidates", "completion_create"]
