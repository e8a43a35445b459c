"""`ilr view`: one reader for evaluation and training records, every question of a compare run side by side,
and any model text embedded safely.

The discussions come from a real evaluation (scripted policies through the env and the lockstep rollout,
so the records have the exact shape `ilr eval` writes); training records are those records plus the fields
training adds (``step``, ``rank``, ``calibrated_reward``). The page itself is checked in a real browser in
tests/experiments/test_viewer_browser.py (slow).
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.cli import main as ilr
from experiments.reports import viewer
from experiments.reports.viewer import (
    PAGE_NAME,
    Steps,
    ViewerInputError,
    add_transcripts,
    collect,
    write_viewer,
)
from ilr_agents.evaluation import evaluate_together
from ilr_agents.policies import SamplingParams, ScriptedPolicy
from ilr_agents.rollout import EpisodeRecord, Sample, StageRecord, write_jsonl
from ilr_env.grading import Grade
from ilr_env.tasks.base import Question

QUESTIONS = [
    Question(id=f"sum/{i}", prompt=f"What is {i} + {i}?", answer=str(2 * i), task="sum", kind="math")
    for i in range(1, 13)
]
HOSTILE = "</script><script>alert(1)</script><!-- \u2028"


def _question_of(chat: list[dict[str, str]]) -> Question:
    return next(q for q in QUESTIONS if q.prompt in chat[-1]["content"])


def agent_0(chat: list[dict[str, str]]) -> str:
    """Opens with a wrong answer on odd questions, then fuses to the right one."""
    q = _question_of(chat)
    i = int(q.id.split("/")[1])
    if "Stage 1 of 3" in chat[-1]["content"]:
        return f"My key idea: it is \\boxed{{{2 * i + i % 2}}}."
    return f"After the discussion, the answer is \\boxed{{{q.answer}}}. {HOSTILE}"


def agent_1(chat: list[dict[str, str]]) -> str:
    """Always the same wrong answer: never changes it."""
    return "I am sure it is \\boxed{0}."


def discussion_records() -> list[EpisodeRecord]:
    policies = {"agent_0": ScriptedPolicy(agent_0, "a0"), "agent_1": ScriptedPolicy(agent_1, "a1")}
    result = evaluate_together(
        policies, QUESTIONS, SamplingParams(max_new_tokens=8), task="sum", env_kwargs={"mode": 0.5}
    )
    return result.records


def write_discussion_run(run_dir: Path) -> Path:
    write_jsonl(discussion_records(), run_dir / "transcripts.jsonl")
    return run_dir


def alone_record(question: dict[str, str], text: str, correct: bool, tokens: int = 5) -> dict[str, Any]:
    """What `ilr compare` evaluates: one agent alone (single protocol), its one greedy answer graded."""
    grade = Grade(correct, float(correct), question["answer"] if correct else "0", "match", has_box=True)
    sample = Sample(text, completion_ids=list(range(tokens)), reward=float(correct), grade=grade)
    stage = StageRecord("answer", 0, {"agent_0": [{"role": "user", "content": question["prompt"]}]})
    stage.said["agent_0"] = sample
    record = EpisodeRecord(0, 0, question, ["agent_0"], {"agent_0": None}, [stage], {"agent_0": [sample]})
    return record.to_dict()


def correct_of(label: str, bench: int, q: int) -> bool:
    """A fixed pattern of right and wrong answers, different per model."""
    return (q * (3 + len(label)) + bench * 7) % 5 < 2


VOCAB = "the sum of two and so we get add both sides hence therefore equals answer is divide by root".split()  # noqa: SIM905


def write_compare_run(
    run_dir: Path, labels: list[str], benchmarks: int, questions: int, words: int = 20
) -> Path:
    """A synthetic `ilr compare` run folder: every label answers every question of every benchmark, with
    ``words`` words of reasoning (drawn at random, so the text compresses like prose, not like a pattern)."""
    rng = random.Random(0)
    for b in range(benchmarks):
        qs = [
            {
                "id": f"b{b}/{q}",
                "prompt": f"Benchmark {b} question {q}: what is {q} + {b}?",
                "answer": str(q + b),
            }
            for q in range(questions)
        ]
        for label in labels:
            records = []
            for q, qd in enumerate(qs):
                reasoning = " ".join(rng.choice(VOCAB) + str(rng.randrange(100)) for _ in range(words))
                text = f"{label} thinks. {reasoning} \\boxed{{{q + b}}}"
                records.append(alone_record(qd, text, correct_of(label, b, q)))
            add_transcripts(run_dir, label, f"bench{b}:test", records, seed=0)
    return run_dir


def training_records(step: int, rank: int, shift: float) -> list[dict[str, Any]]:
    """Training lines: the evaluation record, a second (wrong, unboxed) final sample per agent as in a GRPO
    group, plus ``step``, ``rank`` and each sample's calibrated reward."""
    lines = []
    for record in discussion_records():
        for samples in record.final_samples.values():
            samples.append(Sample("no idea", reward=0.0, grade=Grade(False, 0.0, None, "no_answer")))
        line = record.to_dict()
        for samples in line["final_samples"].values():
            for sample in samples:
                sample["calibrated_reward"] = sample["reward"] + shift
        lines.append({**line, "step": step, "rank": rank})
    return lines


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_discussion_run(tmp_path_factory.mktemp("eval"))


def read_page(page: Path) -> tuple[dict[str, Any], list[Any]]:
    """The page's index and its decoded text chunks, read the way the page's script reads them."""
    text = page.read_text()
    found = {
        name: json.loads(body)
        for name, body in re.findall(
            r'<script type="application/json" id="ilr-(\w+)">(.*?)</script>', text, re.DOTALL
        )
    }
    chunks = [json.loads(gzip.decompress(base64.b64decode(c))) for c in found["chunks"]]
    return found["data"], chunks


def page_rows(page: Path) -> list[dict[str, Any]]:
    """Each row of the page with its cells by column name, texts joined from their chunks."""
    index, chunks = read_page(page)
    rows = []
    for g, qid, question, gold, chunk, pos, cells in index["rows"]:
        bodies = chunks[chunk][pos]
        rows.append(
            {
                "group": index["groups"][g],
                "id": qid,
                "question": question,
                "gold": gold,
                "cells": {
                    index["columns"][c[0]]: {
                        "correct": c[1],
                        "mode": index["modes"][c[2]],
                        "changed": c[3],
                        "shifts": c[4],
                        **body,
                    }
                    for c, body in zip(cells, bodies, strict=True)
                },
            }
        )
    return rows


def test_discussion_rows_hold_modes_turns_finals_and_changed_answers(run_dir: Path) -> None:
    table, problems = collect(run_dir)
    assert problems == [] and [r.id for r in table.rows] == [q.id for q in QUESTIONS]
    for row, q in zip(table.rows, QUESTIONS, strict=True):
        assert row.question == q.prompt and row.gold == q.answer and list(row.cells) == ["agent_0", "agent_1"]
        a0, a1 = row.cells["agent_0"], row.cells["agent_1"]
        assert [t[0] for t in a0["turns"]] == ["share", "analyse", "fuse"]
        assert a0["turns"][-1][1] is None and HOSTILE in a0["finals"][0]["text"]  # the fuse message, once
        assert a0["mode"] in ("cooperate", "compete") and a1["mode"] in ("cooperate", "compete")
        assert a0["correct"] and not a1["correct"]
        odd = int(q.id.split("/")[1]) % 2 == 1
        assert a0["changed"] is odd, (q.id, a0["first"], a0["last"])
        assert a1["changed"] is False and a1["first"] == a1["last"] == "0"
    assert {c["mode"] for r in table.rows for c in r.cells.values()} == {"cooperate", "compete"}


def test_page_embeds_every_row_and_no_text_can_close_the_script(run_dir: Path, tmp_path: Path) -> None:
    page = write_viewer(run_dir, tmp_path / "page.html")
    html = page.read_text()
    assert html.count("</script>") == 3  # the two data blocks' and the code's own; a model's text adds none
    assert "<!--" not in html.split('id="ilr-chunks">', 1)[1]
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    rows = page_rows(page)
    assert [r["id"] for r in rows] == [q.id for q in QUESTIONS]
    assert HOSTILE in rows[0]["cells"]["agent_0"]["finals"][0]["text"]  # shown as text, intact


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=60), min_size=1, max_size=4))
def test_any_text_round_trips_through_the_page(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str]
) -> None:
    run = tmp_path_factory.mktemp("prop")
    qs = [{"id": f"q{i}", "prompt": t, "answer": t[::-1]} for i, t in enumerate(texts)]
    add_transcripts(
        run, "m", "b", [alone_record(q, q["prompt"] + "</script>", i % 2 == 0) for i, q in enumerate(qs)]
    )
    page = write_viewer(run)
    assert page.read_text().count("</script>") == 3
    rows = page_rows(page)
    assert [(r["question"], r["gold"]) for r in rows] == [(q["prompt"], q["answer"]) for q in qs]
    assert [r["cells"]["m"]["finals"][0]["text"] for r in rows] == [q["prompt"] + "</script>" for q in qs]


def test_compare_rows_put_every_model_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(viewer, "CHUNK_BYTES", 2000)  # many chunks: every row must still find its texts
    labels = ["base m", "grpo agent_0 seed 0", "ilr agent_0 seed 0"]
    run = write_compare_run(tmp_path, labels, benchmarks=2, questions=30)
    page = write_viewer(run)
    index, chunks = read_page(page)
    assert len(chunks) > 5 and index["columns"] == labels
    rows = page_rows(page)
    assert len(rows) == 60  # one row per question, not one per (question, model)
    for row in rows:
        b, q = (int(x) for x in re.findall(r"\d+", row["id"]))
        assert row["group"] == f"eval · bench{b}:test" and row["gold"] == str(q + b)
        assert list(row["cells"]) == labels
        for label, cell in row["cells"].items():
            assert cell["correct"] == correct_of(label, b, q)
            assert cell["finals"][0]["text"].startswith(f"{label} thinks.")
            assert cell["finals"][0]["tokens"] == 5 and cell["mode"] == "none"


def test_training_records_are_read_by_the_same_reader(tmp_path: Path) -> None:
    _write_lines(tmp_path / "train" / "ilr-seed0" / "rollouts.rank0.jsonl", training_records(3, 0, 0.25))
    _write_lines(tmp_path / "train" / "ilr-seed0" / "rollouts.rank1.jsonl", training_records(3, 1, -0.5))
    table, problems = collect(tmp_path)
    assert problems == []
    groups = {r.group for r in table.rows}
    assert groups == {"train · ilr-seed0 · step 3"}
    # both ranks drew the same 12 questions at step 3: 24 rows, none hidden behind another
    assert len(table.rows) == 24 and sum(r.id.endswith("#2") for r in table.rows) == 12
    page = write_viewer(tmp_path)
    rows = page_rows(page)
    a0 = rows[0]["cells"]["agent_0"]
    assert [(f["raw"], f["cal"], f["correct"]) for f in a0["finals"]] == [(1.0, 1.25, 1), (0.0, 0.25, 0)]
    assert a0["shifts"] == [0.25, 0.25] and a0["correct"] == 1
    assert rows[12]["cells"]["agent_1"]["shifts"] == [-0.5, -0.5]
    assert [t[0] for t in a0["turns"]] == ["share", "analyse", "fuse"]


def test_old_flat_training_rows_are_named_not_read(tmp_path: Path) -> None:
    old = {"step": 1, "records": [{"question_id": "q1", "agent": "agent_0", "raw": [1.0]}]}
    _write_lines(tmp_path / "rollouts.rank0.jsonl", [old])
    with pytest.raises(ViewerInputError, match=r"rollouts.rank0.jsonl:1 is not an episode record"):
        collect(tmp_path)
    write_discussion_run(tmp_path)  # with readable evaluations beside it, the page says what it skipped
    table, problems = collect(tmp_path)
    assert len(table.rows) == len(QUESTIONS) and problems and "older ilr" in problems[0]


def test_ilr_view_writes_the_page(run_dir: Path) -> None:
    assert ilr(["view", str(run_dir)]) == 0
    assert len(page_rows(run_dir / PAGE_NAME)) == len(QUESTIONS)


@pytest.mark.parametrize("case", ["missing", "not-a-run", "run-below"])
def test_ilr_view_of_a_folder_that_is_not_a_run_is_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run somewhere below the folder does not make the folder a run (``ilr view /tmp``)."""
    folder = tmp_path / "missing" if case == "missing" else tmp_path
    if case == "run-below":
        write_discussion_run((tmp_path / "deep" / "inside").resolve())
        _write_lines(tmp_path / "deep" / "x" / "rollouts.rank0.jsonl", training_records(1, 0, 0.0))
    (tmp_path / "notes.txt").write_text("not a run")
    before = sorted(tmp_path.rglob("*"))
    assert ilr(["view", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ilr view: error: ") and "Traceback" not in err
    assert ("does not exist" if case == "missing" else "is not a run folder") in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def _steps_shown(table: viewer.Table) -> list[int]:
    return sorted({int(r.group.rsplit(" ", 1)[1]) for r in table.rows})


def test_training_steps_are_chosen_and_a_long_run_is_cut_at_a_whole_step(tmp_path: Path) -> None:
    lines = [line for step in (1, 2, 3, 4) for line in training_records(step, 0, 0.0)]
    _write_lines(tmp_path / "rollouts.rank0.jsonl", lines)
    table, problems = collect(tmp_path)
    assert _steps_shown(table) == [1, 2, 3, 4] and problems == []
    assert _steps_shown(collect(tmp_path, Steps.parse("2:4"))[0]) == [2, 3]
    assert _steps_shown(collect(tmp_path, Steps.parse("3:"))[0]) == [3, 4]
    first = [c for r in table.rows if r.group.endswith("step 1") for c in r.cells.values()]
    one_step = sum(viewer._chars(c) for c in first)
    cut, notes = collect(tmp_path, training_chars=one_step + 1)  # step 2 starts past the budget: 1 and 2 kept
    assert _steps_shown(cut) == [1, 2] and len(cut.rows) == 2 * len(QUESTIONS)  # whole steps, never half
    assert notes == [
        (
            "train (rollouts.rank0.jsonl): steps from 3 on left out to keep the page small; "
            "`ilr view RUN --steps 3:` shows them"
        )
    ]
    with pytest.raises(ViewerInputError, match="holds no episode records"):
        collect(tmp_path, Steps.parse("none"))


@pytest.mark.parametrize("bad", ["abc", "1-5", "a:b"])
def test_a_bad_steps_range_is_one_line(bad: str, run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ilr(["view", str(run_dir), "--steps", bad, "--out", str(run_dir / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--steps {bad!r}" in err and not (run_dir / "x.html").exists()


def test_the_reports_pairs_become_column_pairs_seed_by_seed(tmp_path: Path) -> None:
    columns = ["base m"] + [f"{m} agent_0 seed {k}" for m in ("grpo", "ilr") for k in (0, 1)]
    paired = [["ilr agent_0", "grpo agent_0"], ["ilr agent_0", "base m"], ["ilr agent_1", "grpo agent_1"]]
    (tmp_path / "results.json").write_text(json.dumps({"config": {"paired": paired}}))
    assert viewer.report_pairs(tmp_path, columns) == [[3, 1], [4, 2], [3, 0], [4, 0]]
    assert viewer.report_pairs(tmp_path / "no-run", columns) == []
