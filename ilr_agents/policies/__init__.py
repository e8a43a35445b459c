"""Generation back-ends behind one protocol: transformers, vLLM, OpenAI-compatible HTTP and scripted.

Heavy back-ends are imported lazily so ``import ilr_agents.policies`` stays torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ilr_agents.policies.base import Chat, Completion, Policy, PolicyError, SamplingParams
from ilr_agents.policies.factory import PolicySpec, PolicySpecError, build_policy
from ilr_agents.policies.scripted import ScriptedPolicy

if TYPE_CHECKING:
    from ilr_agents.policies.openai_policy import OpenAIPolicy
    from ilr_agents.policies.transformers_policy import TransformersPolicy
    from ilr_agents.policies.vllm_policy import VLLMPolicy

_LAZY = {
    "TransformersPolicy": "ilr_agents.policies.transformers_policy",
    "VLLMPolicy": "ilr_agents.policies.vllm_policy",
    "OpenAIPolicy": "ilr_agents.policies.openai_policy",
}

__all__ = [
    "Chat",
    "Completion",
    "OpenAIPolicy",
    "Policy",
    "PolicyError",
    "PolicySpec",
    "PolicySpecError",
    "SamplingParams",
    "ScriptedPolicy",
    "TransformersPolicy",
    "VLLMPolicy",
    "build_policy",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ilr_agents.policies' has no attribute {name!r}")
