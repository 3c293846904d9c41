"""The what-if page in a real headless Chromium against Trio under uvicorn (as tests/test_browser.py):
reached from the leaderboard, each changed request a link that opens its vote page, no console
errors or Content-Security-Policy violations, nothing wider than the phone's screen.

Skipped, with the reason, where tests/test_browser.py is (no Chromium, no playwright).
"""
import pytest

from tests.test_browser import OVERFLOWS, PASSWORD, browser, log_in, shoot, watched_page  # noqa: F401
from tests.factories import build_vote, save_votes


@pytest.fixture
def changed(transactional_db, django_user_model):
    """A staff user and one request Borda decides otherwise (alpha wins; Borda gives beta 4 points
    to alpha's 3), written before the browser starts: Playwright's sync API runs an event loop."""
    django_user_model.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    return save_votes([build_vote(members=["alpha", "beta", "gamma"],
                                  ballots={0: ([0, 1], 1), 1: ([0, 1], 1), 2: ([0, 2], 2)})])[0]


def test_the_what_if_page_opens_from_the_leaderboard_and_links_to_the_changed_votes(
        trio_server, changed, browser):  # noqa: F811
    base = trio_server.url
    page, errors = watched_page(browser)
    log_in(page, base, "/leaderboard/")

    page.click("a.whatif")
    page.wait_for_url(f"{base}/leaderboard/what-if/**")
    row = page.locator("table.whatif tbody tr", has=page.locator("th:text-is('borda')"))
    assert row.locator("td.num").all_inner_texts()[:2] == ["1", "1"]
    shoot(page, base, "whatif-desktop")
    violations = page.evaluate("window.__violations")
    row.locator("td.changed-ids a").first.click()
    page.wait_for_url(f"{base}/votes/{changed.public_id}/")
    assert page.locator("h1").inner_text() == changed.public_id

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/leaderboard/what-if/")
    shoot(page, base, "whatif-phone")
    assert page.evaluate(OVERFLOWS) == []
    violations += page.evaluate("window.__violations")
    assert errors == [] and violations == []
    page.close()
