"""Byte-for-byte record of seeded episodes: every observation, info, reward and transcript.

The env's protocols, turn plans and prompts are refactored often; this pins what the agents see so that a
refactor cannot change a prompt by one character unnoticed. The grader is a local regex (not the real
one) so that grading changes do not move this record. Regenerate only for an intended change:
``PYTHONPATH=$PWD .venv/bin/python tests/env/test_env_golden.py`` rewrites the fixture.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import ilr_env
from ilr_env.grading import Grade
from ilr_env.tasks import Question

FIXTURE = Path(__file__).with_name("fixtures") / "env_golden.json"

SCENARIOS: dict[str, dict[str, Any]] = {
    "idea3-2-coop": {"num_agents": 2, "protocol": "idea3", "mode": "cooperate"},
    "idea3-3-compete": {"num_agents": 3, "protocol": "idea3", "mode": "compete", "max_message_chars": 60},
    "idea3-2-dynamic": {"num_agents": 2, "protocol": "idea3", "mode": "dynamic", "abilities": [0.5, -1.0]},
    "idea3-3-p": {"num_agents": 3, "protocol": "idea3", "mode": 0.5},
    "idea3-2-alt-coop": {
        "num_agents": 2,
        "protocol": "idea3",
        "mode": "cooperate",
        "turn_order": "alternating",
    },
    "idea3-3-alt-compete": {
        "num_agents": 3,
        "protocol": "idea3",
        "mode": "compete",
        "turn_order": "alternating",
        "max_message_chars": 50,
    },
    "idea3-3-alt-p": {"num_agents": 3, "protocol": "idea3", "mode": 0.3, "turn_order": "alternating"},
    "debate-2-coop": {"num_agents": 2, "protocol": "debate", "mode": "cooperate"},
    "debate-3-rounds3": {"num_agents": 3, "protocol": "debate", "mode": "compete", "debate_rounds": 3},
    "debate-2-dynamic": {"num_agents": 2, "protocol": "debate", "mode": "dynamic"},
    "single-1": {"num_agents": 1},
    "single-2": {"num_agents": 2, "protocol": "single", "mode": "dynamic"},
}


def questions() -> list[Question]:
    return [
        Question(
            id=f"g/{i}",
            prompt=f"Compute {i} + {i + 2}. Use \\frac{{a}}{{b}} if needed; {{question}} stays literal.",
            answer=str(2 * i + 2),
            task="golden",
            kind="math",
            metadata={"level": 1 + i % 5},
        )
        for i in range(5)
    ]


def regex_grader(question: Question, text: str) -> Grade:
    boxes = re.findall(r"\\boxed\{([^{}]*)\}", text)
    if not boxes:
        return Grade(correct=False, reward=0.0, extracted=None, reason="no_answer")
    ok = boxes[-1].strip() == question.answer
    return Grade(
        correct=ok, reward=float(ok), extracted=boxes[-1], reason="match" if ok else "mismatch", has_box=True
    )


def action(agent: str, info: dict[str, Any], episode: int) -> str:
    """Varied scripted replies: right and wrong boxes, empty, long, odd characters, literal placeholders."""
    i = int(agent.rsplit("_", 1)[1])
    kind = (i + info["turn"] + episode) % 5
    if kind == 0:
        return ""
    if kind == 1:
        return f"{agent} at {info['stage']}: try {{peer_ideas}} and \\boxed{{{i + episode}}}"
    if kind == 2:
        return f"{agent} says " + "long reasoning " * 12 + "\\boxed{4}"
    if kind == 3:
        return f"odd\x07chars\ud800 from {agent} \U0001f600 \\boxed{{{2 * i + 2}}}"
    return f"   {agent} {info['stage']} turn {info['turn']}\n\\boxed{{{info['question_id'][-1]}}}"


def plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    if isinstance(x, str):
        return str(x)
    return x


def observed(obs: dict[str, str], infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The infos, after checking that each observation is its chat messages joined (so it is stored once)."""
    for a, o in obs.items():
        assert o == "\n\n".join(m["content"] for m in infos[a]["messages"]), f"{a}: obs is not its messages"
    assert set(obs) == set(infos)
    return infos


def record(name: str) -> list[dict[str, Any]]:
    env = ilr_env.make(
        "golden", questions=questions(), grader=regex_grader, render_mode="ansi", **SCENARIOS[name]
    )
    episodes = []
    for e, (seed, options) in enumerate([(7, None), (None, None), (11, {"question_id": "g/3"})]):
        if e == 2 and env.protocol != "single":
            options = {"question_id": "g/3", "modes": {"agent_0": "compete"}}
        obs, infos = env.reset(seed=seed, options=options)
        steps: list[Any] = [{"infos": observed(obs, infos)}]
        while env.agents:
            actions = {a: action(a, infos[a], e) for a in env.agents}
            obs, rew, term, trunc, infos = env.step(actions)
            steps.append({"rewards": rew, "terms": term, "truncs": trunc, "infos": observed(obs, infos)})
        episodes.append({"steps": plain(steps), "transcript": env.render()})
    return episodes


def compact(x: Any, table: dict[str, int]) -> Any:
    """Long strings (prompts repeat across steps and agents) stored once: ``{"$": index}`` into a table."""
    if isinstance(x, dict):
        return {k: compact(v, table) for k, v in x.items()}
    if isinstance(x, list):
        return [compact(v, table) for v in x]
    if isinstance(x, str) and len(x) > 60:
        return {"$": table.setdefault(x, len(table))}
    return x


def expand(x: Any, strings: list[str]) -> Any:
    if isinstance(x, dict):
        return strings[x["$"]] if set(x) == {"$"} else {k: expand(v, strings) for k, v in x.items()}
    if isinstance(x, list):
        return [expand(v, strings) for v in x]
    return x


def test_env_episodes_match_the_golden_record() -> None:
    stored = json.loads(FIXTURE.read_text(encoding="utf-8"))
    golden = expand(stored["scenarios"], stored["strings"])
    assert sorted(golden) == sorted(SCENARIOS)
    for name in SCENARIOS:
        now = json.loads(json.dumps(record(name), ensure_ascii=False, allow_nan=False))
        for e, (got, want) in enumerate(zip(now, golden[name], strict=True)):
            assert got["transcript"] == want["transcript"], f"{name} episode {e}: transcript differs"
            for s, (g, w) in enumerate(zip(got["steps"], want["steps"], strict=True)):
                assert g == w, f"{name} episode {e} step {s} differs"


def write_fixture(scenarios: dict[str, Any]) -> None:
    table: dict[str, int] = {}
    packed = compact(scenarios, table)
    out = {"strings": list(table), "scenarios": packed}
    FIXTURE.write_text(
        json.dumps(out, ensure_ascii=False, indent=1, allow_nan=False) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    write_fixture({name: record(name) for name in SCENARIOS})
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)", file=sys.stderr)
