"""`ilr view`: what the page is built from, and that any model text is embedded safely.

The discussions come from a real evaluation (scripted policies through the env and the lockstep rollout,
so the transcripts have the exact shape `ilr eval` writes). The page itself is checked in a real browser
in tests/experiments/test_viewer_browser.py (slow).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from experiments.cli import main as ilr
from experiments.reports.viewer import PAGE_NAME, ViewerInputError, collect, training_items, write_viewer
from ilr_agents.evaluation import evaluate_together
from ilr_agents.policies import SamplingParams, ScriptedPolicy
from ilr_agents.rollout import write_jsonl
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


def write_discussion_run(run_dir: Path) -> Path:
    policies = {"agent_0": ScriptedPolicy(agent_0, "a0"), "agent_1": ScriptedPolicy(agent_1, "a1")}
    result = evaluate_together(
        policies, QUESTIONS, SamplingParams(max_new_tokens=8), task="sum", env_kwargs={"mode": 0.5}
    )
    write_jsonl(result.records, run_dir / "transcripts.jsonl")
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_discussion_run(tmp_path_factory.mktemp("eval"))


def _embedded(page: Path) -> dict:
    text = page.read_text()
    match = re.search(r'<script type="application/json" id="ilr-data">(.*?)</script>', text, re.DOTALL)
    assert match is not None
    return json.loads(match.group(1))


def test_items_hold_modes_turns_finals_and_changed_answers(run_dir: Path) -> None:
    items = collect(run_dir)
    assert [it["id"] for it in items] == [q.id for q in QUESTIONS]
    for it, q in zip(items, QUESTIONS, strict=True):
        assert it["question"] == q.prompt and it["gold"] == q.answer
        a0, a1 = it["agents"]
        assert [t[0] for t in a0["turns"]] == ["share", "analyse", "fuse"]
        assert a0["mode"] in ("cooperate", "compete") and a1["mode"] in ("cooperate", "compete")
        assert a0["correct"] and not a1["correct"]
        odd = int(q.id.split("/")[1]) % 2 == 1
        assert a0["changed"] is odd, (q.id, a0["first"], a0["last"])
        assert a1["changed"] is False and a1["first"] == a1["last"] == "0"
    assert {a["mode"] for it in items for a in it["agents"]} == {"cooperate", "compete"}


def test_page_embeds_every_item_and_no_text_can_close_the_script(run_dir: Path, tmp_path: Path) -> None:
    page = write_viewer(run_dir, tmp_path / "page.html")
    html = page.read_text()
    assert html.count("</script>") == 2  # the data block's and the code's own; a model's text adds none
    assert "<!--" not in html.split('id="ilr-data">', 1)[1]
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    data = _embedded(page)
    assert len(data["items"]) == len(QUESTIONS)
    assert HOSTILE in data["items"][0]["agents"][0]["finals"][0]["text"]  # shown as text, intact


def test_training_rollouts_become_items_with_raw_and_calibrated_rewards() -> None:
    line = {
        "step": 3,
        "records": [
            {
                "question_id": "q1",
                "agent": agent,
                "mode": mode,
                "question": "What is 2 + 2?",
                "answer": "4",
                "turns": [["share", "idea: \\boxed{5}"], ["analyse", "hmm"]],
                "texts": ["\\boxed{4}", "\\boxed{5}"],
                "raw": [1.0, 0.0],
                "calibrated": [1.5, -0.5],
                "correct": [True, False],
            }
            for agent, mode in (("agent_0", "cooperate"), ("agent_1", "compete"))
        ],
    }
    (item,) = training_items([line], "train · ilr-seed0")
    assert item["group"] == "train · ilr-seed0 · step 3" and item["gold"] == "4"
    a0 = item["agents"][0]
    assert [(f["raw"], f["cal"], f["correct"]) for f in a0["finals"]] == [
        (1.0, 1.5, True),
        (0.0, -0.5, False),
    ]
    assert a0["first"] == "5" and a0["last"] == "4" and a0["changed"] is True


def test_ilr_view_writes_the_page_and_names_a_folder_without_transcripts(
    run_dir: Path, tmp_path: Path
) -> None:
    assert ilr(["view", str(run_dir)]) == 0
    assert len(_embedded(run_dir / PAGE_NAME)["items"]) == len(QUESTIONS)
    with pytest.raises(ViewerInputError, match="no transcripts.jsonl"):
        write_viewer(tmp_path)
    with pytest.raises(ViewerInputError, match="does not exist"):
        write_viewer(tmp_path / "missing")
