"""The raw reward, one object for both methods: ILR's joint rollout and the baseline's TRL reward function
call the same ``RawReward`` (through two thin adapters), so both optimise the same thing.

``RawReward`` = correctness graded by ``ilr_env.grade`` (optionally lenient), or a reward model's score, or
both (``graded``), plus the format term the env uses too (``ilr_env.grading.format_bonus``). It scores
replies that are already graded (``GradedReply``: text, ``Grade``, truncation), so each reply is graded
once: by the env in ILR's rollout, by the TRL adapter for the baseline. Question data reaches the TRL
adapter as dataset columns: ``question_json`` (a serialised ``ilr_env.Question``, preferred: it carries the
grader kind and code tests) or ``answer`` (+ ``kind``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ilr_agents.distributed_prep import real_weights
from ilr_agents.models import resolve_model
from ilr_env import Question, grade
from ilr_env.grading import Grade, format_bonus


class GradedReply(Protocol):
    """A reply with its grade: ``rollout.Sample`` is one."""

    text: str
    grade: Grade | None

    @property
    def truncated(self) -> bool: ...


@dataclass
class Reply:
    """A graded reply the TRL adapter builds from TRL's columns."""

    text: str
    grade: Grade | None
    truncated: bool = False


class RewardInputError(ValueError):
    """A reward function got columns it cannot score (the message names the missing column)."""


def completion_text(completion: Any) -> str:
    """TRL passes strings for text prompts and ``[{"role": "assistant", "content": ...}]`` for chats."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    raise RewardInputError(
        f"cannot read a completion of type {type(completion).__name__}: pass str or chat messages"
    )


def prompt_text(prompt: Any) -> str:
    """The question as the user asked it: the last user message of a chat prompt, or the text itself."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1] if users else (prompt[-1].get("content", "") if prompt else ""))
    raise RewardInputError(f"cannot read a prompt of type {type(prompt).__name__}")


def question_column(question: Question) -> str:
    """Serialise a question for a dataset column (datasets cannot hold arbitrary metadata dicts)."""
    return json.dumps(question.to_dict(), sort_keys=True, default=str)


def _questions(n: int, kwargs: dict[str, Any], prompts: Sequence[Any]) -> list[Question]:
    if "question_json" in kwargs:
        out = []
        for raw in kwargs["question_json"]:
            d = json.loads(raw) if isinstance(raw, str) else dict(raw)
            out.append(Question(**d))
        return out
    if "answer" in kwargs:
        kinds = kwargs.get("kind") or ["math"] * n
        return [
            Question(id=str(i), prompt=prompt_text(p), answer=str(a), task="reward", kind=k)
            for i, (p, a, k) in enumerate(zip(prompts, kwargs["answer"], kinds, strict=True))
        ]
    raise RewardInputError("correctness reward needs a 'question_json' or an 'answer' column in the dataset")


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")


def lenient_correctness(
    question: Question, text: str, truncated: bool, verdict: Grade | None = None
) -> float:
    """The grader's reward, except that a reply stating no answer at all is judged by its last number.

    Small models often write "4 * 7 = 28." without a box; counting that gives GRPO a learning signal on
    CPU-sized runs. Only untruncated replies qualify: a reply cut at the token limit ends on whatever
    number it was writing, which a policy learns to exploit. ``verdict``: the reply's grade, when known;
    only the fallback number is graded here then.
    """
    verdict = grade(question, text) if verdict is None else verdict
    if verdict.correct or verdict.extracted is not None or truncated:
        return float(verdict.reward)
    numbers = _NUMBER.findall(text[-4000:])
    if not numbers:
        return 0.0
    return float(grade(question, f"\\boxed{{{numbers[-1]}}}").reward)


def reward_model_device(cuda_devices: int, local_rank: int = 0, world_size: int = 1) -> str:
    """Where the reward model runs: its own GPU when one is free of training, else beside this process's.

    One training process on a machine with several GPUs trains on ``cuda:0``, so the reward model takes the
    last GPU; under ``accelerate launch`` every GPU holds a rank, and the (small) reward model sits on this
    rank's GPU, scoring the rank's own samples.
    """
    if cuda_devices <= 0:
        return "cpu"
    if world_size <= 1:
        return f"cuda:{cuda_devices - 1}"
    return f"cuda:{local_rank % cuda_devices}"


# Raw reward-model scores (logits) are divided by this before the logistic squash: a logit difference of 4
# moves a squashed score from 0.5 to 0.73, so typical spreads stay graded instead of saturating at 0 or 1.
REWARD_MODEL_SCALE = 4.0


def squash_score(score: float, scale: float = REWARD_MODEL_SCALE) -> float:
    """A reward-model logit mapped into [0, 1] (logistic of score / scale).

    Why bounded: the graded reward adds ``weight`` x this to 0/1 correctness, so with weight < 1 the
    reward model can reorder answers of equal correctness but never lift a wrong answer above a right one;
    raw logits (unbounded, model-specific spread) could.
    """
    z = score / scale
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class RewardModelReward:
    """Scores question + answer with a sequence-classification reward model (what the ILR paper uses).

    Graded scores are where Perception Calibration can change GRPO advantages (see calibration.py).
    The model is loaded once, on ``reward_model_device`` (bf16 on a GPU, float32 on CPU), and run under
    ``torch.no_grad`` in batches of ``batch_size`` texts sorted by length (less padding); the score is
    logit 0. The model reads the whole chat: a text longer than ``max_length`` (default: the model's
    context) loses its START, never its end, because the final answer (``\\boxed{}``) is at the end.
    """

    def __init__(
        self,
        model_id_or_path: str,
        *,
        batch_size: int = 8,
        max_length: int | None = None,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        if device is None:
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            env = os.environ
            device = reward_model_device(
                count, int(env.get("LOCAL_RANK", "0")), int(env.get("WORLD_SIZE", "1"))
            )
        self.device = torch.device(device)
        if dtype is None:
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        source = resolve_model(model_id_or_path)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        with real_weights():  # every process scores its own samples: never FSDP's zeroed placeholder
            self.model = (
                AutoModelForSequenceClassification.from_pretrained(source, dtype=dtype).to(self.device).eval()
            )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.truncation_side = "left"  # keep the answer's end
        self.batch_size = batch_size
        context = getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = max_length or context

    def _text(self, question: str, answer: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            chat = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            return self.tokenizer.apply_chat_template(chat, tokenize=False)
        return f"{question}\n\n{answer}"

    def score(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
        """Raw logits, one per (question, answer); ``RawReward`` squashes them (``squash_score``)."""
        texts = [self._text(q, a) for q, a in zip(questions, answers, strict=True)]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        scores: list[float] = [0.0] * len(texts)
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                chunk = order[start : start + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in chunk],
                    return_tensors="pt",
                    padding=True,
                    truncation=self.max_length is not None,
                    max_length=self.max_length,
                    add_special_tokens=False,
                )
                logits = self.model(**enc.to(self.device)).logits
                for i, value in zip(chunk, logits[:, 0].float().cpu().tolist(), strict=True):
                    scores[i] = value
        return scores


REWARD_KINDS = ("correctness", "reward_model", "graded")


@dataclass
class RawReward:
    """The reward before calibration, for a batch of (question, reply, truncated) triples.

    ``correctness`` (grader reward, 1.0 = correct), ``reward_model`` (the model's squashed score alone) or
    ``graded`` (correctness + ``reward_model_weight`` · squashed score, ``squash_score``: in [0, 1]), plus
    ``format_bonus`` for a non-empty ``\\boxed{}`` in an untruncated reply. ``graded`` requires
    ``reward_model_weight + format_bonus < 1``: then a correct answer out-rewards every wrong one.
    ``lenient_answer`` also credits an untruncated reply that states no answer by its last number
    (``lenient_correctness``).
    """

    kind: str = "correctness"
    format_bonus: float = 0.0
    lenient_answer: bool = False
    reward_model: RewardModelReward | None = None
    reward_model_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in REWARD_KINDS:
            raise RewardInputError(f"unknown reward {self.kind!r}: use correctness, reward_model or graded")
        if self.kind != "correctness" and self.reward_model is None:
            raise RewardInputError(
                f"reward={self.kind!r} needs reward_model: a sequence-classification model id or folder"
            )
        if not self.format_bonus >= 0:
            raise RewardInputError(f"format_bonus={self.format_bonus}: must be >= 0")
        if self.kind == "graded" and not 0 <= self.reward_model_weight + self.format_bonus < 1:
            raise RewardInputError(
                f"reward_model_weight={self.reward_model_weight} + format_reward={self.format_bonus} must be "
                "in [0, 1) for reward=graded, else a wrong answer can out-reward a correct one: lower them"
            )

    @classmethod
    def from_config(cls, config: Any) -> RawReward:
        """The raw reward an ``ILRConfig`` names (loads its reward model, if any, once)."""
        uses_model = config.reward != "correctness" and config.reward_model is not None
        return cls(
            kind=config.reward,
            format_bonus=config.format_reward,
            lenient_answer=config.lenient_answer,
            reward_model=RewardModelReward(config.reward_model) if uses_model else None,
            reward_model_weight=config.reward_model_weight,
        )

    def __call__(self, questions: Sequence[Question], replies: Sequence[GradedReply]) -> list[float]:
        """One reward per graded reply (a reply without a grade is a wrong answer)."""
        if len(questions) != len(replies):
            raise RewardInputError(f"{len(questions)} questions for {len(replies)} replies: pass one each")
        out = [
            0.0 if self.kind == "reward_model" else self._correctness(q, r)
            for q, r in zip(questions, replies)
        ]
        if self.reward_model is not None:
            weight = 1.0 if self.kind == "reward_model" else self.reward_model_weight
            scores = self.reward_model.score([q.prompt for q in questions], [r.text for r in replies])
            out = [o + weight * squash_score(s) for o, s in zip(out, scores, strict=True)]
        return [o + format_bonus(r.grade, r.truncated, self.format_bonus) for o, r in zip(out, replies)]

    def _correctness(self, question: Question, reply: GradedReply) -> float:
        value = 0.0 if reply.grade is None else float(reply.grade.reward)
        if self.lenient_answer and value == 0 and reply.grade is not None:
            return lenient_correctness(question, reply.text, reply.truncated, reply.grade)
        return value


class TRLRawReward:
    """A ``RawReward`` as a TRL reward function (the baseline's adapter).

    Questions come from the ``question_json`` or ``answer`` column; whether a reply was cut at the token
    limit from a ``truncated`` column when present, else from ``completion_ids`` (no EOS at the end).
    """

    def __init__(self, raw: RawReward, eos_token_ids: Sequence[int] | None = None) -> None:
        self.raw = raw
        self.eos_token_ids = set(eos_token_ids or ())
        self.__name__ = f"{raw.kind}_reward"

    def _truncated(self, idx: int, kwargs: dict[str, Any]) -> bool:
        if "truncated" in kwargs:
            return bool(kwargs["truncated"][idx])
        ids = kwargs.get("completion_ids")
        if ids is not None and self.eos_token_ids:
            seq = ids[idx]
            return not seq or int(seq[-1]) not in self.eos_token_ids
        return False

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        questions = _questions(len(completions), kwargs, prompts)
        texts = [completion_text(c) for c in completions]
        replies = [
            Reply(t, grade(q, t), self._truncated(i, kwargs))
            for i, (q, t) in enumerate(zip(questions, texts, strict=True))
        ]
        return self.raw(questions, replies)


def build_tiny_reward_model(out_dir: str, *, base: str = "tiny", seed: int = 0) -> str:
    """A randomly initialised sequence-classification reward model on a zoo tokenizer, written to
    ``out_dir`` (the zoo's ``tiny-rm`` is the same model, by name)."""
    from ilr_agents.models import _build_tiny_reward_model

    _build_tiny_reward_model(Path(out_dir), base=base, seed=seed)
    return out_dir
