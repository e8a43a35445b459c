"""Difficulty and ability numbers against independent readings of their definitions: whole estimates
(values and metadata) compared exactly, fits checked against their own optimality conditions or a plain
optimiser on the documented likelihood, and the exact wording of every refusal."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy.optimize import brentq, minimize
from scipy.special import expit

from ilr_env import difficulty as dif
from ilr_env.tasks import Question


def LOGIT(p: float) -> float:
    return math.log(p / (1 - p))


def _q(i: int, **metadata) -> Question:
    return Question(id=f"q{i}", prompt=f"problem number {i}", answer="0", task="toy", metadata=metadata)


# ----------------------------------------------------------------------------------- rule and levels


def test_mode_names_and_probability_types():
    assert dif.choose_mode(1.0, 0.0) == "compete" and dif.choose_mode(0.0, 1.0) == "cooperate"
    p = dif.p_correct(0, 0)
    assert type(p) is float and p == 0.5
    assert isinstance(dif.p_correct(np.array([0.0, 1.0]), 0.0), np.ndarray)


def test_question_level_reads_numbers_and_nothing_else():
    assert dif.question_level(_q(0, level="Level 3")) == 3.0
    assert dif.question_level(_q(0, level=4)) == 4.0
    assert dif.question_level(_q(0, level=True)) is None
    assert dif.question_level(_q(0, level="Level ?")) is None
    assert dif.question_level(_q(0, tier=2), key="tier") == 2.0


def test_level_difficulty_values_and_metadata_exactly():
    questions = [_q(i, tier=1 + i % 5) for i in range(5)]
    est = dif.level_difficulty(questions, key="tier", levels=(1, 5))
    assert est.kind == "difficulty"
    assert est.values == pytest.approx({f"q{i}": LOGIT((i + 0.5) / 5) / 1.7 for i in range(5)}, rel=1e-12)
    assert est.metadata == {
        "method": "level",
        "params": {"key": "tier", "levels": [1, 5]},
        "counts": {"questions": 5},
    }
    one_level = dif.level_difficulty([_q(0, level=3), _q(1, level=3)], levels=(3, 3))
    assert one_level.values == {"q0": 0.0, "q1": 0.0}


def test_level_difficulty_refusals_say_what_is_wrong():
    with pytest.raises(
        dif.DifficultyError,
        match=re.escape("needs metadata['level'] on every question; missing for 4 (e.g. ['q0', 'q1', 'q2'])"),
    ):
        dif.level_difficulty([_q(i) for i in range(4)])
    with pytest.raises(
        dif.DifficultyError, match=r"^levels=\(1, 2\) does not cover the levels present \(1\.0\.\.5\.0\)$"
    ):
        dif.level_difficulty([_q(0, level=1), _q(1, level=5)], levels=(1, 2))


# ---------------------------------------------------------------------------------------- empirical


def test_empirical_difficulty_values_and_metadata_exactly():
    est = dif.empirical_difficulty({"a": (0, 1), "b": (1, 1), "c": (3, 4)})
    assert est.kind == "difficulty"
    expected = {"a": LOGIT(1.5 / 2) / 1.7, "b": LOGIT(0.5 / 2) / 1.7, "c": LOGIT(1.5 / 5) / 1.7}
    assert est.values == pytest.approx(expected, rel=1e-12)
    assert est.metadata == {
        "method": "empirical",
        "params": {"smoothing": 0.5, "trials": None},
        "counts": {"questions": 3},
    }
    rates = dif.empirical_difficulty({"a": 0.0, "b": 1.0}, trials=1)
    assert rates.values == pytest.approx({"a": LOGIT(1.5 / 2) / 1.7, "b": LOGIT(0.5 / 2) / 1.7}, rel=1e-12)
    assert rates.metadata["params"] == {"smoothing": 0.5, "trials": 1}


@pytest.mark.parametrize(
    "rates, trials, message",
    [
        (
            {},
            None,
            "^pass_rates is empty; pass {question_id: (successes, trials)} for at least one question$",
        ),
        ({"a": (2, 1)}, None, "^pass rate for 'a' is (2, 1); expected (successes, trials), 0 ≤ successes ≤ "),
        ({"a": (0, 0)}, None, "0 ≤ successes ≤ trials, trials ≥ 1$"),
        ({"a": 0.5}, None, "^pass rate for 'a' is a bare rate; pass trials=<attempts per question> or "),
        ({"a": 0.5}, 0, "(successes, trials) pairs$"),
        ({"a": 1.5}, 3, "^pass rate for 'a' is 1.5; expected a value in [0, 1]$"),
    ],
)
def test_empirical_difficulty_refusals(rates, trials, message):
    pattern = (
        "^" * message.startswith("^")
        + re.escape(message.lstrip("^").rstrip("$"))
        + "$" * message.endswith("$")
    )
    with pytest.raises(dif.DifficultyError, match=pattern):
        dif.empirical_difficulty(rates, trials=trials)


# ------------------------------------------------------------------------------------------- files


def test_saved_estimates_are_sorted_indented_json_in_new_folders(tmp_path):
    est = dif.Estimates("ability", {"b": 1.0, "a": -0.5}, {"method": "x"})
    path = dif.save_json(est, tmp_path / "deep" / "er" / "est.json")
    assert path.read_text() == (
        '{\n  "format": "ilr-estimates-v1",\n  "kind": "ability",\n  "metadata": {\n    "method": "x"\n  },\n'
        '  "values": {\n    "a": -0.5,\n    "b": 1.0\n  }\n}\n'
    )
    assert dif.load_json(path, kind="ability") == est


def test_loading_refusals_name_the_file(tmp_path):
    missing = tmp_path / "none.json"
    with pytest.raises(dif.DifficultyError, match=f"^no estimates file at {re.escape(repr(str(missing)))}; "):
        dif.load_json(missing)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "v0"}))
    with pytest.raises(
        dif.DifficultyError, match=f"^{re.escape(repr(str(other)))} is not an ilr estimates file"
    ):
        dif.load_json(other)
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"format": dif.ESTIMATES_FORMAT, "kind": "difficulty", "values": {"q": 1}}))
    assert dif.load_json(bare).metadata == {}
    with pytest.raises(
        dif.DifficultyError,
        match=f"^{re.escape(repr(str(bare)))} holds difficulty estimates, but ability estimates were "
        "expected$",
    ):
        dif.load_json(bare, kind="ability")


# -------------------------------------------------------------------------------------- self-ranking


def test_parse_ranking_takes_the_last_permutation_in_the_text():
    assert dif.parse_ranking("Ranking: 2, 1, 3. On reflection: 1, 3, 2", 3) == [1, 3, 2]
    assert dif.parse_ranking(None, 3) is None
    assert dif.parse_ranking("1", 1) is None


def test_numbered_lines_count_where_their_last_line_ends():
    # a run written on line 2 ends before the numbered list does: the list is the later answer
    text = "1. Q3\n2. Q1 (not 2, 3, 1)\n3. Q2"
    assert dif.parse_ranking(text, 3) == [3, 1, 2]
    # a stray numbered line before the list does not stop the search
    assert dif.parse_ranking("5. Q7 was a typo\n1. Q2\n2. Q1", 2) == [2, 1]


def _recording_ranker(calls):
    def rank(chats):
        calls.append(chats)
        out = []
        for chat in chats:
            k = len(re.findall(r"^Q\d+:", chat[1]["content"], re.MULTILINE))
            out.append("Ranking: " + ", ".join(f"Q{i}" for i in range(1, k + 1)))
        return out

    return rank


def test_rank_difficulty_defaults_are_the_documented_ones():
    long = [Question(id=f"q{i}", prompt="x" * 2001 + str(i), answer="0", task="toy") for i in range(10)]
    default_calls, explicit_calls = [], []
    default = dif.rank_difficulty(long, _recording_ranker(default_calls))
    explicit = dif.rank_difficulty(
        long,
        _recording_ranker(explicit_calls),
        batch_size=8,
        passes=3,
        seed=0,
        max_retries=2,
        max_question_chars=2000,
    )
    assert default == explicit and default_calls == explicit_calls
    assert default.kind == "difficulty"
    assert default.metadata["params"] == {
        "batch_size": 8,
        "batches_per_pass": None,
        "passes": 3,
        "seed": 0,
        "max_retries": 2,
        "prompt_version": dif.load_prompts(None).version,
    }
    assert "x" * 2000 + " [...]" in default_calls[0][0][1]["content"]
    assert "x" * 2001 not in default_calls[0][0][1]["content"]


def test_rank_difficulty_uses_the_prompts_it_is_given_and_counts_every_singleton():
    prompts = {"rank": {"system": "Judge difficulty."}}
    calls = []
    est = dif.rank_difficulty(
        [_q(i) for i in range(5)], _recording_ranker(calls), batch_size=2, passes=2, prompts=prompts
    )
    assert all(chat[0]["content"] == "Judge difficulty." for chats in calls for chat in chats)
    assert est.metadata["params"]["prompt_version"] == dif.load_prompts(prompts).version
    assert est.metadata["params"]["prompt_version"] != dif.load_prompts(None).version
    assert est.metadata["counts"]["singletons_dropped"] == 2
    short = []
    dif.rank_difficulty([_q(i) for i in range(2)], _recording_ranker(short), passes=1, max_question_chars=5)
    assert "Q1: probl [...]\n" in short[0][0][1]["content"]


@pytest.mark.parametrize(
    "kwargs",
    [{"passes": 0}, {"max_retries": -1}, {"batches_per_pass": 0}, {"passes": 1, "max_retries": -1}],
)
def test_rank_difficulty_refuses_bad_settings(kwargs):
    settings = {"passes": 3, "max_retries": 2, "batches_per_pass": None} | kwargs
    expected = (
        f"passes={settings['passes']}, max_retries={settings['max_retries']}, "
        f"batches_per_pass={settings['batches_per_pass']}: need passes ≥ 1, max_retries ≥ 0 and "
        "batches_per_pass ≥ 1 (or None for all)"
    )
    with pytest.raises(dif.DifficultyError, match=f"^{re.escape(expected)}$"):
        dif.rank_difficulty([_q(0), _q(1)], _recording_ranker([]), **kwargs)


def test_rank_difficulty_without_retries_is_allowed():
    est = dif.rank_difficulty([_q(i) for i in range(4)], _recording_ranker([]), max_retries=0, passes=1)
    assert est.metadata["counts"]["retried_calls"] == 0 and len(est.values) == 4


def test_ranking_prompt_clips_long_questions_only():
    exact = Question(id="a", prompt="y" * 2000, answer="0", task="toy")
    chat = dif.ranking_prompt([exact, _q(1)])
    assert "y" * 2000 + "\n" in chat[1]["content"] and "[...]" not in chat[1]["content"]
    longer = Question(id="b", prompt="y" * 2001, answer="0", task="toy")
    assert "Q1: " + "y" * 2000 + " [...]\n" in dif.ranking_prompt([longer, _q(1)])[1]["content"]
    clipped = dif.ranking_prompt([exact, _q(1)], max_question_chars=10)
    assert "Q1: " + "y" * 10 + " [...]\n" in clipped[1]["content"]
    assert chat[0] == {"role": "system", "content": dif.load_prompts(None).template("rank", "system")}
    custom = dif.ranking_prompt([exact, _q(1)], prompts={"rank": {"system": "Rank."}})
    assert custom[0]["content"] == "Rank."


# ------------------------------------------------------------------------------------------- fits


def _score_root(y, d):
    """The MLE of γ solves Σ (y_q − P(γ, D_q)) = 0; brentq finds it to 1e-12 independently."""
    return brentq(
        lambda g: float(np.sum(np.asarray(y, float) - expit(1.7 * (g - np.asarray(d))))), -6, 6, xtol=1e-12
    )


def test_ability_fit_solves_the_score_equation_precisely():
    y, d = [1, 1, 0, 1, 0], [2.0, 1.5, 1.0, -0.5, 3.0]  # asymmetric difficulties
    assert dif.fit_rasch_ability(y, d) == pytest.approx(_score_root(y, d), abs=1e-7)
    assert dif.fit_rasch_ability([bool(v) for v in y], d) == pytest.approx(_score_root(y, d), abs=1e-7)


def test_ability_fit_edges_and_refusals():
    assert dif.fit_rasch_ability([True], [0.0]) == 6.0
    assert dif.fit_rasch_ability([0], [0.0]) == -6.0
    with pytest.raises(
        dif.DifficultyError,
        match=r"^correct \(2, 2\) and difficulties \(2, 2\) must be 1-D and the same non-zero",
    ):
        dif.fit_rasch_ability(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(dif.DifficultyError, match=r"^correct \(0,\) and difficulties \(0,\) must be 1-D"):
        dif.fit_rasch_ability([], [])
    with pytest.raises(
        dif.DifficultyError,
        match=r"^correct must hold only 0/1 \(or bools\) and difficulties only finite numbers$",
    ):
        dif.fit_rasch_ability([1, 0], [0.0, float("inf")])


def test_fit_abilities_estimates_exactly():
    d = {"q0": -1.0, "q1": 0.0, "q2": 1.0, "q3": 2.0}
    results = {
        "a": {"q0": True, "q1": True, "q2": False, "q3": True, "x": True},
        "b": {"q0": True, "q1": True},
    }
    est = dif.fit_abilities(results, d)
    assert est.kind == "ability"
    assert est.values["a"] == pytest.approx(_score_root([1, 1, 0, 1], [-1.0, 0.0, 1.0, 2.0]), abs=1e-7)
    assert est.values["b"] == 6.0  # all correct: the default bound
    assert est.metadata == {
        "method": "rasch_mle",
        "params": {"bound": 6.0, "scale": 1.7},
        "counts": {"questions_per_agent": {"a": 4, "b": 2}},
    }
    assert dif.fit_abilities({"b": results["b"]}, d, bound=3.0).values == {"b": 3.0}
    with pytest.raises(
        dif.DifficultyError, match=r"^agent 'c' has no result on a question with a known difficulty$"
    ):
        dif.fit_abilities({"c": {"zz": True}}, d)


def _penalised_fit(y: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """The documented joint fit read directly: minimise −log L + l2/2 ‖(γ, D)‖², then centre D."""
    mask = ~np.isnan(y)
    yy = np.nan_to_num(y)
    n_a = y.shape[0]

    def f(params):
        g, b = params[:n_a], params[n_a:]
        p = expit(1.7 * (g[:, None] - b[None, :]))
        ll = np.sum(mask * (yy * np.log(p) + (1 - yy) * np.log1p(-p)))
        return -ll + 0.5 * l2 * np.sum(params**2)

    res = minimize(
        f,
        np.zeros(sum(y.shape)),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 200000, "maxfev": 200000},
    )
    g, b = res.x[:n_a], res.x[n_a:]
    return g - b.mean(), b - b.mean()


def test_joint_fit_matches_a_direct_minimisation_of_the_documented_objective():
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1.0]])
    y[1, 2] = np.nan
    for l2, kwargs in ((0.01, {}), (0.5, {"l2": 0.5})):
        g, b = dif.fit_rasch(y, **kwargs)
        g_ref, b_ref = _penalised_fit(y, l2)
        assert g == pytest.approx(g_ref, abs=2e-3) and b == pytest.approx(b_ref, abs=2e-3)
        assert abs(b.mean()) < 1e-12
    as_bool = dif.fit_rasch(np.array([[True, False], [True, True]]))
    as_float = dif.fit_rasch(np.array([[1.0, 0.0], [1.0, 1.0]]))
    assert as_bool[0] == pytest.approx(as_float[0]) and as_bool[1] == pytest.approx(as_float[1])


def test_joint_fit_edges_and_refusals():
    g, b = dif.fit_rasch(np.array([[1.0]]))
    assert b.tolist() == [0.0] and g[0] > 0
    with pytest.raises(
        dif.DifficultyError,
        match=r"^responses must be a non-empty 2-D agents × questions array, got shape \(3,\)$",
    ):
        dif.fit_rasch(np.array([1.0, 0.0, 1.0]))
    with pytest.raises(dif.DifficultyError, match=r"got shape \(2, 0\)$"):
        dif.fit_rasch(np.zeros((2, 0)))
    with pytest.raises(dif.DifficultyError, match=r"^responses must hold only 0, 1 or NaN \(missing\)$"):
        dif.fit_rasch(np.array([[0.5, 1.0]]))


# ---------------------------------------------------------------------------------------- abilities


def test_abilities_by_agent_name_without_models_and_model_count_refusal():
    assert dif.abilities_by_agent({"agent_1": 2, "agent_0": -1}, ["agent_0", "agent_1"]) == {
        "agent_0": -1.0,
        "agent_1": 2.0,
    }
    # keyed by agent name although model names are given: read by agent name
    by_agent = dif.abilities_by_agent({"agent_0": 1, "agent_1": 2}, ["agent_0", "agent_1"], ["m", "m"])
    assert by_agent == {"agent_0": 1.0, "agent_1": 2.0}
    with pytest.raises(dif.DifficultyError, match=r"^1 model names for 2 agents: give one per agent$"):
        dif.abilities_by_agent({"m": 1.0}, ["agent_0", "agent_1"], ["m"])
