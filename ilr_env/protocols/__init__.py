"""Interaction protocols (Idea3, debate, single) and their prompt templates.

The wording lives in ``prompts.yaml`` beside this module, as data with a version string, so that a run
records exactly which prompts it used and a user can change them without touching code. This module
only knows the *shape*: which templates exist, which placeholders each one takes and which of those are
required (a fusion prompt without ``{peer_analyses}`` would silently cut the information flow the
method depends on, so overriding it away is an error rather than a surprise).

Placeholders are substituted by name, once, left to right: ``{name}`` is replaced only when ``name`` is
a placeholder of that template; every other brace (``\\boxed{}``, ``\\frac{a}{b}``) is left as written,
and text inserted for a placeholder is never scanned again.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from ilr_env.tasks.base import Question

Protocol = Literal["idea3", "debate", "single"]
Mode = Literal["cooperate", "compete"]
PROTOCOLS: tuple[str, ...] = ("idea3", "debate", "single")
MODES: tuple[str, ...] = ("cooperate", "compete")
IDEA3_STAGES: tuple[str, ...] = ("share", "analyse", "fuse")

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")

_FRAMING = frozenset({"agent", "peers", "num_agents", "num_peers"})
_STAGE = _FRAMING | {"question", "answer_format"}
_IDEA3_SHARE = _STAGE | {"earlier_in_stage"}
_IDEA3_ANALYSE = _IDEA3_SHARE | {"own_idea", "peer_ideas"}
_IDEA3_FUSE = _IDEA3_ANALYSE | {"own_analysis", "peer_analyses"}
_DEBATE_UPDATE = _STAGE | {"own_previous", "peer_previous", "round", "num_rounds"}

# (allowed placeholders, required placeholders) for every template path in prompts.yaml.
_SCHEMA: dict[tuple[str, ...], tuple[frozenset[str], frozenset[str]]] = {
    ("system", "cooperate"): (_FRAMING, frozenset()),
    ("system", "compete"): (_FRAMING, frozenset()),
    ("system", "single"): (frozenset(), frozenset()),
    ("answer_format", "math"): (frozenset(), frozenset()),
    ("answer_format", "choice"): (frozenset(), frozenset()),
    ("answer_format", "code"): (frozenset(), frozenset()),
    **{("idea3", "share", mode): (_IDEA3_SHARE, frozenset({"question"})) for mode in MODES},
    **{("idea3", "analyse", mode): (_IDEA3_ANALYSE, frozenset({"question", "peer_ideas"})) for mode in MODES},
    **{("idea3", "fuse", mode): (_IDEA3_FUSE, frozenset({"question", "peer_analyses"})) for mode in MODES},
    ("debate", "first"): (_STAGE, frozenset({"question"})),
    ("debate", "update"): (_DEBATE_UPDATE, frozenset({"question", "peer_previous"})),
    ("single", "answer"): (frozenset({"question", "answer_format"}), frozenset({"question"})),
    ("peer_message",): (frozenset({"peer", "message"}), frozenset({"message"})),
    ("empty_message",): (frozenset(), frozenset()),
    ("earlier_in_stage",): (frozenset({"messages"}), frozenset({"messages"})),
    ("truncation_marker",): (frozenset({"omitted"}), frozenset()),
    ("rank", "system"): (frozenset(), frozenset()),
    ("rank", "problem"): (frozenset({"index", "question"}), frozenset({"index", "question"})),
    ("rank", "user"): (frozenset({"k", "problems"}), frozenset({"problems"})),
}


class PromptError(ValueError):
    """A prompt override that does not fit the template schema (unknown key, wrong type, missing field)."""


def stage_names(protocol: str, debate_rounds: int = 2) -> tuple[str, ...]:
    """Stage names in order; one env step per stage, the last one is the graded answer."""
    if protocol == "idea3":
        return IDEA3_STAGES
    if protocol == "debate":
        return tuple(f"round_{r}" for r in range(debate_rounds))
    if protocol == "single":
        return ("answer",)
    raise PromptError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")


def fill(template: str, allowed: frozenset[str] | set[str], **fields: object) -> str:
    """Substitute ``{name}`` for each allowed name, once; other braces stay literal."""
    if not allowed:
        return template
    pattern = re.compile(r"\{(" + "|".join(sorted(map(re.escape, allowed))) + r")\}")

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in fields:
            raise PromptError(f"template placeholder {{{name}}} has no value; pass {name}=...")
        return str(fields[name])

    return pattern.sub(value, template)


def _placeholders_in(template: str, names: frozenset[str]) -> set[str]:
    return {n for n in names if "{" + n + "}" in template}


@functools.cache
def _default_tree() -> dict[str, Any]:
    with PROMPTS_FILE.open(encoding="utf-8") as fh:
        tree = yaml.safe_load(fh)
    _validate_tree(tree, where=str(PROMPTS_FILE))
    return tree


def _validate_tree(tree: Mapping[str, Any], *, where: str) -> None:
    if not isinstance(tree.get("version"), str) or not tree["version"]:
        raise PromptError(f"{where}: 'version' must be a non-empty string")
    for path, (allowed, required) in _SCHEMA.items():
        node: Any = tree
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                raise PromptError(f"{where}: missing template {'.'.join(path)}")
            node = node[key]
        if not isinstance(node, str):
            raise PromptError(
                f"{where}: template {'.'.join(path)} must be a string, got {type(node).__name__}"
            )
        missing = required - _placeholders_in(node, allowed)
        if missing:
            raise PromptError(
                f"{where}: template {'.'.join(path)} must contain "
                + ", ".join("{" + m + "}" for m in sorted(missing))
                + f"; allowed placeholders: {sorted(allowed)}"
            )


def _merge(base: dict[str, Any], override: Mapping[str, Any], path: tuple[str, ...]) -> None:
    for key, value in override.items():
        here = (*path, key)
        dotted = ".".join(here)
        if key not in base:
            raise PromptError(
                f"unknown prompt key {dotted!r}; valid keys here: {sorted(base)} (see {PROMPTS_FILE.name})"
            )
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise PromptError(
                    f"prompt key {dotted!r} is a group of templates; pass a dict such as "
                    f"{{{min(base[key])!r}: '...'}}, got {type(value).__name__}"
                )
            _merge(base[key], value, here)
        else:
            if not isinstance(value, str):
                raise PromptError(f"prompt {dotted!r} must be a string, got {type(value).__name__}")
            base[key] = value


@dataclass(frozen=True)
class PromptSet:
    """A validated, versioned set of templates; ``version`` changes whenever overrides are applied."""

    version: str
    tree: Mapping[str, Any]

    def template(self, *path: str) -> str:
        node: Any = self.tree
        for key in path:
            node = node[key]
        return node

    def render(self, path: tuple[str, ...], **fields: object) -> str:
        """Fill the template at ``path`` with ``fields`` (only its own placeholders are used)."""
        allowed, _ = _SCHEMA[path]
        return fill(self.template(*path), allowed, **fields)

    def system(self, mode: str | None, **fields: object) -> str:
        """System message: the mode framing, or the plain solver framing when ``mode`` is None."""
        return self.render(("system", mode if mode is not None else "single"), **fields)

    def stage_path(self, protocol: str, stage_index: int, mode: str | None) -> tuple[str, ...]:
        """Template path of a stage: Idea3 has one per stage and mode; debate's framing is in the system."""
        if protocol == "idea3":
            return ("idea3", IDEA3_STAGES[stage_index], mode or "cooperate")
        if protocol == "debate":
            return ("debate", "first" if stage_index == 0 else "update")
        return ("single", "answer")

    def answer_format(self, kind: str) -> str:
        if kind not in self.tree["answer_format"]:
            raise PromptError(
                f"no answer format for question kind {kind!r}; expected one of "
                f"{sorted(self.tree['answer_format'])}"
            )
        return self.tree["answer_format"][kind]


def load_prompts(overrides: Mapping[str, Any] | PromptSet | None = None) -> PromptSet:
    """The default templates, with ``overrides`` (a partial nested dict) merged in and validated.

    Unknown keys, non-string templates and templates missing a required placeholder raise PromptError.
    Unless the overrides set their own ``version``, the version becomes ``<default>+custom-<hash>`` so
    records made with changed prompts cannot be mistaken for default ones.
    """
    if isinstance(overrides, PromptSet):
        return overrides
    tree = copy.deepcopy(_default_tree())
    if not overrides:
        return PromptSet(version=tree["version"], tree=tree)
    if not isinstance(overrides, Mapping):
        raise PromptError(f"prompts must be a dict of template overrides, got {type(overrides).__name__}")
    _merge(tree, overrides, ())
    _validate_tree(tree, where="prompts override")
    if "version" not in overrides:
        digest = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
        tree["version"] = f"{_default_tree()['version']}+custom-{digest}"
    return PromptSet(version=tree["version"], tree=tree)


def single_prompt(
    question: Question, prompts: Mapping[str, Any] | PromptSet | None = None
) -> list[dict[str, str]]:
    """The plain single-agent test-time prompt (the paper evaluates every trained agent alone).

    It is exactly what ``protocol="single"`` environments show, so evaluation and the single-agent
    baseline cannot drift apart.
    """
    ps = load_prompts(prompts)
    user = ps.render(
        ("single", "answer"), question=question.prompt, answer_format=ps.answer_format(question.kind)
    )
    return [{"role": "system", "content": ps.system(None)}, {"role": "user", "content": user}]


__all__ = [
    "IDEA3_STAGES",
    "MODES",
    "PROMPTS_FILE",
    "PROTOCOLS",
    "Mode",
    "PromptError",
    "PromptSet",
    "Protocol",
    "fill",
    "load_prompts",
    "single_prompt",
    "stage_names",
]
