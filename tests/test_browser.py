"""The staff pages in a real headless Chromium against Trio under uvicorn: log in, sort, open a vote;
no console errors, and the Content-Security-Policy blocks what injected markup would run.

Needs Debian's `chromium` package at /usr/bin/chromium (`.ci/run` installs it) and the `playwright`
pip package, driven with `executable_path` (never `playwright install`, which downloads a browser).
Without either, this module is skipped with the reason; nothing else is.

Screenshots go to bench/results/screenshots/ (git-ignored) at desktop and phone width.
"""
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from ensemble.catalog.spec import LABEL_MAX_CHARS  # noqa: E402
from tests.factories import ago, build_vote, save_votes  # noqa: E402

SCREENSHOTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "browser-test-password-1"
XSS = "<script>window.__pwned = true; alert('xss')</script>"


@pytest.fixture
def history(transactional_db, django_user_model):
    """A staff user and a small history, committed so the server thread sees them."""
    django_user_model.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    rows = []
    for i in range(12):
        winner = [0, 0, 1, 0, 2, 0][i % 6]
        rows.append(build_vote(
            members=["llama3.2-3b", "mistral-7b", "qwen2.5-7b"], created_at=ago(hours=3 * i + 1),
            prompt=f"Question {i}: explain how vaccines train the immune system, briefly",
            ballots={v: ([winner, (winner + 1) % 3], winner) for v in range(3)},
            latency_ms={0: 900 + 10 * i, 1: 400 + 5 * i, 2: 1500}))
    rows.append(build_vote(
        members=["llama3.2-3b", "mistral-7b", "qwen2.5-7b"], failed={2: "timeout"}, created_at=ago(minutes=5),
        prompt="Print a script tag", contents={0: f"Here it is: {XSS}", 1: '<img src=x onerror="alert(1)">'},
        ballots={0: ([0, 1], 1), 1: "unparseable"}, raw_text={1: "Both look fine to me <b>really</b>."},
        latency_ms={0: 1200, 1: 650, 2: 5000}))
    return save_votes(rows)


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def first_column(page) -> list[str]:
    return page.locator("table.leaderboard tbody th[scope=row] > a:first-child").all_inner_texts()


def use_stylesheet(page, base_url: str) -> None:
    """Apply the product stylesheet if the server does not serve /static/ yet (no static files app
    under ASGI with DEBUG off), so the screenshots show the pages as deployed. Nothing asserts on styles."""
    if page.request.get(f"{base_url}/static/ensemble/trio.css").status != 200:
        css = Path(__file__).resolve().parent.parent / "ensemble" / "static" / "ensemble" / "trio.css"
        page.add_style_tag(content=css.read_text())


def shoot(page, base_url: str, name: str) -> None:
    use_stylesheet(page, base_url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_staff_log_in_sort_the_leaderboard_and_open_a_vote(trio_server, history, browser):
    base = trio_server.url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    # Log in through the admin login page the leaderboard redirects to.
    page.goto(f"{base}/leaderboard/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/leaderboard/")
    assert page.locator("h1").inner_text() == "Leaderboard"
    assert first_column(page) == ["llama3.2-3b", "mistral-7b", "qwen2.5-7b"]  # best win rate first
    shoot(page, base, "leaderboard-desktop")

    # Sort by median latency (fastest first after a second click): mistral answers fastest.
    page.click("th a[data-sort=median_latency_ms]")
    page.wait_for_url("**sort=-median_latency_ms")
    assert first_column(page)[0] == "qwen2.5-7b"  # slowest first
    page.click("th a[data-sort=median_latency_ms]")
    page.wait_for_url("**sort=median_latency_ms")
    assert first_column(page) == ["mistral-7b", "llama3.2-3b", "qwen2.5-7b"]

    # Open the newest vote from the history.
    page.click("nav a:text('Votes')")
    page.wait_for_url(f"{base}/votes/")
    shoot(page, base, "votes-desktop")
    page.locator("table.history tbody tr").first.locator("td.prompt a").click()
    page.wait_for_url(f"{base}/votes/*/")
    assert page.locator("h1").inner_text().startswith("trio-")
    winner = page.locator("article.candidate.winner")
    assert winner.locator("strong").inner_text() == "mistral-7b"
    # The model's <script> is text on the page, and never ran.
    assert XSS in page.locator("article.candidate").first.inner_text()
    assert page.evaluate("window.__pwned === undefined") and dialogs == []
    assert "unparseable ballot" in page.locator("table.matrix").inner_text()
    shoot(page, base, "vote-desktop")

    # Phone width: the same pages, for the eye (wide tables scroll inside their own box).
    vote_url = page.url
    page.set_viewport_size({"width": 390, "height": 844})
    for name, url in (("vote-phone", vote_url), ("leaderboard-phone", f"{base}/leaderboard/"),
                      ("votes-phone", f"{base}/votes/")):
        page.goto(url)
        shoot(page, base, name)
    page.close()


def log_in(page, base_url: str, next_path: str) -> None:
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}{next_path}")


# What sticks out sideways: the page itself, and any fact card or filter bar wider than its box.
OVERFLOWS = """() => [document.documentElement, ...document.querySelectorAll('.facts > div, .filters')]
    .filter(el => el.scrollWidth > el.clientWidth + 1)
    .map(el => `${el.tagName}.${el.className}: ${el.scrollWidth} > ${el.clientWidth}`)"""


@pytest.fixture
def long_one(history):
    """A request with an unbroken 300-character prompt and a DSL-style ensemble label (written
    before the browser starts: Playwright's sync API runs an event loop, where the ORM refuses)."""
    label = "judge(" + ",".join(f"member-model-number-{i}@quality=0.{i}" for i in range(5)) + ")"
    assert len(label) <= LABEL_MAX_CHARS  # as long as the API lets a label be: PostgreSQL refuses longer
    members = ["ensemble(alpha-model,beta-model@quality=0.5)", "beta-model"]  # a nested ensemble's label
    return save_votes([build_vote(members=members, ensemble=label, prompt="A" * 300,
                                  ballots={0: ([0, 1], 0), 1: ([0], 0)})])[0]


def test_long_prompts_and_ensemble_labels_wrap_instead_of_widening_the_pages(trio_server, long_one, browser):
    base = trio_server.url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, base, "/votes/")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for path in ("/votes/", f"/votes/{long_one.pk}/", "/leaderboard/"):
            page.goto(f"{base}{path}")
            use_stylesheet(page, base)
            assert page.evaluate(OVERFLOWS) == [], (width, path)
        page.goto(f"{base}/votes/")
        use_stylesheet(page, base)
        # Every column of the history stays in view on a desktop (a phone shows rows as cards).
        if width == 1280:
            table = page.locator(".table-wrap").first
            assert table.evaluate("el => el.scrollWidth <= el.clientWidth"), "the history table scrolls sideways"
    page.close()


# Chart texts that stick out of their SVG's viewBox (cut off) or overlap another text.
CLIPPED_TEXTS = """() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
    const width = svg.viewBox.baseVal.width, texts = [...svg.querySelectorAll('text')];
    const boxes = texts.map(t => t.getBBox());
    const out = texts.filter((t, i) => boxes[i].x < 0 || boxes[i].x + boxes[i].width > width)
        .map(t => `cut: ${t.textContent}`);
    boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b, j) => {
        if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height)
            out.push(`overlap: ${texts[i].textContent} / ${texts[i + 1 + j].textContent}`);
    }));
    return out;
})"""


def test_chart_labels_of_long_model_names_stay_inside_the_chart(trio_server, long_one, browser):
    base = trio_server.url
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, base, "/leaderboard/")
    for path in ("/leaderboard/", f"/votes/{long_one.pk}/"):
        page.goto(f"{base}{path}")
        use_stylesheet(page, base)
        found = page.evaluate(CLIPPED_TEXTS)
        assert not found, (path, found)
    page.close()


# Every Content-Security-Policy violation on the page, as "directive blocked-URI", kept for the
# test to read (Chromium also logs each as a console error; this says which directive refused).
RECORD_VIOLATIONS = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
    event => window.__violations.push(`${event.effectiveDirective} ${event.blockedURI}`));"""



def watched_page(browser):
    """Return a new page that records CSP violations (window.__violations), and the list its console
    errors and uncaught exceptions are appended to."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.add_init_script(RECORD_VIOLATIONS)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors

def test_pages_and_admin_load_without_console_errors_or_policy_violations(trio_server, long_one, browser):
    base = trio_server.url
    page, errors = watched_page(browser)
    log_in(page, base, "/votes/")  # the admin's login page, then the history list
    violations = page.evaluate("window.__violations")
    for path in (f"/votes/{long_one.pk}/", "/leaderboard/", "/admin/", "/admin/ensemble/completionrequest/",
                 f"/admin/ensemble/completionrequest/{long_one.pk}/change/", "/admin/ensemble/apikey/",
                 "/admin/ensemble/ensembledefinition/add/"):
        page.goto(f"{base}{path}")
        violations += page.evaluate("window.__violations")
    # The admin's scripts at work: a row added to the members inline, the theme toggled.
    page.click(".add-row a")
    page.click("button.theme-toggle")
    violations += page.evaluate("window.__violations")
    assert errors == [] and violations == []
    page.close()


# What markup that got past the templates' escaping would do: an inline script and an inline event handler.
INJECT = """() => {
    const script = document.createElement('script');
    script.textContent = 'window.__scriptRan = true';
    document.body.append(script);
    document.body.insertAdjacentHTML('beforeend', '<img src="/missing.png" onerror="window.__handlerRan = true">');
}"""


def test_the_policy_stops_injected_inline_scripts(trio_server, history, browser):
    base = trio_server.url
    page = browser.new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    log_in(page, base, "/votes/")
    page.goto(f"{base}/votes/{history[-1].pk}/")  # the vote whose answers hold <script> and onerror
    page.evaluate(INJECT)
    page.wait_for_function("window.__violations.length >= 2 || window.__scriptRan || window.__handlerRan",
                           timeout=10_000)
    assert page.evaluate("[window.__scriptRan, window.__handlerRan]") == [None, None]
    assert sorted(v.split()[0] for v in page.evaluate("window.__violations")) == ["script-src-attr", "script-src-elem"]
    page.close()
