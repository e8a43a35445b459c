"""Every policy the commands and the preparation load, built in one place from one description.

Evaluation, compare, preparation and self-ranking each used to call the back-end constructors with their
own choice of arguments; a ``PolicySpec`` says what to load and ``build_policy`` decides how, so a model
means the same thing (adapter, seed, dtype, log-probs) wherever it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ilr_agents.policies.base import Policy

BACKENDS = ("transformers", "vllm", "openai")


class PolicySpecError(ValueError):
    """A policy description that cannot be loaded (the message names the field and the fix)."""


@dataclass(frozen=True)
class PolicySpec:
    """What to load: ``model`` is a zoo name, folder or hub id (the served model name for ``openai``);
    ``adapter`` a LoRA adapter folder on top of it. Device, dtype and batch size are the transformers
    back-end's; ``base_url`` and ``api_key_env`` the OpenAI-compatible one's."""

    model: str
    backend: str = "transformers"
    adapter: str | None = None
    name: str | None = None
    seed: int = 0
    return_logprobs: bool = False
    device: str | None = None
    dtype: Any = None
    max_batch_size: int | None = None
    base_url: str | None = None
    api_key_env: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise PolicySpecError(
                f"unknown policy backend {self.backend!r}: use one of {', '.join(BACKENDS)}"
            )
        if self.backend == "openai" and not self.base_url:
            raise PolicySpecError(
                f"backend 'openai' for {self.model!r} needs base_url, e.g. http://127.0.0.1:8000/v1"
            )

    @classmethod
    def for_checkpoint(cls, model: str, checkpoint: Path | None, *, lora: bool, **fields: Any) -> PolicySpec:
        """A base model (no checkpoint), a trained full checkpoint, or a LoRA adapter on the base it was
        trained from."""
        if checkpoint is None:
            return cls(model, **fields)
        if lora:
            return cls(model, adapter=str(checkpoint), **fields)
        return cls(str(checkpoint), **fields)


def build_policy(spec: PolicySpec) -> Policy:
    """The policy ``spec`` describes (heavy back-ends are imported only here, when one is built)."""
    if spec.backend == "transformers":
        from ilr_agents.policies.transformers_policy import TransformersPolicy

        return TransformersPolicy(
            spec.model,
            device=spec.device,
            dtype=spec.dtype,
            adapter=spec.adapter,
            return_logprobs=spec.return_logprobs,
            max_batch_size=spec.max_batch_size,
            seed=spec.seed,
            name=spec.name,
        )
    if spec.backend == "vllm":
        from ilr_agents.policies.vllm_policy import VLLMPolicy

        return VLLMPolicy(
            spec.model,
            return_logprobs=spec.return_logprobs,
            seed=spec.seed,
            name=spec.name,
            lora_adapter=spec.adapter,
        )
    from ilr_agents.policies.openai_policy import OpenAIPolicy

    key = {} if spec.api_key_env is None else {"api_key_env": spec.api_key_env}
    return OpenAIPolicy(str(spec.base_url), spec.model, seed=spec.seed, **key)
