"""The ILR ParallelEnv: PettingZoo API conformance, errors, determinism, prompts, rewards, info flow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test
from pettingzoo.utils.conversions import parallel_to_aec

import ilr_env
from ilr_env import difficulty as dif
from ilr_env.env import ILRActionTypeError, ILRConfigError, ILREnvError, ILRParallelEnv, TextObservation
from ilr_env.protocols import PromptError, load_prompts, single_prompt
from ilr_env.registry import EnvNotFoundError, register, unregister
from ilr_env.tasks import DataSourceError, Question, get_task

PROTOCOLS = ("idea3", "debate", "single")


def toy_questions(n: int = 4) -> list[Question]:
    """Sums with known answers and MATH-style levels, so no data files are needed."""
    return [
        Question(
            id=f"toy/{i}",
            prompt=f"What is {i} + {i + 1}?",
            answer=str(2 * i + 1),
            task="toy",
            kind="math",
            metadata={"level": 1 + i % 5},
        )
        for i in range(n)
    ]


def injected_questions(task: str) -> list[Question]:
    """Two questions of ``task``'s kind for tasks whose data is not available offline."""
    kind = get_task(task).kind
    if kind == "code":
        return [
            Question(
                id=f"{task}/inj{i}",
                prompt=f"Write add{i}(a, b) returning a + b.",
                answer="return a + b",
                task=task,
                kind="code",
                metadata={"tests": f"\nassert add{i}(1, 2) == 3\n", "entry_point": f"add{i}"},
            )
            for i in range(2)
        ]
    if kind == "choice":
        return [
            Question(
                id=f"{task}/inj{i}",
                prompt="2 + 2 = ?\n\nA. 3\nB. 4\nC. 5\nD. 6",
                answer="B",
                task=task,
                kind="choice",
                metadata={"choices": ["3", "4", "5", "6"], "gold_index": 1},
            )
            for i in range(2)
        ]
    return [
        Question(id=f"{task}/inj{i}", prompt=f"What is {i} + 1?", answer=str(i + 1), task=task, kind="math")
        for i in range(2)
    ]


def task_questions(task: str) -> list[Question]:
    try:
        return ilr_env.load_questions(task, limit=3)
    except DataSourceError:
        return injected_questions(task)


def expect_api_test_warnings() -> None:
    """Silence what PettingZoo's API tests are known to trigger, and nothing else: they pass a dummy reset
    option (which the env warns about) and advise Box/Discrete spaces, which text observations cannot be."""
    warnings.filterwarnings("ignore", message=r"reset ignores unknown options \['options'\]")
    warnings.filterwarnings("ignore", message="Observation is not a NumPy array")
    warnings.filterwarnings("ignore", message=r"(Observation|Action) space for each agent probably should be")


def make_toy(**kwargs) -> ILRParallelEnv:
    kwargs.setdefault("questions", toy_questions())
    return ilr_env.make("toy", **kwargs)


def play(env: ILRParallelEnv, script, seed: int = 0, options=None):
    """Run one episode; ``script(agent, stage, obs) -> str``; returns the list of step results."""
    obs, infos = env.reset(seed=seed, options=options)
    history = [(obs, infos)]
    while env.agents:
        actions = {a: script(a, infos[a]["stage"], obs[a]) for a in env.agents}
        obs, rew, term, trunc, infos = env.step(actions)
        history.append((obs, rew, term, trunc, infos))
    return history


# ------------------------------------------------------------------------------------ PettingZoo API


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("task", ilr_env.list_tasks())
def test_parallel_api_every_task_and_protocol(task, protocol):
    questions = task_questions(task)
    has_level = all(dif.question_level(q) is not None for q in questions)
    num_agents = 1 if protocol == "single" else 2
    env = ilr_env.make(
        task,
        questions=questions,
        protocol=protocol,
        num_agents=num_agents,
        mode="dynamic" if has_level else 0.5,
    )
    with warnings.catch_warnings():
        expect_api_test_warnings()
        parallel_api_test(env, num_cycles=10)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_parallel_seed_test_on_real_math500(protocol):
    def factory():
        return ilr_env.make(
            "math500", limit=20, protocol=protocol, num_agents=1 if protocol == "single" else 3, mode=0.5
        )

    parallel_seed_test(factory)


@pytest.mark.parametrize(
    ("protocol", "num_agents"), [("idea3", 2), ("idea3", 3), ("debate", 2), ("single", 1)]
)
def test_aec_api_test_through_parallel_to_aec(protocol, num_agents):
    env = parallel_to_aec(make_toy(protocol=protocol, num_agents=num_agents))
    with warnings.catch_warnings():
        expect_api_test_warnings()
        api_test(env, num_cycles=10)


def test_default_make_on_real_math500_uses_level_difficulty():
    env = ilr_env.make("math500")
    _, infos = env.reset(seed=3)
    info = infos["agent_0"]
    level = env.question.metadata["level"]
    assert info["difficulty"] == pytest.approx(
        dif.level_difficulty(env.questions, levels=(1, 5)).values[env.question.id]
    )
    assert info["mode"] == ("cooperate" if info["difficulty"] > 0 else "compete")
    assert 1 <= level <= 5
    with warnings.catch_warnings():
        expect_api_test_warnings()
        parallel_api_test(env, num_cycles=5)


def test_spaces_are_stable_wide_text_spaces():
    env = make_toy(num_agents=3, max_message_chars=123)
    for a in env.possible_agents:
        assert env.observation_space(a) is env.observation_space(a)
        assert env.action_space(a) is env.action_space(a)
        assert env.action_space(a).max_length == 123
        assert {"é", "中", "∫", "😀", "\n"} <= env.action_space(a).character_set
    assert env.action_space("agent_0") is not env.action_space("agent_1")
    obs, _ = env.reset(seed=0)
    assert isinstance(obs["agent_0"], TextObservation) and isinstance(obs["agent_0"], str)
    assert env.observation_space("agent_0").contains(obs["agent_0"])


def test_no_torch_imported_by_ilr_env():
    code = "import sys, ilr_env, ilr_env.difficulty, ilr_env.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------- errors


def test_step_before_reset_names_the_fix():
    env = make_toy()
    with pytest.raises(ILREnvError, match=re.escape("call env.reset(seed=...) first")):
        env.step({"agent_0": "x", "agent_1": "y"})


def test_step_after_end_names_agents_and_fix():
    env = make_toy()
    play(env, lambda a, s, o: "x")
    with pytest.raises(
        ILREnvError,
        match=r"got actions for \['agent_0', 'agent_1'\] but the episode is over.*call env.reset\(\)",
    ):
        env.step({"agent_0": "x", "agent_1": "y"})


def test_missing_live_agent_is_named():
    env = make_toy(num_agents=3)
    env.reset(seed=0)
    with pytest.raises(
        ILREnvError, match=re.escape("missing actions for agent(s) ['agent_2'], whose turn it is")
    ):
        env.step({"agent_0": "x", "agent_1": "y"})


def test_extra_unknown_agent_is_named():
    env = make_toy()
    env.reset(seed=0)
    with pytest.raises(ILREnvError, match=re.escape("unknown agent(s) ['agent_9']")):
        env.step({"agent_0": "x", "agent_1": "y", "agent_9": "z"})


@pytest.mark.parametrize("bad", [3, None, b"bytes", ["list"], 1.5])
def test_non_str_action_names_agent_and_fix(bad):
    env = make_toy()
    env.reset(seed=0)
    with pytest.raises(
        ILRActionTypeError, match=r"action for agent_1 must be a str .*decode token ids first"
    ):
        env.step({"agent_0": "x", "agent_1": bad})
    with pytest.raises(TypeError):  # also a TypeError, for callers that catch that
        env.step({"agent_0": "x", "agent_1": bad})


def test_non_dict_actions_rejected():
    env = make_toy()
    env.reset(seed=0)
    with pytest.raises(ILRActionTypeError, match=r"takes a dict \{agent: message str\}"):
        env.step(["x", "y"])


def test_failed_step_leaves_env_unchanged():
    a, b = make_toy(), make_toy()
    a.reset(seed=5)
    b.reset(seed=5)
    with pytest.raises(ILREnvError):
        a.step({"agent_0": "idea"})
    with pytest.raises(ILREnvError):
        a.step({"agent_0": "idea", "agent_1": 7})
    ra = a.step({"agent_0": "idea", "agent_1": "other"})
    rb = b.step({"agent_0": "idea", "agent_1": "other"})
    assert data_equivalence(ra, rb)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_agents": 0}, "num_agents must be an int ≥ 1"),
        ({"num_agents": "2"}, "num_agents must be an int ≥ 1"),
        ({"num_agents": True}, "num_agents must be an int ≥ 1"),
        ({"protocol": "idea4"}, "did you mean 'idea3'?"),
        ({"protocol": "idea3", "num_agents": 1}, "use protocol='single' for one agent"),
        ({"protocol": "debate", "debate_rounds": 0}, "debate_rounds must be an int ≥ 1"),
        ({"mode": "dynamik"}, "mode must be 'dynamic', 'cooperate', 'compete' or a cooperation probability"),
        ({"mode": 1.5}, "must be a number in [0, 1], got 1.5"),
        ({"mode": True}, "must be a number in [0, 1], got True"),
        ({"max_message_chars": 0}, "max_message_chars must be an int > 0"),
        ({"format_reward": -0.1}, "format_reward must be a finite number ≥ 0, got -0.1"),
        ({"format_reward": float("nan")}, "format_reward must be a finite number ≥ 0"),
        ({"render_mode": "rgb_array"}, "render_mode must be None, 'ansi' or 'human', got 'rgb_array'"),
        ({"limit": 0}, "limit must be None or an int ≥ 1"),
        ({"abilities": {"agent_0": 0.0, "bob": 1.0}}, "unknown key(s) ['bob']"),
        ({"abilities": {"agent_0": 0.0}}, "missing ['agent_1']"),
        ({"abilities": [0.0]}, "abilities list has 1 values for 2 agents"),
        ({"difficulty": {"toy/0": 0.0}}, "3 of 4 have none"),
        ({"difficulty": 3}, "difficulty must be None, 'level', a dict"),
        ({"prompts": {"idea3": {"shares": {}}}}, "unknown prompt key 'idea3.shares'"),
        ({"questions": []}, "questions must be a non-empty list"),
        ({"questions": ["What is 1+1?"]}, "questions[0] is str, not ilr_env.Question"),
    ],
)
def test_config_errors_name_value_and_fix(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_toy(**kwargs)


def test_config_errors_are_typed():
    with pytest.raises(ILRConfigError):
        make_toy(num_agents=0)
    with pytest.raises(PromptError):
        make_toy(prompts={"idea3": {"fuse": {"cooperate": "no peer analyses here {question}"}}})


def test_dynamic_mode_without_difficulty_explains_how_to_supply_it():
    qs = [Question(id="g/0", prompt="1+1?", answer="2", task="g")]
    with pytest.raises(
        ILRConfigError, match=r"no 'level' field.*difficulty=<dict qid->D_q or JSON path>.*mode='cooperate'"
    ):
        ilr_env.make("g", questions=qs)
    env = ilr_env.make("gsm8k", limit=2)  # lazily loaded: the same check runs on first reset
    with pytest.raises(ILRConfigError, match="no 'level' field"):
        env.reset(seed=0)


def test_unknown_env_suggests_closest():
    with pytest.raises(EnvNotFoundError, match=r"did you mean 'math500'"):
        ilr_env.make("math5000")
    with pytest.raises(LookupError):
        ilr_env.make("zzzzzzzz")


# ---------------------------------------------------------------------------------- registry


@pytest.fixture
def preset():
    spec = register(
        "toy-debate-test-v0", task="math500", protocol="debate", debate_rounds=3, mode="compete", limit=5
    )
    yield spec
    unregister(spec.id)


def test_registered_preset_merges_kwargs(preset):
    assert preset.id in ilr_env.list_envs()
    env = ilr_env.make(preset.id)
    assert env.stages == ("round_0", "round_1", "round_2")
    env2 = ilr_env.make(preset.id, debate_rounds=1)
    assert env2.stages == ("round_0",)
    with pytest.raises(ILRConfigError, match="already registered"):
        register(preset.id, task="math500")


def test_every_task_is_an_env():
    assert set(ilr_env.list_tasks()) <= set(ilr_env.list_envs())


# -------------------------------------------------------------------------- determinism & reset


def _random_script(seed: int):
    rng = np.random.default_rng(seed)

    def script(agent, stage, obs):
        return "".join(rng.choice(list("ab{}\\boxed 0123456789"), size=int(rng.integers(0, 40))))

    return script


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_same_seed_same_actions_identical(protocol):
    m = 1 if protocol == "single" else 3
    runs = [
        play(
            make_toy(protocol=protocol, num_agents=m, mode=0.5, format_reward=0.1), _random_script(1), seed=11
        )
        for _ in range(2)
    ]
    assert data_equivalence(runs[0], runs[1])


def test_reset_leaves_nothing_behind():
    used = make_toy(mode=0.5, render_mode="ansi")
    play(used, _random_script(2), seed=1)
    play(used, lambda a, s, o: "PREVIOUS-EPISODE-MARKER \\boxed{1}", seed=2)
    fresh = make_toy(mode=0.5, render_mode="ansi")
    a, b = play(used, _random_script(3), seed=7), play(fresh, _random_script(3), seed=7)
    assert data_equivalence(a, b)
    assert used.transcript() == fresh.transcript()
    assert "PREVIOUS-EPISODE-MARKER" not in used.transcript()


def test_reset_seed_drives_question_and_modes():
    env = make_toy(questions=toy_questions(30), mode=0.5)
    draws = {
        (env.reset(seed=s)[1]["agent_0"]["question_id"], env.reset(seed=s)[1]["agent_1"]["mode"])
        for s in range(40)
    }
    assert len({d[0] for d in draws}) > 5 and {d[1] for d in draws} == {"cooperate", "compete"}
    first = [env.reset(seed=9)[1] for _ in range(2)]
    assert data_equivalence(first[0], first[1])


def test_reset_options_pick_question():
    env = make_toy()
    _, infos = env.reset(options={"question_id": "toy/2"})
    assert infos["agent_0"]["question_id"] == "toy/2" and env.question.id == "toy/2"
    with pytest.raises(ILREnvError, match=r"no question with id 'toy/22'.*closest"):
        env.reset(options={"question_id": "toy/22"})
    outside = Question(id="out/1", prompt="What is 5 + 5?", answer="10", task="out")
    env_fixed = make_toy(mode="compete")
    env_fixed.reset(options={"question": outside})
    assert env_fixed.question is outside
    with pytest.warns(UserWarning, match="unknown options"):
        env.reset(options={"question-id": "toy/2"})


# ----------------------------------------------------------------------------- rewards & grading


def _final(env, final_text, seed=0):
    hist = play(
        env,
        lambda a, s, o: final_text if s in ("fuse", "answer", f"round_{len(env.stages) - 1}") else "idea",
        seed=seed,
        options={"question_id": "toy/1"},
    )
    return hist


def test_rewards_only_at_final_stage_and_info_keys():
    env = make_toy()
    hist = _final(env, "so \\boxed{3}")
    for _, rew, term, trunc, infos in hist[1:-1]:
        assert rew == {"agent_0": 0.0, "agent_1": 0.0} and not any(term.values()) and not any(trunc.values())
        assert "correct" not in infos["agent_0"]
    obs, rew, term, trunc, infos = hist[-1]
    assert rew == {"agent_0": 1.0, "agent_1": 1.0} and all(term.values()) and env.agents == []
    info = infos["agent_0"]
    assert (
        info["extracted"] == "3"
        and info["correct"] is True
        and info["reward"] == 1.0
        and info["grade_reason"]
    )
    assert info["final"] and info["stage"] == "fuse" and info["num_stages"] == 3
    assert obs["agent_0"] == "\n\n".join(m["content"] for m in info["messages"])


@pytest.mark.parametrize(
    ("text", "reward"),
    [("\\boxed{3}", 1.1), ("\\boxed{4}", 0.1), ("\\boxed{}", 0.0), ("the answer is 4", 0.0), ("", 0.0)],
)
def test_format_reward_only_for_non_empty_box(text, reward):
    env = make_toy(format_reward=0.1)
    _, rew, *_ = _final(env, text)[-1]
    assert rew["agent_0"] == pytest.approx(reward)


@pytest.mark.parametrize("task", ["math500", "mmlu_stem", "humaneval", "gsm8k"])
def test_garbage_actions_score_wrong_on_real_tasks(task):
    env = ilr_env.make(task, limit=3, mode="compete")
    env.reset(seed=0)
    space = env.action_space("agent_0")
    space.seed(0)
    while env.agents:
        _, rew, *_, infos = env.step({a: space.sample() for a in env.agents})
    assert rew == {"agent_0": 0.0, "agent_1": 0.0}
    assert all(not i["correct"] for i in infos.values())


def test_score_matches_step_and_does_not_step():
    env = make_toy(format_reward=0.5)
    env.reset(seed=0, options={"question_id": "toy/1"})
    before = env.transcript()
    r, g = env.score("agent_1", "\\boxed{3}")
    assert (r, g.correct) == (1.5, True) and env.transcript() == before
    env.step({"agent_0": "i", "agent_1": "i"})
    env.step({"agent_0": "a", "agent_1": "a"})
    _, rew, *_ = env.step({"agent_0": "\\boxed{3}", "agent_1": "\\boxed{9}"})
    assert rew["agent_0"] == r and rew["agent_1"] == env.score("agent_1", "\\boxed{9}")[0] == 0.5
    with pytest.raises(ILREnvError, match="unknown agent 'agent_7'"):
        env.score("agent_7", "x")


def test_final_prompt_available_only_at_final_stage():
    env = make_toy()
    _, infos = env.reset(seed=0)
    with pytest.raises(
        ILREnvError, match=r"step until infos\['agent_0'\]\['final'\] and \['acting'\] are True"
    ):
        env.final_prompt("agent_0")
    env.step({"agent_0": "i", "agent_1": "i"})
    _, _, _, _, infos = env.step({"agent_0": "a", "agent_1": "a"})
    assert infos["agent_1"]["final"] and env.final_prompt("agent_1") == infos["agent_1"]["messages"]


def test_grader_failure_is_a_wrong_answer_not_a_crash():
    def broken(question, text):
        raise RuntimeError("boom")

    env = make_toy(grader=broken)
    with pytest.warns(UserWarning, match="grader raised RuntimeError"):
        _, rew, *_, infos = _final(env, "\\boxed{3}")[-1]
    assert rew["agent_0"] == 0.0 and infos["agent_0"]["grade_reason"] == "grader_error:RuntimeError"


# --------------------------------------------------------------------------------- messages


def test_long_messages_truncated_for_peers_but_graded_whole():
    env = make_toy(max_message_chars=50)
    env.reset(seed=0, options={"question_id": "toy/1"})
    long_idea = "A" * 49 + "Z" + "HIDDEN" * 10
    obs, *_ = env.step({"agent_0": long_idea, "agent_1": "short"})
    assert "A" * 49 + "Z\n[... 60 more characters not shown]" in obs["agent_1"]
    assert "HIDDEN" not in obs["agent_1"] and "HIDDEN" not in obs["agent_0"]
    env.step({"agent_0": "a", "agent_1": "a"})
    late_box = "x" * 60 + "\\boxed{3}"  # the answer lies beyond what peers see: still graded
    early_box = "\\boxed{3}" + "x" * 60
    assert env.score("agent_0", late_box)[1].correct
    _, rew, *_ = env.step({"agent_0": late_box, "agent_1": early_box})
    assert rew == {"agent_0": 1.0, "agent_1": 1.0}


def test_literal_braces_in_messages_are_not_template_fields():
    env = make_toy()
    env.reset(seed=0)
    obs, *_ = env.step({"agent_0": "try {question} and {peer_ideas} \\frac{a}{b}", "agent_1": ""})
    assert "try {question} and {peer_ideas} \\frac{a}{b}" in obs["agent_1"]
    assert "(no message)" in obs["agent_0"]


def test_unprintable_characters_are_replaced_in_observations():
    env = make_toy()
    env.reset(seed=0)
    obs, *_ = env.step({"agent_0": "bell\x07 private\ue000 ok 😀", "agent_1": "x"})
    assert "bell\ufffd private\ufffd ok 😀" in obs["agent_1"]
    assert env.observation_space("agent_1").contains(obs["agent_1"])


@pytest.mark.parametrize("m", [2, 3, 4])
def test_every_agent_sees_every_peer(m):
    env = make_toy(num_agents=m, mode="compete")
    env.reset(seed=0)
    obs, *_ = env.step({a: f"IDEA-OF-{a}" for a in env.agents})
    for a in env.agents:
        peers = [p for p in env.possible_agents if p != a]
        assert all(f"[{p}]\nIDEA-OF-{p}" in obs[a] for p in peers)
        assert f"Your ideas:\nIDEA-OF-{a}" in obs[a] and f"[{a}]" not in obs[a]
    obs, *_ = env.step({a: f"ANALYSIS-BY-{a}" for a in env.agents})
    for a in env.agents:
        peers = [p for p in env.possible_agents if p != a]
        assert all(f"[{p}]\nANALYSIS-BY-{p}" in obs[a] and f"IDEA-OF-{p}" in obs[a] for p in peers)
        assert f"ANALYSIS-BY-{a}" in obs[a]


def test_debate_rounds_show_previous_round_answers():
    env = make_toy(protocol="debate", debate_rounds=3, num_agents=3, mode="cooperate")
    obs, infos = env.reset(seed=0)
    assert [infos["agent_0"]["stage"]] == ["round_0"] and "previous answer" not in obs["agent_0"]
    obs, *_ = env.step({a: f"R0-{a}" for a in env.agents})
    assert "Your previous answer:\nR0-agent_0" in obs["agent_0"] and "[agent_2]\nR0-agent_2" in obs["agent_0"]
    obs, *_ = env.step({a: f"R1-{a}" for a in env.agents})
    assert "R1-agent_1" in obs["agent_0"] and "R0-agent_1" not in obs["agent_0"]


def test_single_protocol_is_the_test_time_prompt():
    env = make_toy(num_agents=1)
    assert env.protocol == "single" and env.stages == ("answer",)
    _, infos = env.reset(seed=0)
    assert infos["agent_0"]["messages"] == single_prompt(env.question)
    assert infos["agent_0"]["mode"] is None and infos["agent_0"]["final"]


def test_information_flows_through_idea3():
    """agent_1 can only answer after reading a peer's correct idea; its fuse answer changes with the idea."""

    def script(knower_shares_answer: bool):
        def act(agent, stage, obs):
            if agent == "agent_0":
                if stage == "share":
                    return "My key ideas: 1 + 2 = 3" if knower_shares_answer else "My key ideas: none"
                return "agent_1 offered nothing" if stage == "analyse" else "\\boxed{3}"
            if stage == "fuse":
                seen = re.search(r"\[agent_0\]\nMy key ideas: 1 \+ 2 = (\d+)", obs)
                return f"\\boxed{{{seen.group(1)}}}" if seen else "\\boxed{0}"
            return "I do not know"

        return act

    with_idea = play(make_toy(), script(True), options={"question_id": "toy/1"})[-1]
    without = play(make_toy(), script(False), options={"question_id": "toy/1"})[-1]
    assert with_idea[4]["agent_1"]["extracted"] == "3" and with_idea[1]["agent_1"] == 1.0
    assert without[4]["agent_1"]["extracted"] == "0" and without[1]["agent_1"] == 0.0


# ------------------------------------------------------------------------------------- modes


def test_dynamic_mode_follows_irt_rule():
    qs = toy_questions(2)
    env = make_toy(questions=qs, difficulty={"toy/0": 0.5, "toy/1": -0.2}, abilities=[0.0, 1.0])
    _, infos = env.reset(options={"question_id": "toy/0"})
    assert (infos["agent_0"]["mode"], infos["agent_1"]["mode"]) == ("cooperate", "compete")
    assert infos["agent_0"]["p_correct"] == pytest.approx(1 / (1 + np.exp(-1.7 * (0.0 - 0.5))))
    assert infos["agent_0"]["difficulty"] == 0.5
    assert "teammates" in infos["agent_0"]["messages"][0]["content"]
    assert "rivals" in infos["agent_1"]["messages"][0]["content"]
    _, infos = env.reset(options={"question_id": "toy/1"})
    assert infos["agent_0"]["mode"] == "compete"


def test_dynamic_mode_defaults_ability_to_zero_and_reads_json(tmp_path):
    path = dif.save_json(
        dif.Estimates(
            "difficulty", {q.id: (-1.0) ** i for i, q in enumerate(toy_questions())}, {"method": "test"}
        ),
        tmp_path / "d.json",
    )
    env = make_toy(difficulty=str(path))
    _, infos = env.reset(options={"question_id": "toy/1"})
    assert infos["agent_0"]["difficulty"] == -1.0 and infos["agent_0"]["mode"] == "compete"
    abil = dif.save_json(dif.Estimates("ability", {"agent_0": 3.0, "agent_1": -3.0}), tmp_path / "a.json")
    _, infos = make_toy(difficulty=path, abilities=abil).reset(options={"question_id": "toy/0"})
    assert (infos["agent_0"]["mode"], infos["agent_1"]["mode"]) == ("compete", "cooperate")
    with pytest.raises(ILRConfigError, match="holds difficulty estimates"):
        make_toy(abilities=path)


@pytest.mark.parametrize(("p", "expected"), [(0.0, {"compete"}), (1.0, {"cooperate"}), (0, {"compete"})])
def test_fixed_probability_modes(p, expected):
    env = make_toy(mode=p)
    modes = {env.reset(seed=s)[1][a]["mode"] for s in range(10) for a in env.possible_agents}
    assert modes == expected


def test_fixed_modes_report_no_p_correct_without_abilities():
    _, infos = make_toy(mode="cooperate").reset(seed=0)
    assert infos["agent_0"]["difficulty"] is None and infos["agent_0"]["p_correct"] is None


# ------------------------------------------------------------------------------------ prompts


def test_prompt_overrides_merge_and_change_version():
    default = load_prompts()
    custom = load_prompts({"idea3": {"share": {"cooperate": "SHARE {question} as {agent}"}}})
    assert custom.version.startswith(default.version + "+custom-")
    assert custom.template("idea3", "share", "compete") == default.template("idea3", "share", "compete")
    env = make_toy(
        mode="cooperate", prompts={"idea3": {"share": {"cooperate": "SHARE {question} as {agent}"}}}
    )
    obs, _ = env.reset(seed=0, options={"question_id": "toy/0"})
    assert obs["agent_1"].endswith("SHARE What is 0 + 1? as agent_1")
    assert load_prompts({"version": "mine-1"}).version == "mine-1"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"idea3": {"fuse": {"coop": "x"}}}, "unknown prompt key 'idea3.fuse.coop'"),
        ({"idea3": "text"}, "prompt key 'idea3' is a group of templates"),
        ({"system": {"single": 3}}, "prompt 'system.single' must be a string, got int"),
        ({"debate": {"update": "{question} alone"}}, "template debate.update must contain {peer_previous}"),
        ("just a string", "prompts must be a dict of template overrides"),
    ],
)
def test_prompt_override_errors(override, message):
    with pytest.raises(PromptError, match=re.escape(message)):
        load_prompts(override)


def test_answer_format_per_kind():
    ps = load_prompts()
    assert "\\boxed{}" in ps.answer_format("math")
    assert "letter" in ps.answer_format("choice") and "```python" in ps.answer_format("code")
    code_q = injected_questions("humaneval")[0]
    assert "```python" in single_prompt(code_q)[1]["content"]


# ------------------------------------------------------------------------------------- render


def test_render_modes(capsys):
    env = make_toy(render_mode="ansi")
    play(env, lambda a, s, o: f"{a} says {s} \\boxed{{1}}")
    text = env.render()
    assert "agent_1 says analyse" in text and "--- result ---" in text and "mode=" in text
    human = make_toy(render_mode="human")
    human.reset(seed=0)
    human.step({"agent_0": "HELLO-HUMAN", "agent_1": "x"})
    assert "HELLO-HUMAN" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="render_mode=None"):
        assert make_toy().render() is None


def test_infos_are_json_serialisable():
    env = make_toy()
    hist = play(env, lambda a, s, o: "\\boxed{1}")
    json.dumps([h[-1] for h in hist])


def test_reset_mode_overrides():
    env = make_toy(mode="cooperate")
    _, infos = env.reset(seed=0, options={"modes": {"agent_1": "compete"}})
    assert (infos["agent_0"]["mode"], infos["agent_1"]["mode"]) == ("cooperate", "compete")
    assert "rivals" in infos["agent_1"]["messages"][0]["content"]
    _, infos = env.reset(seed=0)
    assert infos["agent_1"]["mode"] == "cooperate"
    with pytest.raises(ILREnvError, match=r"options\['modes'\]\['agent_0'\] is 'rival'"):
        env.reset(options={"modes": {"agent_0": "rival"}})
    with pytest.raises(ILREnvError, match="unknown agent 'agent_5'"):
        env.reset(options={"modes": {"agent_5": "compete"}})
    with pytest.raises(ILREnvError, match="no effect with protocol='single'"):
        make_toy(num_agents=1).reset(options={"modes": {"agent_0": "compete"}})


def test_per_agent_difficulty_gives_each_agent_its_own_mode():
    qs = toy_questions()
    own = {"agent_0": {q.id: 2.0 for q in qs}, "agent_1": {q.id: -2.0 for q in qs}}
    env = make_toy(questions=qs, difficulty=own, abilities=[0.0, 0.0])
    _, infos = env.reset(seed=0)
    assert (infos["agent_0"]["mode"], infos["agent_1"]["mode"]) == ("cooperate", "compete")
    assert (infos["agent_0"]["difficulty"], infos["agent_1"]["difficulty"]) == (2.0, -2.0)
    with pytest.raises(ILRConfigError, match=re.escape("unknown ['bob'], missing ['agent_1']")):
        make_toy(questions=qs, difficulty={"agent_0": own["agent_0"], "bob": {}}).reset(seed=0)
    with pytest.raises(ILRConfigError, match=re.escape("difficulty['agent_1']")):
        make_toy(questions=qs, difficulty={"agent_0": own["agent_0"], "agent_1": {}}).reset(seed=0)


@pytest.mark.parametrize("num_agents", [2, 3])
def test_alternating_turns_pass_the_parallel_api_and_seed_tests(num_agents):
    env = make_toy(num_agents=num_agents, turn_order="alternating")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel_api_test(env, num_cycles=20)
        parallel_seed_test(
            lambda: ilr_env.make(
                "math500", limit=20, num_agents=num_agents, mode=0.5, turn_order="alternating"
            )
        )


def test_alternating_turns_show_what_was_already_written_in_the_stage():
    env = make_toy(turn_order="alternating", mode="cooperate")
    _, infos = env.reset(seed=0)
    written = []
    for turn, (stage, agent) in enumerate(
        [(s, a) for s in ("share", "analyse", "fuse") for a in ("agent_0", "agent_1")]
    ):
        assert [a for a in env.agents if infos[a]["acting"]] == [agent]
        assert (
            infos[agent]["stage"] == stage and infos[agent]["turn"] == turn and infos[agent]["num_turns"] == 6
        )
        prompt = infos[agent]["messages"][-1]["content"]
        if agent == "agent_1":
            assert written[-1] in prompt and "Already written at this stage" in prompt
        else:
            assert "Already written at this stage" not in prompt
        text = f"{agent} at turn {turn}: \\boxed{{{turn}}}"
        written.append(text)
        # the waiting agent's action is ignored, as PettingZoo hands every live agent one
        _, _, term, _, infos = env.step(
            {"agent_0": text, "agent_1": "ignored"} if agent == "agent_0" else {agent: text}
        )
        assert all(term.values()) is (turn == 5)
    assert "ignored" not in env.transcript()
    assert [infos[a]["extracted"] for a in ("agent_0", "agent_1")] == ["4", "5"]
    assert env.final_prompt("agent_1")[-1]["content"].count("agent_0 at turn 4") == 1


def test_alternating_turn_errors():
    with pytest.raises(ILRConfigError, match=re.escape("not defined for protocol='debate'")):
        make_toy(protocol="debate", turn_order="alternating")
    with pytest.raises(ILRConfigError, match=re.escape("turn_order must be one of")):
        make_toy(turn_order="round_robin")
    with pytest.raises(ILRConfigError, match=re.escape("prompt idea3.fuse.cooperate lacks")):
        make_toy(
            turn_order="alternating", prompts={"idea3": {"fuse": {"cooperate": "{question} {peer_analyses}"}}}
        )
    env = make_toy(turn_order="alternating")
    env.reset(seed=0)
    with pytest.raises(ILREnvError, match=re.escape("missing actions for agent(s) ['agent_0'], whose turn")):
        env.step({"agent_1": "hi"})
