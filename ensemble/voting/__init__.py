"""The voting round and the aggregation methods, as pure functions: no ORM, no HTTP, no settings; it
imports only `ensemble.formats`. `ballot.py` asks, `parse.py` reads, `tally.py` counts; `formats.py`
holds the ballot formats and `methods.py` the aggregation methods, each behind one registry. This
module's names are the package's interface: `from ensemble import voting; voting.tally(...)`.

A voting round, for candidates indexed 0..n-1 (their position in the ensemble):

1. each voter gets its own shuffled order of the candidates (`ballot_order`), seeded from the
   request id so a stored request can be replayed exactly;
2. `ballot_messages` shows it the conversation and the candidates, anonymized and numbered 1..k
   in that order, each inside a fence whose nonce no candidate text contains, a long one cut to
   its share of the prompt's `QuoteLimits` (marked inside its fence);
3. `read_ballot` reads its reply tolerantly into shown positions, as the JSON ballot
   (`BALLOT_SCHEMA`) if it holds one, else as `ACCEPTED:` / `PREFERRED:` lines (`parse_ballot`);
   `ballot_marks` maps them back to candidate indexes;
4. `tally` counts acceptances and preferences (a preference only counts when the same voter also
   accepted that candidate), `rank` orders the candidates (`borda_points` scores them another
   way for the what-if re-tally, ranked by the same tie-break);
5. `consensus` says how far the other voters agreed with the winner, from the same marks and tally.

Ranking and tie-break: most acceptances, then most preferences, then the candidate whose model
comes first in the ensemble's configured order. The last rule is arbitrary but deterministic and
easy to control: list the model you trust most first.
"""
from . import formats, methods
from .ballot import (BALLOT_INSTRUCTIONS, BALLOT_SCHEMA, BALLOT_SYSTEM_PROMPT, FENCE_RULES, JSON_BALLOT_INSTRUCTIONS,
                     QuoteLimits, ballot_messages, ballot_order, candidates_prompt, fence_nonce, fenced_candidates,
                     quote_shares, quoted, render_conversation, turn_text)
from .parse import ParsedBallot, UnreadableBallot, parse_ballot, parse_json_ballot, read_ballot
from .tally import Consensus, Mark, Tally, ballot_marks, borda_points, consensus, counts, rank, tally

__all__ = [
    "BALLOT_INSTRUCTIONS", "BALLOT_SCHEMA", "BALLOT_SYSTEM_PROMPT", "FENCE_RULES", "JSON_BALLOT_INSTRUCTIONS",
    "Consensus", "Mark", "ParsedBallot", "QuoteLimits", "Tally", "UnreadableBallot", "ballot_marks", "borda_points",
    "ballot_messages", "ballot_order", "candidates_prompt", "consensus", "counts", "fence_nonce",
    "fenced_candidates", "formats", "methods", "parse_ballot", "parse_json_ballot", "quote_shares",
    "quoted", "rank", "read_ballot", "render_conversation", "tally", "turn_text",
]
