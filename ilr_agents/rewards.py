"""Reward functions in TRL's shape: ``fn(prompts, completions, **columns) -> list[float | None]``.

They are plain functions (or callable objects) so the same code scores ILR's joint rollout and a plain
``GRPOTrainer`` baseline. Question data arrives as keyword columns: ``question_json`` (a serialised
``ilr_env.Question``, preferred: it carries the grader kind and code tests) or ``answer`` (+ ``kind``).

Why the format term is strict: on CPU runs a bonus for any ``\\boxed{}`` taught SmolLM2 to emit empty
boxes in truncated replies (reference/cpu-learning.md). Here only a non-empty box in a reply that ended
on its own (not cut at the token limit) earns it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from ilr_env import Question, grade
from ilr_env.tasks import last_boxed

RewardFunc = Callable[..., list[float | None]]


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


def correctness_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
    """The grader's reward in [0, 1] (1.0 = correct), via ``ilr_env.grade``."""
    questions = _questions(len(completions), kwargs, prompts)
    return [float(grade(q, completion_text(c)).reward) for q, c in zip(questions, completions, strict=True)]


def last_box_content(text: str) -> str | None:
    """Contents of the last closed ``\\boxed{...}`` (the graders' own parser), or None."""
    return last_boxed(text)


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")


def lenient_correctness(question: Question, text: str, truncated: bool) -> float:
    """The grader's reward, except that a reply stating no answer at all is judged by its last number.

    Small models often write "4 * 7 = 28." without a box; counting that gives GRPO a learning signal on
    CPU-sized runs. Only untruncated replies qualify: a reply cut at the token limit ends on whatever
    number it was writing, which a policy learns to exploit (shared/reference/cpu-learning.md).
    """
    verdict = grade(question, text)
    if verdict.correct or verdict.extracted is not None or truncated:
        return float(verdict.reward)
    numbers = _NUMBER.findall(text[-4000:])
    if not numbers:
        return 0.0
    return float(grade(question, f"\\boxed{{{numbers[-1]}}}").reward)


class _TruncationAware:
    """Reads whether each completion was cut at the token limit, from TRL's or ILR's columns."""

    eos_token_ids: set[int]

    def _truncated(self, idx: int, kwargs: dict[str, Any]) -> bool:
        if "truncated" in kwargs:
            return bool(kwargs["truncated"][idx])
        ids = kwargs.get("completion_ids")
        if ids is not None and self.eos_token_ids:
            seq = ids[idx]
            return not seq or int(seq[-1]) not in self.eos_token_ids
        return False


class LenientCorrectness(_TruncationAware):
    """``lenient_correctness`` as a TRL reward function (the baseline's form of ``lenient_answer``)."""

    def __init__(self, eos_token_ids: Sequence[int] | None = None) -> None:
        self.eos_token_ids = set(eos_token_ids or ())
        self.__name__ = "lenient_correctness_reward"

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        questions = _questions(len(completions), kwargs, prompts)
        return [
            lenient_correctness(q, completion_text(c), self._truncated(i, kwargs))
            for i, (q, c) in enumerate(zip(questions, completions, strict=True))
        ]


class FormatReward(_TruncationAware):
    """``bonus`` for a non-empty ``\\boxed{}`` in a reply that was not truncated; 0 otherwise.

    Truncation is read from a ``truncated`` column when present (ILR's rollout forwards it), else from
    ``completion_ids`` (no EOS at the end = cut at the token limit) when ``eos_token_ids`` are given.
    """

    def __init__(self, bonus: float = 0.1, eos_token_ids: Sequence[int] | None = None) -> None:
        if bonus < 0:
            raise ValueError(f"bonus={bonus}: must be >= 0")
        self.bonus = float(bonus)
        self.eos_token_ids = set(eos_token_ids or ())
        self.__name__ = "format_reward"

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        out: list[float | None] = []
        for idx, c in enumerate(completions):
            box = last_box_content(completion_text(c))
            ok = box is not None and box.strip() != "" and not self._truncated(idx, kwargs)
            out.append(self.bonus if ok else 0.0)
        return out


class RewardModelReward:
    """Scores question + answer with a sequence-classification reward model (what the ILR paper uses).

    Graded scores are where Perception Calibration can change GRPO advantages (see calibration.py).
    The model is loaded once and run batched under ``torch.no_grad``; the score is logit 0.
    """

    def __init__(
        self,
        model_id_or_path: str,
        *,
        batch_size: int = 8,
        max_length: int = 1024,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(model_id_or_path)
        self.model = (
            AutoModelForSequenceClassification.from_pretrained(model_id_or_path, dtype=dtype or torch.float32)
            .to(self.device)
            .eval()
        )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size = batch_size
        self.max_length = max_length
        self.__name__ = "reward_model"

    def _text(self, question: str, answer: str) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            chat = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            return self.tokenizer.apply_chat_template(chat, tokenize=False)
        return f"{question}\n\n{answer}"

    def score(self, questions: Sequence[str], answers: Sequence[str]) -> list[float]:
        import torch

        texts = [self._text(q, a) for q, a in zip(questions, answers, strict=True)]
        scores: list[float] = []
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    texts[start : start + self.batch_size],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=False,
                )
                logits = self.model(**enc.to(self.device)).logits
                scores.extend(logits[:, 0].float().cpu().tolist())
        return scores

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        if "question_json" in kwargs:
            questions = [
                json.loads(q)["prompt"] if isinstance(q, str) else q["prompt"]
                for q in kwargs["question_json"]
            ]
        else:
            questions = [prompt_text(p) for p in prompts]
        return list(self.score(questions, [completion_text(c) for c in completions]))


def weighted_sum(parts: Sequence[tuple[RewardFunc, float]], name: str = "graded_reward") -> RewardFunc:
    """One reward from several, ``Σ w·r``; ``None`` from any part (not applicable) makes the sum None."""
    if not parts:
        raise ValueError("weighted_sum needs at least one (reward_fn, weight) pair")

    def combined(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        columns = [fn(prompts=prompts, completions=completions, **kwargs) for fn, _ in parts]
        out: list[float | None] = []
        for values in zip(*columns, strict=True):
            if any(v is None for v in values):
                out.append(None)
            else:
                out.append(float(sum(w * v for (_, w), v in zip(parts, values, strict=True))))
        return out

    combined.__name__ = name
    return combined


def build_reward(
    kind: str,
    *,
    format_bonus: float = 0.0,
    reward_model: str | None = None,
    reward_model_weight: float = 0.5,
    eos_token_ids: Sequence[int] | None = None,
    lenient_answer: bool = False,
) -> RewardFunc:
    """The raw reward a config names: ``correctness``, ``reward_model`` or ``graded`` (+ format term)."""
    parts: list[tuple[RewardFunc, float]] = []
    if kind in ("correctness", "graded"):
        parts.append((LenientCorrectness(eos_token_ids) if lenient_answer else correctness_reward, 1.0))
    if kind in ("reward_model", "graded"):
        if reward_model is None:
            raise RewardInputError(
                f"reward={kind!r} needs reward_model: a sequence-classification model id or folder"
            )
        parts.append(
            (RewardModelReward(reward_model), 1.0 if kind == "reward_model" else reward_model_weight)
        )
    if not parts:
        raise RewardInputError(f"unknown reward {kind!r}: use correctness, reward_model or graded")
    if format_bonus > 0:
        parts.append((FormatReward(format_bonus, eos_token_ids), 1.0))
    if len(parts) == 1 and parts[0][1] == 1.0:
        return parts[0][0]
    return weighted_sum(parts, name=f"{kind}_reward")


def build_tiny_reward_model(out_dir: str, *, base: str = "tiny", seed: int = 0) -> str:
    """A randomly initialised sequence-classification reward model on a zoo tokenizer (tests and demos).

    Its scores are meaningless but graded and deterministic, which is what plumbing tests of reward-model
    rewards and of calibration on graded rewards need, offline and in seconds.
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from ilr_agents.models import resolve_model

    source = resolve_model(base)
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = AutoConfig.from_pretrained(source, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
