"""The voting round's pure logic: prompt, parsing, mapping back through the shuffle, tally, ranking."""
import re

import pytest

from ensemble import voting
from ensemble.voting import Mark, ParsedBallot, Tally


# --- parse_ballot --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, accepted, preferred",
    [
        ("ACCEPTED: 1, 3\nPREFERRED: 3", {1, 3}, 3),
        ("accepted: 2\npreferred: 2", {2}, 2),
        ("**ACCEPTED:** 1,2\n**PREFERRED:** 2", {1, 2}, 2),
        ("ACCEPTED: [1, 2]\nPREFERRED: [1]", {1, 2}, 1),
        ("Let me think. Both look fine.\n\nACCEPTED: 1 and 2\nPREFERRED: 2 because it is shorter", {1, 2}, 2),
        ("`ACCEPTED: 1`\n`PREFERRED: 1`", {1}, 1),
        ("- Accepted = 3\n- Preferred = 3", {3}, 3),
        ("ACCEPTED: NONE\nPREFERRED: NONE", set(), None),
        ("ACCEPTED: none", set(), None),
    ],
)
def test_it_reads_ballots_in_the_forms_models_write(text, accepted, preferred):
    assert voting.parse_ballot(text, 3) == ParsedBallot(frozenset(accepted), preferred)


def test_it_ignores_numbers_out_of_range_and_notes_them_as_invalid_marks():
    ballot = voting.parse_ballot("ACCEPTED: 0, 2, 9\nPREFERRED: 9", 3)

    assert (ballot.accepted, ballot.preferred) == (frozenset({2}), None)
    assert ballot.note == ("ignored invalid marks, not one of the 3 candidates shown: "
                           "ACCEPTED 0, ACCEPTED 9, PREFERRED 9")


def test_a_number_longer_than_int_reads_is_an_invalid_mark_not_a_crash():
    huge = "9" * 5000  # int() refuses more than 4300 digits
    ballot = voting.parse_ballot(f"ACCEPTED: 1, 2, {huge}\nPREFERRED: {huge}", 3)

    assert (ballot.accepted, ballot.preferred) == (frozenset({1, 2}), None)
    assert "ACCEPTED 999999…(5000 digits), PREFERRED 999999…(5000 digits)" in ballot.note


def test_leading_zeros_do_not_make_a_slot_out_of_range():
    zeros = "0" * 5000
    assert voting.parse_ballot(f"ACCEPTED: {zeros}2\nPREFERRED: 02", 3) == ParsedBallot(frozenset({2}), 2)


def test_a_ballot_naming_only_numbers_that_were_not_shown_is_no_vote():
    assert voting.parse_ballot(f"ACCEPTED: 7, {'1' * 5000}\nPREFERRED: 7", 3) is None


def test_the_note_quotes_a_few_invalid_marks_however_many_a_reply_names():
    ballot = voting.parse_ballot("ACCEPTED: 1, " + ", ".join(["9"] * 1000), 3)

    assert ballot.accepted == frozenset({1}) and ballot.note.endswith("ACCEPTED 9 and 995 more")


def test_a_preference_for_a_candidate_not_accepted_does_not_count():
    assert voting.parse_ballot("ACCEPTED: 1\nPREFERRED: 2", 3) == ParsedBallot(frozenset({1}), None)


def test_the_last_answer_wins_when_the_model_thinks_aloud():
    text = "First idea: ACCEPTED: 1\nPREFERRED: 1\nOn reflection:\nACCEPTED: 2\nPREFERRED: 2"
    assert voting.parse_ballot(text, 2) == ParsedBallot(frozenset({2}), 2)


def test_a_missing_preference_leaves_the_acceptances_standing():
    assert voting.parse_ballot("ACCEPTED: 1, 2", 2) == ParsedBallot(frozenset({1, 2}), None)


@pytest.mark.parametrize("text", ["", "I like the second one best.", "ACCEPTED: the good ones", "PREFERRED: 1"])
def test_it_returns_none_for_replies_that_are_not_ballots(text):
    assert voting.parse_ballot(text, 3) is None


# --- shuffling and mapping back ------------------------------------------------------------------

def test_each_voter_gets_a_reproducible_permutation_of_its_own():
    orders = [voting.ballot_order("req-1", voter, 5) for voter in range(4)]
    assert all(sorted(order) == list(range(5)) for order in orders)
    assert orders == [voting.ballot_order("req-1", voter, 5) for voter in range(4)]
    assert len({tuple(order) for order in orders}) > 1
    assert voting.ballot_order("req-2", 0, 5) != voting.ballot_order("req-1", 0, 5) or \
        voting.ballot_order("req-2", 1, 5) != voting.ballot_order("req-1", 1, 5)


def test_marks_map_shown_positions_back_to_the_right_candidates():
    order = [2, 0, 1]  # position 1 shows candidate 2, position 2 candidate 0, position 3 candidate 1
    ballot = ParsedBallot(accepted=frozenset({1, 3}), preferred=1)
    marks = {m.candidate: m for m in voting.ballot_marks(voter=0, ballot=ballot, order=order)}
    assert marks[2] == Mark(voter=0, candidate=2, accepted=True, preferred=True)
    assert marks[1] == Mark(voter=0, candidate=1, accepted=True, preferred=False)
    assert marks[0] == Mark(voter=0, candidate=0, accepted=False, preferred=False)
    assert marks[0].is_self and not marks[2].is_self


def test_a_shuffled_prompt_and_its_ballot_point_at_the_same_candidate():
    texts = {0: "answer zero", 1: "answer one", 2: "answer two"}
    order = voting.ballot_order("abc", 1, 3)
    messages = voting.ballot_messages([{"role": "user", "content": "q"}], [texts[i] for i in order], "ff00")
    shown = re.findall(r'<candidate number="(\d)" fence="ff00">\n(.*?)\n', messages[1]["content"])
    position_of_two = next(int(n) for n, text in shown if text == "answer two")
    ballot = voting.parse_ballot(f"ACCEPTED: {position_of_two}\nPREFERRED: {position_of_two}", 3)
    preferred = [m.candidate for m in voting.ballot_marks(1, ballot, order) if m.preferred]
    assert preferred == [2]


# --- prompt --------------------------------------------------------------------------------------

def test_the_prompt_fences_anonymized_candidates_and_carries_the_whole_conversation():
    conversation = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
    ]
    messages = voting.ballot_messages(conversation, ["4", "four"], "abcd")
    user = messages[-1]["content"]
    assert "Be terse." in user and "What is 2+2?" in user
    assert '<candidate number="1" fence="abcd">\n4\n</candidate fence="abcd">' in user
    assert '<candidate number="2" fence="abcd">\nfour\n</candidate fence="abcd">' in user
    assert "ACCEPTED:" in user and "PREFERRED:" in user


def test_the_fence_nonce_never_occurs_in_a_candidate():
    class Predictable:
        values = iter([0xAAAA, 0xBBBB])

        def getrandbits(self, _):
            return next(self.values)

    nonce = voting.fence_nonce(["text with 000000000000aaaa inside"], rng=Predictable())
    assert nonce == "000000000000bbbb"


# --- tally and rank ------------------------------------------------------------------------------

def _marks(voter, accepted, preferred=None, candidates=(0, 1, 2)):
    return [Mark(voter, c, c in accepted, c == preferred) for c in candidates]


def test_tally_counts_acceptances_and_accepted_preferences():
    marks = _marks(0, {0, 1}, 1) + _marks(1, {1}, 1) + _marks(2, {0, 1, 2}, 0)
    totals = voting.tally([0, 1, 2], marks)
    assert totals == {0: Tally(2, 1), 1: Tally(3, 2), 2: Tally(1, 0)}
    assert voting.rank(totals) == [1, 0, 2]


def test_excluding_self_votes_drops_each_voters_marks_on_its_own_candidate():
    marks = _marks(0, {0}, 0) + _marks(1, {0, 1}, 1) + _marks(2, {2}, 2)
    assert voting.tally([0, 1, 2], marks, self_vote=True) == {0: Tally(2, 1), 1: Tally(1, 1), 2: Tally(1, 1)}
    assert voting.tally([0, 1, 2], marks, self_vote=False) == {0: Tally(1, 0), 1: Tally(0, 0), 2: Tally(0, 0)}


def test_ties_on_acceptances_go_to_more_preferences():
    assert voting.rank({0: Tally(2, 0), 1: Tally(2, 1), 2: Tally(1, 1)}) == [1, 0, 2]


def test_full_ties_go_to_the_model_listed_first_in_the_ensemble():
    assert voting.rank({2: Tally(1, 1), 0: Tally(1, 1), 1: Tally(1, 1)}) == [0, 1, 2]


def test_marks_on_failed_candidates_are_ignored():
    totals = voting.tally([0, 2], _marks(0, {0, 1, 2}, 1))
    assert totals == {0: Tally(1, 0), 2: Tally(1, 0)}


def test_borda_scores_each_ballots_order_preferred_then_accepted_then_not():
    # Four shown: the preferred beats 3, the other accepted beats the 2 not accepted, those beat none.
    assert voting.borda_points([0, 1, 2, 3], _marks(0, {1, 2}, 2, candidates=(0, 1, 2, 3))) == {0: 0, 1: 2, 2: 3, 3: 0}


def test_borda_ignores_a_preference_without_acceptance_and_uncounted_self_marks():
    marks = [Mark(0, 0, True, False), Mark(0, 1, False, True), Mark(0, 2, False, False)]
    assert voting.borda_points([0, 1, 2], marks) == {0: 2, 1: 0, 2: 0}
    # Without its self mark, voter 0's ballot is b (accepted) over c: as if a had not been shown.
    assert voting.borda_points([0, 1, 2], _marks(0, {0, 1}, 0), self_vote=False) == {0: 0, 1: 1, 2: 0}


def test_borda_can_elect_another_winner_than_acceptances_and_ties_go_through_rank():
    # 0 is accepted by all three, never preferred; 1 is preferred by two and accepted by two.
    marks = _marks(0, {0, 1}, 1) + _marks(1, {0, 1}, 1) + _marks(2, {0, 2}, 2)
    totals = voting.tally([0, 1, 2], marks)
    assert voting.rank(totals)[0] == 0
    assert voting.rank(totals, points=voting.borda_points([0, 1, 2], marks)) == [1, 0, 2]
    assert voting.rank({0: Tally(1, 0), 1: Tally(2, 0)}, points={0: 3, 1: 3}) == [1, 0]  # equal points: acceptances


# --- consensus -----------------------------------------------------------------------------------

def _consensus(marks, candidates=(0, 1, 2), *, self_vote=True, low_below=0.5):
    totals = voting.tally(candidates, marks, self_vote=self_vote)
    return voting.consensus(totals, marks, voting.rank(totals)[0], low_below=low_below)


def test_a_unanimous_panel_has_consensus_1():
    marks = _marks(0, {0}, 0) + _marks(1, {0}, 0) + _marks(2, {0, 1}, 0)
    assert _consensus(marks) == voting.Consensus(score=1.0, preferred_share=1.0, margin=2, low=False)


def test_the_winners_own_ballot_is_left_out_of_the_score():
    # Each accepts only itself: candidate 0 wins the tie on ensemble order, and no one else accepted it.
    marks = _marks(0, {0}, 0) + _marks(1, {1}, 1) + _marks(2, {2}, 2)
    assert _consensus(marks) == voting.Consensus(score=0.0, preferred_share=0.0, margin=0, low=True)


def test_a_preference_counts_only_where_the_voter_also_accepted():
    marks = _marks(0, {0}, 0) + _marks(1, {0, 1}, 1) + [Mark(2, 0, False, True), Mark(2, 1, False, False)]
    consensus = _consensus(marks, candidates=(0, 1))
    assert (consensus.score, consensus.preferred_share) == (0.5, 0.0)


def test_the_margin_is_the_tallys_and_follows_the_self_vote_policy():
    marks = _marks(0, {0}, 0) + _marks(1, {0, 1}, 1) + _marks(2, {0}, 0)
    assert _consensus(marks, self_vote=True).margin == 3 - 1
    assert _consensus(marks, self_vote=False).margin == 2 - 0
    assert _consensus(marks, self_vote=False).score == 1.0  # the winner's own ballot never counted


def test_a_single_candidates_margin_is_its_counted_acceptances():
    marks = _marks(1, {0}, 0, candidates=(0,)) + _marks(2, {0}, 0, candidates=(0,))
    assert _consensus(marks, candidates=(0,)).margin == 2


def test_without_another_parsed_ballot_there_is_no_score_and_the_answer_is_low():
    assert _consensus(_marks(0, {0}, 0)) == voting.Consensus(score=None, preferred_share=None, margin=1, low=True)
    assert _consensus([]) == voting.Consensus(score=None, preferred_share=None, margin=0, low=True)


def test_a_judge_is_the_only_voter_and_never_the_winners_own():
    judge = 3
    assert _consensus(_marks(judge, {0, 1}, 1)) == voting.Consensus(1.0, 1.0, 0, False)
    assert _consensus(_marks(judge, set())) == voting.Consensus(0.0, 0.0, 0, True)


@pytest.mark.parametrize("low_below, low", [(0.5, False), (0.51, True), (0.0, False)])
def test_low_is_a_score_below_the_threshold(low_below, low):
    marks = _marks(0, {0}, 0) + _marks(1, {0}, 0) + _marks(2, {2}, 2)
    assert _consensus(marks, low_below=low_below).low is low
