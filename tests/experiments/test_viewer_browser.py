"""The discussion viewer in a real headless Chromium: loads without console errors, filters change what is
shown, and a screenshot lands in the run folder. Slow (starts a browser); needs Chromium
(`make browser` installs Debian's package)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_viewer import QUESTIONS, write_discussion_run

from experiments.reports.viewer import write_viewer
from experiments.reports.viewer_browser import Browser, find_chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium: `make browser` installs it"),
]


def _pick(browser: Browser, select_id: str, value: str) -> str:
    """Choose an option the way a user does (set it, fire change) and return the status line."""
    browser.evaluate(
        f"(() => {{ const s = document.getElementById({select_id!r}); s.value = {value!r};"
        " s.dispatchEvent(new Event('change')); })()"
    )
    return browser.evaluate("document.getElementById('status').textContent")


def _shown(browser: Browser) -> list[str]:
    return browser.evaluate("[...document.querySelectorAll('details.item')].map((d) => d.dataset.id)")


def test_viewer_loads_filters_and_screenshots_in_chromium(tmp_path: Path) -> None:
    run_dir = write_discussion_run(tmp_path)
    page = write_viewer(run_dir)
    total = len(QUESTIONS)
    with Browser() as browser:
        browser.open(page)
        assert (
            browser.evaluate("document.getElementById('status').textContent")
            == f"{total} of {total} questions"
        )
        assert len(_shown(browser)) == total
        assert browser.evaluate("document.querySelectorAll('#plots svg').length") == 4
        # agent_0 changed its answer on the odd questions only
        assert _pick(browser, "f-changed", "changed") == f"{total // 2} of {total} questions"
        assert sorted(_shown(browser)) == sorted(q.id for q in QUESTIONS if int(q.id.split("/")[1]) % 2)
        _pick(browser, "f-changed", "")
        # correctness: every question has one correct and one wrong agent, so both filters keep all of them
        assert _pick(browser, "f-correct", "1") == f"{total} of {total} questions"
        modes = browser.evaluate("[...document.getElementById('f-mode').options].map((o) => o.value)")
        assert set(modes) == {"", "cooperate", "compete"}
        counts = [int(_pick(browser, "f-mode", m).split()[0]) for m in ("cooperate", "compete")]
        assert all(0 < c < total for c in counts)  # correct AND in that mode: a strict subset
        _pick(browser, "f-mode", "")
        _pick(browser, "f-correct", "")
        # opening a question renders its discussion: every stage of both agents and the gold
        browser.evaluate("document.querySelector('details.item').open = true")
        stages = browser.evaluate("[...document.querySelectorAll('.body .stage')].map((s) => s.textContent)")
        assert stages == ["share", "analyse", "fuse"] * 2
        shot = browser.screenshot(run_dir / "viewer.png")
        assert browser.errors == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_a_thousand_questions_stay_paged(tmp_path: Path) -> None:
    run_dir = write_discussion_run(tmp_path)
    lines = [line for line in (run_dir / "transcripts.jsonl").read_text().split("\n") if line]
    (run_dir / "transcripts.jsonl").write_text("\n".join(lines * 100) + "\n")  # 1,200 questions
    page = write_viewer(run_dir)
    with Browser() as browser:
        browser.open(page)
        assert browser.evaluate("document.getElementById('status').textContent") == "1200 of 1200 questions"
        assert len(_shown(browser)) == 25  # one page rendered, bodies only on demand
        assert browser.evaluate("document.querySelectorAll('.body').length") == 0
        browser.evaluate("document.getElementById('next').click()")
        assert browser.evaluate("document.getElementById('page').textContent").strip() == "page 2 / 48"
        assert browser.errors == []
