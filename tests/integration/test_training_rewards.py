"""Reward functions in TRL's shape: correctness, the strict format term, a reward model, combinations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_agents.ilr_step import final_samples
from ilr_agents.policies import Completion, SamplingParams, ScriptedPolicy
from ilr_agents.rewards import (
    RawReward,
    Reply,
    RewardInputError,
    RewardModelReward,
    TRLRawReward,
    build_tiny_reward_model,
    lenient_correctness,
    question_column,
    squash_score,
)
from ilr_agents.rollout import run_episodes
from ilr_agents.training_data import plain_prompt
from ilr_env import Question, grade
from ilr_env.grading import Grade, format_bonus, last_boxed

Q = Question(id="q1", prompt="What is 2 + 3?", answer="5", task="toy")


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory: pytest.TempPathFactory) -> RewardModelReward:
    pytest.importorskip("transformers")
    return RewardModelReward(build_tiny_reward_model(str(tmp_path_factory.mktemp("rm"))), batch_size=2)


def test_correctness_reads_question_column_or_answer_column() -> None:
    correctness = TRLRawReward(RawReward())
    comps = [chat("so \\boxed{5}"), chat("\\boxed{6}"), "The answer is 5"]
    by_json = correctness(prompts=["p"] * 3, completions=comps, question_json=[question_column(Q)] * 3)
    by_answer = correctness(prompts=["What is 2 + 3?"] * 3, completions=comps, answer=["5"] * 3)
    assert by_json == by_answer
    assert by_json[0] == 1.0 and by_json[1] == 0.0
    assert correctness.__name__ == "correctness_reward"
    with pytest.raises(RewardInputError, match="question_json"):
        correctness(prompts=["p"], completions=["x"])


def test_format_bonus_only_for_non_empty_box_in_untruncated_reply() -> None:
    fmt = TRLRawReward(RawReward(format_bonus=0.1), eos_token_ids=[9])
    comps = ["\\boxed{12}", "\\boxed{}", "\\boxed{ }", "no box", "\\boxed{12}"]
    column = [question_column(Q)] * 5
    ids = [[1, 9], [1, 9], [1, 9], [1, 9], [1, 2]]
    out = fmt(prompts=[""] * 5, completions=comps, question_json=column, completion_ids=ids)
    assert out == [0.1, 0.0, 0.0, 0.0, 0.0]  # last one was cut at the token limit (no EOS)
    assert fmt(prompts=[""], completions=["\\boxed{3}"], question_json=column[:1], truncated=[True]) == [0.0]
    with pytest.raises(ValueError, match="bonus"):
        RawReward(format_bonus=-1.0)


@given(st.text(max_size=40))
@settings(max_examples=100, deadline=None)
def test_box_parser_never_crashes_and_round_trips(inner: str) -> None:
    last_boxed(inner)
    if not any(ch in inner for ch in "{}\\"):  # the grader's parser strips the box's outer whitespace
        assert (last_boxed(f"x \\boxed{{{inner}}} y") or "") == inner.strip()


def test_nested_box() -> None:
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{unclosed") is None


def graded(texts: list[str], truncated: bool = False) -> list[Reply]:
    return [Reply(t, grade(Q, t), truncated) for t in texts]


def test_terms_add_up_and_bad_kinds_are_named() -> None:
    raw = RawReward(format_bonus=0.25)
    assert raw([Q, Q, Q], graded(["\\boxed{5}", "\\boxed{6}", "5"])) == [1.25, 0.25, 0.0]
    assert raw([Q], graded(["\\boxed{5}"], truncated=True)) == [1.0]  # a cut reply earns no format term
    with pytest.raises(RewardInputError, match="unknown reward 'rm'"):
        RawReward(kind="rm")
    with pytest.raises(RewardInputError, match="needs reward_model"):
        RawReward(kind="graded")


def test_reward_model_scores_are_graded_batched_and_deterministic(reward_model: RewardModelReward) -> None:
    answers = ["\\boxed{5}", "I think 6", "five", "\\boxed{5}"]
    alone = TRLRawReward(RawReward(kind="reward_model", reward_model=reward_model))
    first = alone(
        prompts=[[{"role": "user", "content": Q.prompt}]] * 4,
        completions=[chat(a) for a in answers],
        answer=["5"] * 4,
    )
    again = RewardModelReward(reward_model.model.name_or_path, batch_size=4).score([Q.prompt] * 4, answers)
    assert len(set(first[:3])) == 3  # graded: different answers, different scores
    assert first[0] == pytest.approx(first[3], abs=1e-6)
    # batch size and prompt form do not matter; the reward is the logit squashed into [0, 1]
    assert first == pytest.approx([squash_score(x) for x in again], abs=1e-5)
    graded = RawReward(kind="graded", reward_model=reward_model, reward_model_weight=0.5)
    scores = graded([Q, Q], [Reply(t, grade(Q, t)) for t in ("\\boxed{5}", "\\boxed{6}")])
    assert scores[0] - scores[1] > 0.5  # correctness dominates, the reward model grades within
    rm_scores = reward_model.score([Q.prompt] * 2, ["\\boxed{5}", "\\boxed{6}"])
    expected = [1.0 + 0.5 * squash_score(rm_scores[0]), 0.5 * squash_score(rm_scores[1])]
    assert scores == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("lenient", [False, True])
def test_the_reward_trusts_the_grade_it_is_given(lenient: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Grade once: the env graded the sample; the reward reads that grade (here one that disagrees with
    the text, to tell them apart) and never grades the reply again."""
    from ilr_agents import rewards

    def no_grading(*args: object, **kwargs: object) -> None:
        raise AssertionError("graded again")

    monkeypatch.setattr(rewards, "grade", no_grading)
    said_right = Grade(correct=True, reward=1.0, extracted="5", reason="match", has_box=True)
    said_wrong = Grade(correct=False, reward=0.0, extracted="6", reason="mismatch", has_box=True)
    raw = RawReward(format_bonus=0.1, lenient_answer=lenient)
    replies = [Reply("\\boxed{6}", said_right), Reply("\\boxed{5}", said_wrong), Reply("no box", None)]
    assert raw([Q] * 3, replies) == pytest.approx([1.1, 0.1, 0.0])


@pytest.mark.parametrize(
    "text", ["\\boxed{5}", "\\boxed{6}", "\\boxed{}", "5", "\\boxed{ 5 }", "The answer is 5"]
)
@pytest.mark.parametrize("truncated", [False, True])
def test_env_and_training_share_one_format_term(text: str, truncated: bool) -> None:
    """The env's final reward and training's raw reward carry the same format term for the same reply."""
    import ilr_env

    env = ilr_env.make("gsm8k", num_agents=2, questions=[Q], mode="cooperate", format_reward=0.3)
    env.reset(seed=0)
    env_reward, env_grade = env.score("agent_0", text, truncated=truncated)
    train_reward = RawReward(format_bonus=0.3)([Q], [Reply(text, env_grade, truncated)])[0]
    assert env_reward == pytest.approx(train_reward)
    assert env_reward - env_grade.reward == pytest.approx(format_bonus(env_grade, truncated, 0.3))


def test_lenient_correctness_reads_the_last_number_only_of_untruncated_answerless_replies() -> None:
    q = Question(id="t/1", prompt="Calculate 4 * 7.", answer="28", task="t")
    assert lenient_correctness(q, "4 * 7 = 28.", truncated=False) == 1.0
    assert lenient_correctness(q, "4 * 7 = 28.", truncated=True) == 0.0  # cut replies end on any number
    assert (
        lenient_correctness(q, "4 * 7 = 28, the answer is 27", truncated=False) == 0.0
    )  # a stated answer wins
    assert lenient_correctness(q, "So \\boxed{28}", truncated=True) == 1.0  # explicit answers stay graded
    assert lenient_correctness(q, "no digits here", truncated=False) == 0.0
    fn = TRLRawReward(RawReward(lenient_answer=True), eos_token_ids=[0])
    out = fn(
        ["p", "p"],
        ["4 * 7 = 28.", "4 * 7 = 28."],
        question_json=[question_column(q)] * 2,
        completion_ids=[[5, 6, 0], [5, 6, 7]],
    )
    assert out == [1.0, 0.0]


class TokenScript(ScriptedPolicy):
    """A scripted policy that also reports token fields, as the trained policies do."""

    def generate(self, chats: list, params: SamplingParams) -> list[list[Completion]]:
        return [
            [Completion(c.text, prompt_ids=[1], completion_ids=[2], logprobs=[0.0]) for c in outs]
            for outs in super().generate(chats, params)
        ]


REPLIES = ["So \\boxed{%s}", "It is %s.", "\\boxed{}", "The answer is %s and \\boxed{7}", "no idea"]


@pytest.mark.parametrize("reply", REPLIES)
def test_ilr_and_the_baseline_give_the_same_reward(reply: str, reward_model: RewardModelReward) -> None:
    """Both methods optimise one objective: ILR's rollout and the baseline's TRL function agree exactly."""
    import ilr_env

    question = ilr_env.load_questions("gsm8k", "train", limit=1)[0]
    text = reply.replace("%s", question.answer)
    raw = RawReward(
        kind="graded",
        format_bonus=0.1,
        lenient_answer=True,
        reward_model=reward_model,
        reward_model_weight=0.5,
    )
    env = ilr_env.make("gsm8k", num_agents=2, protocol="idea3", questions=[question], mode="cooperate")
    records = run_episodes([env], [TokenScript([text]), TokenScript([text])], question_ids=[question.id])
    samples = final_samples(records, "agent_0")
    ilr = raw([question] * len(samples), samples)
    baseline = TRLRawReward(raw)(
        prompts=[plain_prompt(question)], completions=[chat(text)], question_json=[question_column(question)]
    )
    assert ilr == pytest.approx(baseline, abs=1e-6)
    assert len(ilr) == 1


def test_prompt_overrides_reach_the_training_prompts() -> None:
    from ilr_agents.training_data import plain_prompts

    q = Question(id="t/1", prompt="Calculate 4 * 7.", answer="28", task="t")
    default = plain_prompts([q])[0]
    custom = plain_prompts([q], {"answer_format": {"math": "Answer in \\boxed{} only."}})[0]
    assert "Answer in \\boxed{} only." in custom[-1]["content"]
    assert "Answer in \\boxed{} only." not in default[-1]["content"]
