"""Difficulty, ability and the cooperate/compete rule: formulas, self-ranking, Rasch fits, JSON files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from ilr_env import difficulty as dif
from ilr_env.tasks import Question

finite = st.floats(min_value=-8, max_value=8, allow_nan=False)


def qs(n: int, levels: bool = True) -> list[Question]:
    return [
        Question(
            id=f"q{i}",
            prompt=f"problem number {i}",
            answer="0",
            task="toy",
            metadata={"level": 1 + i % 5} if levels else {},
        )
        for i in range(n)
    ]


# ------------------------------------------------------------------------------------------- rule


def test_p_correct_formula_and_broadcast():
    assert dif.p_correct(0.0, 0.0) == 0.5
    assert dif.p_correct(1.0, 0.0) == pytest.approx(1 / (1 + np.exp(-1.7)))
    arr = dif.p_correct(np.array([0.0, 1.0]), 1.0)
    assert arr.shape == (2,) and arr[1] == 0.5


@given(finite, finite)
def test_mode_rule_matches_p_below_half(gamma, d):
    mode = dif.choose_mode(gamma, d)
    assert (mode == "cooperate") == (d > gamma)
    p = dif.p_correct(gamma, d)
    if abs(gamma - d) > 1e-9:  # away from the tie, the computed P agrees
        assert (p < 0.5) == (mode == "cooperate")


# ------------------------------------------------------------------------------------------ Rasch


def test_fit_rasch_ability_recovers_known_gamma():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 1.2, 3000)
    for gamma in (-1.5, 0.0, 0.8):
        y = rng.random(d.size) < dif.p_correct(gamma, d)
        assert dif.fit_rasch_ability(y, d) == pytest.approx(gamma, abs=0.1)


def test_fit_rasch_ability_bounds_degenerate_records():
    d = np.linspace(-1, 1, 20)
    assert dif.fit_rasch_ability(np.ones(20, bool), d) == 6.0
    assert dif.fit_rasch_ability(np.zeros(20, bool), d, bound=4.0) == -4.0
    with pytest.raises(dif.DifficultyError, match="same non-zero length"):
        dif.fit_rasch_ability([1, 0], [0.0])
    with pytest.raises(dif.DifficultyError, match="only 0/1"):
        dif.fit_rasch_ability([2, 0], [0.0, 1.0])


def test_fit_rasch_joint_recovers_abilities_and_difficulties():
    rng = np.random.default_rng(1)
    gamma = rng.normal(0, 1, 40)
    d = rng.normal(0, 1, 400)
    d -= d.mean()
    y = (rng.random((40, 400)) < dif.p_correct(gamma[:, None], d[None, :])).astype(float)
    y[rng.random(y.shape) < 0.05] = np.nan  # missing responses are allowed
    g_hat, d_hat = dif.fit_rasch(y)
    assert abs(d_hat.mean()) < 1e-9
    assert np.sqrt(np.mean((g_hat - gamma) ** 2)) < 0.2
    assert np.sqrt(np.mean((d_hat - d) ** 2)) < 0.35
    assert np.corrcoef(d_hat, d)[0, 1] > 0.95


def test_fit_abilities_estimates():
    d = {f"q{i}": v for i, v in enumerate(np.linspace(-2, 2, 41))}
    est = dif.fit_abilities(
        {"a": {q: v < 0.5 for q, v in d.items()}, "b": {q: v < -0.5 for q, v in d.items()}}, d
    )
    assert est.kind == "ability" and est.values["a"] > est.values["b"]
    assert est.metadata["counts"]["questions_per_agent"] == {"a": 41, "b": 41}


# --------------------------------------------------------------------------------- alternatives


def test_level_difficulty_math_scale():
    est = dif.level_difficulty(qs(5))
    assert [round(est.values[f"q{i}"], 2) for i in range(5)] == [-1.29, -0.5, 0.0, 0.5, 1.29]
    strings = [Question(id="s", prompt="p", answer="a", task="t", metadata={"level": "Level 4"})]
    assert dif.level_difficulty(strings, levels=(1, 5)).values["s"] == pytest.approx(est.values["q3"])
    with pytest.raises(dif.DifficultyError, match=r"missing for 3 .*rank_difficulty or empirical_difficulty"):
        dif.level_difficulty(qs(3, levels=False))


def test_empirical_difficulty_smoothed_and_monotone():
    est = dif.empirical_difficulty({"never": (0, 4), "half": (2, 4), "always": (4, 4)})
    v = est.values
    assert v["never"] > v["half"] > v["always"] and np.isfinite(list(v.values())).all()
    assert v["half"] == pytest.approx(0.0)
    assert dif.empirical_difficulty({"x": 0.5}, trials=4).values["x"] == pytest.approx(0.0)
    with pytest.raises(dif.DifficultyError, match="pass trials="):
        dif.empirical_difficulty({"x": 0.5})
    with pytest.raises(dif.DifficultyError, match=re.escape("expected (successes, trials)")):
        dif.empirical_difficulty({"x": (5, 4)})


# ----------------------------------------------------------------------------------- ranking parse


@pytest.mark.parametrize(
    ("text", "k", "expected"),
    [
        ("3, 1, 2", 3, [3, 1, 2]),
        ("[3,1,2]", 3, [3, 1, 2]),
        ("1. Q3\n2. Q1\n3. Q2", 3, [3, 1, 2]),
        ("1) Question 2 (easy)\n2) Question 3\n3) Question 1 (hard)", 3, [2, 3, 1]),
        ("Sure! Let me think. Q1 has 2 steps.\nRanking: Q2, Q3, Q1", 3, [2, 3, 1]),
        ("Q4 < Q2 < Q1 < Q3", 4, [4, 2, 1, 3]),
        ("Q2 -> Q1", 2, [2, 1]),
        ("first draft: 1, 2, 3. Final: 3, 2, 1", 3, [3, 2, 1]),
        ("Q2 > Q1 > Q3", 3, None),
        ("3, 1", 3, None),
        ("3, 1, 1", 3, None),
        ("1, 2, 3, 4", 3, None),
        ("", 3, None),
        ("I cannot rank these.", 2, None),
    ],
)
def test_parse_ranking(text, k, expected):
    assert dif.parse_ranking(text, k) == expected


@given(st.text(max_size=200), st.integers(2, 6))
def test_parse_ranking_never_invents(text, k):
    out = dif.parse_ranking(text, k)
    assert out is None or sorted(out) == list(range(1, k + 1))


# ---------------------------------------------------------------------------------- self-ranking


def oracle_ranker(truth: dict[str, float], prompt_ids: dict[str, str]):
    """Orders each batch by a hidden true difficulty, replying in the format the prompt asks for."""

    def rank(chats):
        replies = []
        for chat in chats:
            labels = re.findall(r"^Q(\d+): (problem number \d+)", chat[1]["content"], re.MULTILINE)
            ordered = sorted(labels, key=lambda lab: truth[prompt_ids[lab[1]]])
            replies.append("Sure! Let me compare them.\nRanking: " + ", ".join(f"Q{n}" for n, _ in ordered))
        return replies

    return rank


def test_rank_difficulty_recovers_the_true_order():
    questions = qs(40)
    rng = np.random.default_rng(3)
    truth = {q.id: float(v) for q, v in zip(questions, rng.normal(size=40), strict=True)}
    ranker = oracle_ranker(truth, {q.prompt: q.id for q in questions})
    est = dif.rank_difficulty(questions, ranker, batch_size=8, passes=6, seed=0)
    assert set(est.values) == set(truth)
    rho = spearmanr([est.values[k] for k in truth], list(truth.values())).statistic
    assert rho > 0.9
    counts = est.metadata["counts"]
    assert counts == {
        "batches": 30,
        "parsed": 30,
        "retried_calls": 0,
        "skipped": 0,
        "singletons_dropped": 0,
        "questions": 40,
        "unranked": 0,
    }
    again = dif.rank_difficulty(questions, ranker, batch_size=8, passes=6, seed=0)
    assert again == est
    assert all(abs(v) < 3 for v in est.values.values())


def test_rank_difficulty_retries_then_skips_never_invents():
    questions = qs(10)
    calls = []

    def flaky(chats):
        calls.append(len(chats))
        return (
            ["no idea"] * len(chats)
            if len(calls) == 1
            else [
                (
                    "Ranking: "
                    + ", ".join(
                        f"Q{i}"
                        for i in range(1, 1 + len(re.findall(r"^Q\d+:", c[1]["content"], re.MULTILINE)))
                    )
                )
                for c in chats
            ]
        )

    est = dif.rank_difficulty(questions, flaky, batch_size=5, passes=1, max_retries=1)
    assert calls == [2, 2] and est.metadata["counts"]["retried_calls"] == 1 and len(est.values) == 10

    est = dif.rank_difficulty(
        questions, lambda chats: ["1, 1"] * len(chats), batch_size=5, passes=2, max_retries=2
    )
    counts = est.metadata["counts"]
    assert est.values == {} and counts["skipped"] == counts["batches"] == 4 and counts["unranked"] == 10
    assert counts["retried_calls"] == 4


def test_rank_difficulty_batches_per_pass_and_singletons():
    questions = qs(9)
    ranker = oracle_ranker({q.id: i for i, q in enumerate(questions)}, {q.prompt: q.id for q in questions})
    est = dif.rank_difficulty(questions, ranker, batch_size=4, passes=1)
    assert est.metadata["counts"]["singletons_dropped"] == 1 and est.metadata["counts"]["unranked"] == 1
    est = dif.rank_difficulty(questions, ranker, batch_size=3, batches_per_pass=1, passes=2)
    assert est.metadata["counts"]["batches"] == 2 and len(est.values) <= 6


def test_rank_difficulty_rejects_bad_input():
    with pytest.raises(dif.DifficultyError, match="at least 2 questions per batch"):
        dif.rank_difficulty(qs(4), lambda c: [], batch_size=1)
    with pytest.raises(dif.DifficultyError, match="must return one string per chat"):
        dif.rank_difficulty(qs(4), lambda c: ["1, 2"], batch_size=2)
    with pytest.raises(dif.DifficultyError, match="unique ids"):
        dif.rank_difficulty(qs(1), lambda c: [])


def test_ranking_prompt_lists_every_question():
    chat = dif.ranking_prompt(qs(3))
    assert [m["role"] for m in chat] == ["system", "user"]
    assert all(f"Q{i + 1}: problem number {i}" in chat[1]["content"] for i in range(3))
    assert "easiest to hardest" in chat[1]["content"] and "Q1 to Q3" in chat[1]["content"]


# -------------------------------------------------------------------------------------- JSON


def test_save_and_load_round_trip(tmp_path):
    est = dif.level_difficulty(qs(5))
    path = dif.save_json(est, tmp_path / "sub" / "d.json")
    assert dif.load_json(path) == est and dif.load_json(path, kind="difficulty") == est
    assert json.loads(path.read_text())["metadata"]["method"] == "level"
    with pytest.raises(
        dif.DifficultyError, match="holds difficulty estimates, but ability estimates were expected"
    ):
        dif.load_json(path, kind="ability")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(dif.DifficultyError, match="is not an ilr estimates file"):
        dif.load_json(tmp_path / "other.json")
    with pytest.raises(dif.DifficultyError, match="no estimates file"):
        dif.load_json(tmp_path / "missing.json")


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), finite, min_size=1, max_size=5))
def test_save_load_preserves_values(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("est") / "a.json"
    est = dif.Estimates("ability", values, {"method": "test"})
    assert dif.load_json(dif.save_json(est, path)) == est


def test_abilities_are_matched_by_agent_name_with_eleven_agents():
    """Sorted keys put agent_10 before agent_2; matching by name must not."""
    agents = [f"agent_{i}" for i in range(12)]
    values = {a: float(i) for i, a in enumerate(agents)}
    shuffled = dict(sorted(values.items()))  # lexicographic order: agent_0, agent_1, agent_10, agent_11, ...
    assert list(shuffled)[2] == "agent_10"
    assert dif.abilities_by_agent(shuffled, agents) == values


def test_abilities_keyed_by_model_name():
    agents = ["agent_0", "agent_1", "agent_2"]
    models = ["org/small", "org/big", "org/small"]
    got = dif.abilities_by_agent({"org/big": 1.5, "org/small": -0.5}, agents, models)
    assert got == {"agent_0": -0.5, "agent_1": 1.5, "agent_2": -0.5}


@pytest.mark.parametrize(
    ("values", "models", "message"),
    [
        ({"agent_0": 0.0, "agent_1": 1.0, "agent_7": 2.0}, None, "unknown key(s) ['agent_7']"),
        ({"org/small": 0.0, "org/other": 1.0}, ["org/small", "org/big"], "unknown key(s) ['org/other']"),
        ({"org/small": 0.0}, ["org/small", "org/big"], "lack the model(s) ['org/big']"),
        ({"org/small": 0.0, "agent_1": 1.0}, ["org/small", "org/big"], "mix agent names and model names"),
        ({"agent_0": 0.0}, None, "missing ['agent_1']"),
    ],
)
def test_abilities_unknown_or_missing_keys_are_errors(values, models, message):
    with pytest.raises(dif.DifficultyError, match=re.escape(message)):
        dif.abilities_by_agent(values, ["agent_0", "agent_1"], models)
