"""Interaction protocols as objects (Idea3, debate, single), and their versioned prompt templates.

Each protocol lives in its own module and is registered here; the env asks the registered object for
its stages, templates and who sees what (``base.Protocol``). The wording is data in ``prompts.yaml``.
"""

from __future__ import annotations

from ilr_env.protocols.base import Protocol, StageView, register_protocol
from ilr_env.protocols.debate import Debate
from ilr_env.protocols.idea3 import STAGES as IDEA3_STAGES
from ilr_env.protocols.idea3 import Idea3
from ilr_env.protocols.prompts import MODES, PROMPTS_FILE, Mode, PromptError, PromptSet, fill, load_prompts
from ilr_env.protocols.registry import get_protocol, protocol_names, unregister_protocol
from ilr_env.protocols.single import Single, single_prompt

for _builtin in (Idea3(), Debate(), Single()):
    register_protocol(_builtin)

__all__ = [
    "IDEA3_STAGES",
    "MODES",
    "PROMPTS_FILE",
    "Debate",
    "Idea3",
    "Mode",
    "PromptError",
    "PromptSet",
    "Protocol",
    "Single",
    "StageView",
    "fill",
    "get_protocol",
    "load_prompts",
    "protocol_names",
    "register_protocol",
    "single_prompt",
    "unregister_protocol",
]
