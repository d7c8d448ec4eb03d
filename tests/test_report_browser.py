"""The report in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright with
executable_path, never a downloaded browser) opens report.html from disk; the test fails on any
console error or page error, any request that is not file:/data:, any image that did not load,
or a missing section; it checks the collapsed harmful completions and the client-side filter,
and saves a screenshot. Skips only when /usr/bin/chromium or playwright is absent."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _report_fixture import make_study  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def test_report_opens_in_chromium_without_errors(browser, tmp_path: Path) -> None:
    from safeadapt.report.render import SECTIONS, write_report

    report = write_report(make_study(tmp_path / "study"))
    page = browser.new_page(viewport={"width": 1366, "height": 800})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(f"network request: {r.url}"),
    )
    page.goto(report.as_uri())
    page.wait_for_load_state("load")

    for s in SECTIONS:
        assert page.locator(f"section#{s}").count() == 1, f"section {s} missing"
    n_img = page.evaluate("document.images.length")
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)"
    )
    assert n_img >= 6 and broken == []
    # the finding and the trade-off plot are on the first screen
    for sel in ("section#finding", "section#pareto img"):
        box = page.locator(sel).bounding_box()
        assert box and box["y"] < 800, sel
    # harmful completions are collapsed: their text is in the page but not visible
    harmful = page.locator("details.harm").first
    assert page.locator("details.harm").count() >= 3 and not harmful.evaluate("d => d.open")
    hidden = page.locator("details.harm > div", has_text="Sure. To make item 0 you need [redacted].").first
    assert not hidden.is_visible()
    harmful.locator("summary").click()
    assert hidden.is_visible()
    # the filter: one model, one verdict, a search term
    total = int(page.inner_text("#shown"))
    page.select_option("#fm", "vl_dpo")
    assert int(page.inner_text("#shown")) == total // 7
    page.select_option("#fv", "over-refused")
    assert int(page.inner_text("#shown")) == 1 and page.locator(".sample:not([hidden])").count() == 1
    page.select_option("#fm", "")
    page.select_option("#fv", "")
    page.fill("#q", "cake")
    assert int(page.inner_text("#shown")) == 7
    page.fill("#q", "")
    assert int(page.inner_text("#shown")) == total

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("SAFEADAPT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
    page.close()
    assert problems == [], problems
