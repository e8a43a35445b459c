"""Self-ranked difficulty with the agents' own policies: scripted rankers, zoo models, the CLI, the file."""

from __future__ import annotations

import json
import re

import pytest
from scipy.stats import spearmanr

from experiments.cli import main as ilr_main
from ilr_agents.policies import Completion, SamplingParams, ScriptedPolicy
from ilr_agents.self_ranking import (
    PolicyRanker,
    SelfRankError,
    SelfRankSettings,
    difficulty_for_agents,
    self_rank,
)
from ilr_env import difficulty as dif
from ilr_env.tasks import Question


def questions(n: int) -> list[Question]:
    """Question i has true difficulty i (its prompt says so), so a sensible ranker orders by it."""
    return [
        Question(id=f"q{i}", prompt=f"difficulty {i}: what is {i} + 1?", answer=str(i + 1), task="toy")
        for i in range(n)
    ]


def ranking_reply(chat: list[dict[str, str]], reverse: bool = False) -> str:
    """Read the labelled problems of a ranking prompt and order them by the difficulty they state."""
    found = re.findall(r"Q(\d+): difficulty (\d+)", chat[-1]["content"])
    order = sorted(found, key=lambda lv: int(lv[1]), reverse=reverse)
    return "Sure! Let me think.\nRanking: " + ", ".join(f"Q{label}" for label, _ in order)


def test_scripted_rankers_give_per_model_and_pooled_difficulty():
    qs = questions(20)
    policies = {
        "good": ScriptedPolicy(ranking_reply, name="good"),
        "backwards": ScriptedPolicy(lambda c: ranking_reply(c, reverse=True), name="backwards"),
    }
    est = self_rank(qs, policies, SelfRankSettings(batch_size=5, passes=3, seed=1))
    per = est.metadata["per_model"]
    truth = list(range(20))
    good = [per["good"]["values"][q.id] for q in qs]
    back = [per["backwards"]["values"][q.id] for q in qs]
    assert spearmanr(truth, good).statistic > 0.8 and spearmanr(truth, back).statistic < -0.8
    assert abs(sum(est.values.values())) < 1.0  # two opposite rankings pool to about the middle
    assert est.metadata["models"] == ["good", "backwards"]
    assert est.metadata["params"]["batch_size"] == 5 and est.metadata["params"]["passes"] == 3
    assert est.metadata["params"]["prompt_version"] == "ilr-prompts-v1"
    assert per["good"]["counts"]["parsed"] == 12 and per["good"]["counts"]["skipped"] == 0
    # each model is asked once for the probe (its batches cover the first pass), then once per pass
    assert [len(b) for b in policies["good"].chats_seen] == [4, 4, 4, 4]
    assert per["good"]["parse_rate"] == 1.0 and per["good"]["counts"]["fallback"] == 0
    agents = difficulty_for_agents(
        est, ["agent_0", "agent_1", "agent_2"], ["good", "backwards", "good"], shared=False
    )
    assert agents["agent_0"] == agents["agent_2"] == per["good"]["values"]
    assert difficulty_for_agents(est, ["agent_0"], ["good"], shared=True)["agent_0"] == est.values


def test_unparseable_replies_are_counted_never_invented():
    qs = questions(9)
    policies = {"mumbles": ScriptedPolicy(["I think they are all similar.", "Q1 then Q1 then Q2"])}
    est = self_rank(qs, policies, SelfRankSettings(batch_size=4, passes=2, max_retries=1, min_parse_rate=0))
    entry = est.metadata["per_model"]["mumbles"]
    counts = entry["counts"]
    assert entry["values"] == {}  # the ranked values hold only what a parsed reply said
    assert counts["parsed"] == 0 and counts["skipped"] == counts["batches"] == 4
    assert counts["unranked"] == counts["fallback"] == 9 and est.metadata["counts"]["unranked_shared"] == 9
    # the documented fallback, counted: the middle of the scale when nothing was ranked
    assert entry["fallback_value"] == 0.0 and sorted(entry["fallback_ids"]) == sorted(q.id for q in qs)
    assert est.values == {q.id: 0.0 for q in qs} and est.metadata["counts"]["fallback_shared"] == 9
    with pytest.raises(SelfRankError, match="no ranking by model"):
        difficulty_for_agents(est, ["agent_0"], ["other"], shared=False)


class _RecordingPolicy:
    """A policy double that answers badly once per chat, then well, and records the sampling used."""

    name = "recording"

    def __init__(self) -> None:
        self.params: list[SamplingParams] = []
        self.seen: set[str] = set()

    def generate(self, chats, params):
        self.params.append(params)
        out = []
        for chat in chats:
            key = json.dumps(chat)
            out.append([Completion(ranking_reply(chat) if key in self.seen else "no idea")])
            self.seen.add(key)
        return out


def test_first_ask_is_greedy_and_a_retry_samples():
    policy = _RecordingPolicy()
    settings = SelfRankSettings(batch_size=3, passes=1, seed=5, min_parse_rate=0)  # no probe
    est = self_rank(questions(6), {"r": policy}, settings)
    assert [p.temperature for p in policy.params] == [0.0, 0.7]
    assert policy.params[1].seed is not None
    assert len(est.values) == 6 and est.metadata["per_model"]["r"]["counts"]["retried_calls"] == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"batch_size": 1}, "self_rank.batch_size=1 is invalid"),
        ({"passes": "3"}, "self_rank.passes='3' is invalid"),
        ({"shared": 1}, "self_rank.shared=1 is invalid"),
        ({"passses": 3}, "unknown self_rank setting(s) ['passses']"),
    ],
)
def test_settings_errors_name_the_value(data, message):
    with pytest.raises(SelfRankError, match=re.escape(message)):
        SelfRankSettings.from_dict(data)


def test_policy_ranker_returns_one_reply_per_chat():
    ranker = PolicyRanker(ScriptedPolicy(["a", "b", "c"]), SelfRankSettings())
    chat = [{"role": "user", "content": "x"}]
    assert ranker([chat, [{"role": "user", "content": "y"}]]) == ["a", "b"]
    assert ranker([chat]) == ["c"] and ranker.calls == 2


def test_ilr_difficulty_command_with_two_zoo_models(tmp_path, capsys):
    """Random zoo models never write a ranking: the command still finishes and counts every failure."""
    out = tmp_path / "d.json"
    code = ilr_main(
        [
            "difficulty", "--task", "math500", "--split", "test", "--limit", "4", "--models", "tiny",
            "tiny-llama", "--out", str(out), "--batch-size", "2", "--passes", "1", "--max-retries", "1",
            "--max-new-tokens", "4", "--device", "cpu", "--min-parse-rate", "0",
        ]
    )  # fmt: skip
    assert code == 0
    est = dif.load_json(out, kind="difficulty")
    assert est.metadata["models"] == ["tiny", "tiny-llama"]
    assert est.metadata["task"] == "math500" and est.metadata["params"]["batch_size"] == 2
    for name in ("tiny", "tiny-llama"):
        counts = est.metadata["per_model"][name]["counts"]
        assert counts["batches"] == 2 and counts["parsed"] + counts["skipped"] == 2
        assert len(est.metadata["per_model"][name]["values"]) == 4 - counts["unranked"]
        assert counts["fallback"] == counts["unranked"]
    assert "tiny-llama:" in capsys.readouterr().out


def test_ilr_difficulty_stops_below_the_parse_rate_and_prints_it(tmp_path, capsys):
    """The issue's command: random zoo models write no ranking, so it exits non-zero after the probe."""
    out = tmp_path / "d.json"
    args = ["difficulty", "--task", "math500", "--split", "test", "--limit", "8", "--models", "tiny"]
    code = ilr_main([*args, "smollm2-135m", "--out", str(out), "--max-new-tokens", "8", "--device", "cpu"])
    assert code != 0 and not out.exists()
    err = capsys.readouterr().err
    assert "0 of 1 probe ranking batches parsed (parse rate 0%)" in err and "min_parse_rate=0.5" in err


def _half_parsing(chat: list[dict[str, str]]) -> str:
    """Parses for batches whose first problem has an even difficulty, never otherwise (retries included)."""
    first = re.search(r"Q1: difficulty (\d+)", chat[-1]["content"])
    return ranking_reply(chat) if first and int(first.group(1)) % 2 == 0 else "no idea"


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.6, 0.9])
def test_the_threshold_stops_exactly_the_rates_below_it(threshold):
    qs = questions(40)
    settings = SelfRankSettings(
        batch_size=4, passes=2, max_retries=0, min_parse_rate=threshold, probe_batches=10
    )
    probe = dif.rank_difficulty(qs, lambda chats: [_half_parsing(c) for c in chats], batch_size=4, passes=1)
    rate = probe.metadata["counts"]["parsed"] / probe.metadata["counts"]["batches"]
    assert 0.2 < rate < 0.8  # the double parses about half of the time
    policy = ScriptedPolicy(_half_parsing, name="half")
    if threshold > rate:
        with pytest.raises(SelfRankError, match=r"parse rate \d+%.*min_parse_rate="):
            self_rank(qs, {"half": policy}, settings)
        assert len(policy.chats_seen) == 1  # stopped after the probe, before the full pass
    else:
        est = self_rank(qs, {"half": policy}, settings)
        entry = est.metadata["per_model"]["half"]
        assert entry["counts"]["fallback"] == len(entry["fallback_ids"]) == 40 - len(entry["values"])
        assert set(difficulty_for_agents(est, ["a"], ["half"], shared=False)["a"]) == {q.id for q in qs}
