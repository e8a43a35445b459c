"""The policy contract: the one seam between generation back-ends and everything else.

A policy turns a batch of chats into ``params.n`` completions per chat in one call, so the rollout can
make exactly one call per (stage, agent) whatever the back-end. Policies never parse answers.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Chat = list[dict[str, str]]
FinishReason = Literal["stop", "length"]


class PolicyError(RuntimeError):
    """A back-end failed in a way the caller cannot fix by retrying (the message names the fix)."""


_FIELD_TYPES: dict[str, type] = {
    "max_new_tokens": numbers.Integral,
    "temperature": numbers.Real,
    "top_p": numbers.Real,
    "top_k": numbers.Integral,
    "n": numbers.Integral,
    "seed": numbers.Integral,
}


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` means greedy; ``top_k == 0`` disables top-k (vLLM/TRL convention).

    Greedy decoding with ``n > 1`` is rejected here, for every back-end alike: the n answers would be copies
    of one, and OpenAI-compatible servers answer such a request with HTTP 400 only after it was sent.
    ``seed`` makes a call reproducible without touching global random state; ``None`` draws fresh
    randomness from the policy's own generator.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if name == "seed" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, kind):
                whole = " whole" if kind is numbers.Integral else ""
                raise ValueError(f"{name}={value!r}: must be a{whole} number")  # noqa: TRY004 (one error type)
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens}: must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature}: must be >= 0 (0 = greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p}: must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError(f"top_k={self.top_k}: must be >= 0 (0 disables top-k)")
        if self.n < 1:
            raise ValueError(f"n={self.n}: must be >= 1 completions per chat")
        if self.n > 1 and self.temperature == 0:
            raise ValueError(
                f"n={self.n} with temperature=0 (greedy): the {self.n} samples would all be the same answer. "
                "Fix: sample with temperature > 0 (e.g. --temperature 0.7) or ask for n=1"
            )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def replace(self, **changes: object) -> SamplingParams:
        return SamplingParams(**{**asdict(self), **changes})  # type: ignore[arg-type]


@dataclass
class Completion:
    """One sampled answer. Token ids and log-probs are filled by back-ends that can provide them.

    ``logprobs[t]`` is the log-probability of ``completion_ids[t]`` under the raw model distribution
    (logits at temperature 1, before top-k/top-p filtering) — see TransformersPolicy for why.
    """

    text: str
    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: FinishReason = "stop"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@runtime_checkable
class Policy(Protocol):
    """Anything with a name and a batched ``generate``; agents may share one policy object."""

    name: str

    def generate(self, chats: list[Chat], params: SamplingParams) -> list[list[Completion]]:
        """Return, for each chat, ``params.n`` completions (one batched call)."""
        ...


def chat_token_ids(tokenizer: Any, chat: Chat) -> list[int]:
    """A chat's prompt token ids exactly as generation sees them (chat template + generation prompt); the
    text is tokenised without special tokens because the template already wrote them."""
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_chats(chats: object) -> list[Chat]:
    """Validate the chat batch early so back-ends fail with a clear message, not deep in a tokenizer."""
    if not isinstance(chats, list):
        raise TypeError(f"chats must be a list of chats (list of message dicts), got {type(chats).__name__}")
    for i, chat in enumerate(chats):
        if not isinstance(chat, list) or not chat:
            raise TypeError(
                f"chats[{i}] must be a non-empty list of {{'role', 'content'}} dicts, got {chat!r:.80}"
            )
        for msg in chat:
            if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
                raise TypeError(f"chats[{i}] holds {msg!r:.80}: each message needs 'role' and 'content'")
    return chats  # type: ignore[return-value]
