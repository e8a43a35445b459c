"""The prompt templates of every protocol: loading, overriding, validating and filling them.

The wording lives in ``prompts.yaml`` beside this module, as data with a version string, so that a run
records exactly which prompts it used and a user can change them without touching code. The shape (which
templates exist, which placeholders each one takes and which of those are required) is the shared
``_CORE_SCHEMA`` here plus each registered protocol's ``schema``. A fusion prompt without
``{peer_analyses}`` would silently cut the information flow the method depends on, so overriding it away
is an error rather than a surprise.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ilr_env.protocols.registry import registered

Mode = Literal["cooperate", "compete"]
MODES: tuple[str, ...] = ("cooperate", "compete")

PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")

FRAMING = frozenset({"agent", "peers", "num_agents", "num_peers"})
STAGE = FRAMING | {"question", "answer_format"}

Schema = Mapping[tuple[str, ...], tuple[frozenset[str], frozenset[str]]]
"""(allowed placeholders, required placeholders) for each template path."""

# The templates every protocol shares; each protocol adds the ones of its own section (``Protocol.schema``).
_CORE_SCHEMA: dict[tuple[str, ...], tuple[frozenset[str], frozenset[str]]] = {
    ("system", "cooperate"): (FRAMING, frozenset()),
    ("system", "compete"): (FRAMING, frozenset()),
    ("system", "single"): (frozenset(), frozenset()),
    ("answer_format", "math"): (frozenset(), frozenset()),
    ("answer_format", "choice"): (frozenset(), frozenset()),
    ("answer_format", "code"): (frozenset(), frozenset()),
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
def _yaml_tree() -> dict[str, Any]:
    with PROMPTS_FILE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _check_template(
    node: Any, path: tuple[str, ...], allowed: frozenset[str], required: frozenset[str]
) -> str:
    """Why the template at ``path`` is unusable, or "" when it is fine."""
    if not isinstance(node, str):
        return f"template {'.'.join(path)} must be a string, got {type(node).__name__}"
    missing = required - _placeholders_in(node, allowed)
    if missing:
        return (
            f"template {'.'.join(path)} must contain "
            + ", ".join("{" + m + "}" for m in sorted(missing))
            + f"; allowed placeholders: {sorted(allowed)}"
        )
    return ""


def _validate_tree(tree: Mapping[str, Any], schema: Schema, *, where: str) -> None:
    if not isinstance(tree.get("version"), str) or not tree["version"]:
        raise PromptError(f"{where}: 'version' must be a non-empty string")
    for path, (allowed, required) in schema.items():
        node: Any = tree
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                raise PromptError(f"{where}: missing template {'.'.join(path)}")
            node = node[key]
        problem = _check_template(node, path, allowed, required)
        if problem:
            raise PromptError(f"{where}: {problem}")


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
    schema: Schema = field(default_factory=lambda: dict(_CORE_SCHEMA))

    def template(self, *path: str) -> str:
        node: Any = self.tree
        for key in path:
            node = node[key]
        return node

    def render(self, path: tuple[str, ...], **fields: object) -> str:
        """Fill the template at ``path`` with ``fields`` (only its own placeholders are used)."""
        allowed, _ = self.schema[path]
        return fill(self.template(*path), allowed, **fields)

    def system(self, mode: str | None, **fields: object) -> str:
        """System message: the mode framing, or the plain solver framing when ``mode`` is None."""
        return self.render(("system", mode if mode is not None else "single"), **fields)

    def answer_format(self, kind: str) -> str:
        if kind not in self.tree["answer_format"]:
            raise PromptError(
                f"no answer format for question kind {kind!r}; expected one of "
                f"{sorted(self.tree['answer_format'])}"
            )
        return self.tree["answer_format"][kind]


@functools.cache
def _defaults(protocols: tuple[Any, ...]) -> PromptSet:
    """prompts.yaml plus the templates that registered protocols bring themselves, validated once.

    A protocol outside this package may ship its own templates (``Protocol.templates``) instead of a
    section of prompts.yaml; each such section adds ``+<name>-<hash>`` to the version, so records name them.
    """
    tree = copy.deepcopy(_yaml_tree())
    schema = dict(_CORE_SCHEMA)
    for proto in protocols:
        schema.update(proto.schema)
        if proto.templates is not None and proto.name not in tree:
            tree[proto.name] = copy.deepcopy(dict(proto.templates))
            tree["version"] = f"{tree['version']}+{proto.name}-{_digest(proto.templates)}"
    _validate_tree(tree, schema, where=str(PROMPTS_FILE))
    return PromptSet(version=tree["version"], tree=tree, schema=schema)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:8]


def load_prompts(overrides: Mapping[str, Any] | PromptSet | None = None) -> PromptSet:
    """The default templates, with ``overrides`` (a partial nested dict) merged in and validated.

    Unknown keys, non-string templates and templates missing a required placeholder raise PromptError.
    Unless the overrides set their own ``version``, the version becomes ``<default>+custom-<hash>`` so
    records made with changed prompts cannot be mistaken for default ones.
    """
    if isinstance(overrides, PromptSet):
        return overrides
    base = _defaults(registered())
    tree = copy.deepcopy(dict(base.tree))
    if not overrides:
        return PromptSet(version=base.version, tree=tree, schema=base.schema)
    if not isinstance(overrides, Mapping):
        raise PromptError(f"prompts must be a dict of template overrides, got {type(overrides).__name__}")
    _merge(tree, overrides, ())
    _validate_tree(tree, base.schema, where="prompts override")
    if "version" not in overrides:
        tree["version"] = f"{base.version}+custom-{_digest(overrides)}"
    return PromptSet(version=tree["version"], tree=tree, schema=base.schema)


__all__ = [
    "FRAMING",
    "MODES",
    "PROMPTS_FILE",
    "STAGE",
    "Mode",
    "PromptError",
    "PromptSet",
    "Schema",
    "fill",
    "load_prompts",
]
