"""The admin shows vote history read-only, with candidates and ballots inline and a prompt search."""
import pytest

from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest
from ensemble.history.writer import completion_record
from tests.test_persistence import _outcome

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored():
    outcome = _outcome(3)
    outcome.messages = [{"role": "user", "content": "unique-needle question"}]
    return completion_record(outcome)


@pytest.mark.parametrize("model", [CompletionRequest, Candidate, Ballot, BallotMark])
def test_every_history_model_is_listed_and_read_only(admin_client, stored, model):
    url = f"/admin/ensemble/{model._meta.model_name}/"
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url + "add/").status_code == 403


def test_a_request_page_shows_its_candidates_and_ballots_inline(admin_client, stored):
    page = admin_client.get(f"/admin/ensemble/completionrequest/{stored.pk}/change/").content.decode()
    assert "a0" in page and "a2" in page  # candidate contents
    assert "ACCEPTED: 1" in page  # ballot raw text
    assert 'name="_save"' not in page


def test_search_finds_requests_by_prompt_text(admin_client, stored):
    completion_record(_outcome(2))  # a request with another prompt
    page = admin_client.get("/admin/ensemble/completionrequest/?q=unique-needle").content.decode()
    assert "unique-needle question" in page
    assert "1 result" in page


def test_history_cannot_be_deleted_from_the_admin(admin_client, stored):
    response = admin_client.post(f"/admin/ensemble/completionrequest/{stored.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert CompletionRequest.objects.filter(pk=stored.pk).exists()
