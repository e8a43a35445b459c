"""The viewer in a real headless Chromium: loads without console errors, filters change what is shown, rows
open into every model's answer side by side, and a compare run of the paper's size (9 benchmarks, ~3,000
questions, 6 models) keeps every question and filters to where two models differ. Slow (starts a browser);
needs Chromium (`make browser` installs Debian's package)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_viewer import QUESTIONS, correct_of, write_compare_run, write_discussion_run

from experiments.reports.viewer import write_viewer
from experiments.reports.viewer_browser import Browser, find_chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_chromium() is None, reason="no Chromium: `make browser` installs it"),
]

PAPER_LABELS = [
    "base llama-8b",
    "base qwen-7b",
    "grpo agent_0 seed 0",
    "grpo agent_1 seed 0",
    "ilr agent_0 seed 0",
    "ilr agent_1 seed 0",
]
PAPER_BENCHMARKS, PAPER_QUESTIONS = 9, 334  # 3,006 questions, 18,036 answers


def _pick(browser: Browser, select_id: str, value: str) -> str:
    """Choose an option the way a user does (set it, fire change) and return the status line."""
    browser.evaluate(
        f"(() => {{ const s = document.getElementById({select_id!r}); s.value = {value!r};"
        " s.dispatchEvent(new Event('change')); })()"
    )
    return _status(browser)


def _status(browser: Browser) -> str:
    return browser.evaluate("document.getElementById('status').textContent")


def _shown(browser: Browser) -> list[str]:
    return browser.evaluate("[...document.querySelectorAll('tr.row')].map((r) => r.dataset.id)")


def _open_row(browser: Browser, index: int = 0) -> None:
    """Click a row and wait until its texts are decoded and drawn."""
    browser.evaluate(f"document.querySelectorAll('tr.row')[{index}].click()")
    browser.evaluate("window.ilrPending", await_promise=True)


def _option(browser: Browser, select_id: str, text: str) -> str:
    return browser.evaluate(
        f"[...document.getElementById({select_id!r}).options].find((o) => o.text === {text!r}).value"
    )


def test_viewer_loads_filters_and_screenshots_in_chromium(tmp_path: Path) -> None:
    run_dir = write_discussion_run(tmp_path)
    page = write_viewer(run_dir)
    total = len(QUESTIONS)
    with Browser() as browser:
        browser.open(page)
        assert _status(browser) == f"{total} of {total} questions"
        assert len(_shown(browser)) == total
        assert browser.evaluate("document.querySelectorAll('#plots svg').length") == 4
        assert browser.evaluate("[...document.querySelectorAll('#head th')].map((t) => t.textContent)") == [
            "question",
            "source",
            "text",
            "agent_0",
            "agent_1",
        ]
        # agent_0 changed its answer on the odd questions only
        assert _pick(browser, "f-changed", "1") == f"{total // 2} of {total} questions"
        assert sorted(_shown(browser)) == sorted(q.id for q in QUESTIONS if int(q.id.split("/")[1]) % 2)
        _pick(browser, "f-changed", "")
        # correctness: every question has one correct and one wrong agent, so both filters keep all of them
        assert _pick(browser, "f-correct", "1") == f"{total} of {total} questions"
        modes = browser.evaluate("[...document.getElementById('f-mode').options].map((o) => o.text)")
        assert set(modes) == {"all", "cooperate", "compete"}
        counts = [
            int(_pick(browser, "f-mode", _option(browser, "f-mode", m)).split()[0])
            for m in ("cooperate", "compete")
        ]
        assert all(0 < c < total for c in counts)  # correct AND in that mode: a strict subset
        _pick(browser, "f-mode", "")
        _pick(browser, "f-correct", "")
        # agent_0 is always right and agent_1 always wrong: they differ on every question, one way
        _pick(browser, "f-a", _option(browser, "f-a", "agent_0"))
        _pick(browser, "f-b", _option(browser, "f-b", "agent_1"))
        assert _pick(browser, "f-rel", "differ") == f"{total} of {total} questions"
        assert _pick(browser, "f-rel", "b") == f"0 of {total} questions"
        _pick(browser, "f-rel", "")
        # opening a question renders its discussion: every stage of both agents and the gold
        _open_row(browser)
        stages = browser.evaluate(
            "[...document.querySelectorAll('.detail .stage')].map((s) => s.textContent)"
        )
        assert stages == ["share", "analyse", "fuse"] * 2
        assert "</script><script>alert(1)</script>" in browser.evaluate(
            "document.querySelector('.detail').textContent"
        )
        shot = browser.screenshot(run_dir / "viewer.png")
        assert browser.errors == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def _all_ids(browser: Browser) -> list[str]:
    """Every row id, page by page, the way a reader would go through them."""
    browser.evaluate(
        "(() => { const prev = document.getElementById('prev'); while (!prev.disabled) prev.click(); })()"
    )
    ids = _shown(browser)
    while not browser.evaluate("document.getElementById('next').disabled"):
        browser.evaluate("document.getElementById('next').click()")
        ids += _shown(browser)
    return ids


def _expected_pair(a: str, b: str) -> dict[str, int]:
    n = {"both": 0, "a": 0, "b": 0, "neither": 0}
    for bench in range(PAPER_BENCHMARKS):
        for q in range(PAPER_QUESTIONS):
            x, y = correct_of(a, bench, q), correct_of(b, bench, q)
            n["both" if x and y else "neither" if not (x or y) else "a" if x else "b"] += 1
    return n


def test_a_compare_run_of_the_papers_size_shows_every_question_side_by_side(tmp_path: Path) -> None:
    run_dir = write_compare_run(tmp_path, PAPER_LABELS, PAPER_BENCHMARKS, PAPER_QUESTIONS, words=250)
    paired = [["ilr agent_0", "grpo agent_0"], ["ilr agent_1", "grpo agent_1"]]
    (run_dir / "results.json").write_text(json.dumps({"config": {"paired": paired}}))
    page = write_viewer(run_dir)
    total = PAPER_BENCHMARKS * PAPER_QUESTIONS
    with Browser() as browser:
        browser.open(page)
        assert _status(browser) == f"{total} of {total} questions"
        assert browser.evaluate(
            "[...document.querySelectorAll('#head th')].slice(3).map((t) => t.textContent)"
        ) == (PAPER_LABELS)
        ids = _all_ids(browser)
        assert sorted(ids) == sorted(
            f"b{b}/{q}" for b in range(PAPER_BENCHMARKS) for q in range(PAPER_QUESTIONS)
        )
        # the paired test's table, made visible: the report's pair ILR agent_0 vs GRPO agent_0, in one click
        a, b = "ilr agent_0 seed 0", "grpo agent_0 seed 0"
        browser.evaluate(f"document.querySelector('#report-pairs button[data-a=\"{a}\"]').click()")
        picked = browser.evaluate(
            "['f-a', 'f-b', 'f-rel'].map((id) => { const s = document.getElementById(id);"
            " return s.options[s.selectedIndex].text; })"
        )
        assert picked == [a, b, "where they differ"]
        _pick(browser, "f-rel", "")
        expected = _expected_pair(a, b)
        counts = browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('#pair-counts button')]"
            ".map((x) => [x.dataset.rel, Number(x.textContent.split(' ').pop())]))"
        )
        assert counts == {**expected, "differ": expected["a"] + expected["b"]}
        assert _pick(browser, "f-rel", "differ") == f"{expected['a'] + expected['b']} of {total} questions"
        assert 0 < expected["a"] + expected["b"] < total
        shown = _all_ids(browser)
        assert len(shown) == expected["a"] + expected["b"]
        for qid in shown:
            bench, q = (int(x) for x in qid[1:].split("/"))
            assert correct_of(a, bench, q) != correct_of(b, bench, q)
        # a row opens into every model's answer, the chosen pair first
        _open_row(browser, 3)
        cells = browser.evaluate("[...document.querySelectorAll('.detail .cell')].map((c) => c.dataset.col)")
        assert cells[:2] == [a, b] and sorted(cells) == sorted(PAPER_LABELS)
        texts = browser.evaluate("[...document.querySelectorAll('.detail .cell')].map((c) => c.textContent)")
        assert all(f"{label} thinks." in text for label, text in zip(cells, texts, strict=True))
        assert browser.errors == []
        timings = browser.evaluate(
            "(() => { const t0 = performance.now(); document.getElementById('f-rel').value = 'a';"
            " document.getElementById('f-rel').dispatchEvent(new Event('change'));"
            " const t1 = performance.now();"
            " return {firstRenderMs: window.ilrFirstRenderMs, filterMs: t1 - t0}; })()"
        )
        print(json.dumps({"page_mb": page.stat().st_size / 1e6, **timings}))
