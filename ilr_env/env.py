"""The ILR discussion as a PettingZoo ``ParallelEnv``: one question per episode, one step per stage.

Agents are ``agent_0 .. agent_{m-1}``; every live agent acts in every step (one message each). What each
agent sees — its observation is the stage prompt, ``infos[agent]["messages"]`` the same prompt as chat:

Idea3 (``protocol="idea3"``, m ≥ 2 agents, 3 steps)
  * ``share``   — the question and its own mode framing, nothing from peers: ideas are formed
    independently, so the discussion starts from m different views instead of m copies of the first one.
    (Except with ``turn_order="alternating"``, below.)
  * ``analyse`` — the question, its own idea and **every** peer's idea (each labelled with the peer's
    name): analysis is about the others' ideas, and with m > 2 nobody is left out.
  * ``fuse``    — the question, its own and every peer's idea, its own analysis and every peer's analysis
    (which includes what the peers said about this agent's ideas): fusion is where an agent repairs its
    approach with the criticism it received, so it must see that criticism. Its reply is graded.
Debate (``protocol="debate"``, R = ``debate_rounds`` steps, Du et al. 2023)
  * ``round_0`` — the question alone; each agent answers.
  * ``round_r`` — the question, its own round r−1 answer and every peer's round r−1 answer (older rounds
    are not repeated: they are what the r−1 answers already responded to, and prompts stay bounded).
    The last round's reply is graded.
Single (``protocol="single"``, the only protocol for m = 1; 1 step)
  * ``answer``  — exactly ``ilr_env.protocols.single_prompt(question)``, the plain test-time prompt.

Idea3 turn order. ``turn_order="simultaneous"`` (default) is the above. ``"alternating"`` is the paper's
figure (A, B, A, B, A, B): 3·m steps, one agent writing per step in agent order, and each prompt also
shows what the agents before it already wrote in the same stage (``{earlier_in_stage}`` in the
templates). Every agent stays live until the end (PettingZoo's parallel API); ``infos[agent]["acting"]``
marks whose turn it is, only that agent's action is read, and a waiting agent observes its prompt of the
stage (the one it answered, or the one it would get now).

Modes are per agent and per question, drawn at ``reset`` (``options["modes"]`` overrides them):
``"dynamic"`` cooperates iff P(q, i) = 1/(1+exp(-1.7(γ_i − D_q))) < 0.5 (``difficulty`` is one D_q for
everyone, or ``{agent: {question id: D_q}}`` when each agent ranked the questions itself); a float p
cooperates with probability p (the env's own seeded generator); ``"cooperate"`` / ``"compete"`` are
fixed. An agent's framing (system message, and the Idea3 stage wording) follows its own mode; it is not
told the peers' modes. The single protocol has no peers and no framing: its infos report ``mode=None``.

Length and garbage. ``max_message_chars`` bounds only what is relayed: peers (and the agent itself, in
later stages) see the first ``max_message_chars`` characters of a message followed by a marker saying how
many characters were cut. The graded final answer is the whole reply, however long: the grader's own
work is bounded (it reads the last answer box, and the answer-phrase fallback only looks at the reply's
tail), so a long correct reply is never scored by a truncated copy. Characters outside the observation charset
(control characters, surrogates, private-use and unassigned code points) are shown as U+FFFD. Any string
is a legal action: text without a parseable answer is simply a wrong answer.

Rewards are 0 until the final step, then ``grade.reward + format_reward · [non-empty answer box]`` (one
rule with training's: ``ilr_env.grading.format_bonus``). The format term pays for form, not substance: a
policy can farm it with a confident ``\\boxed{0}``, which is why it defaults to 0 and must stay small.

Misuse raises ``ILREnvError`` (a ValueError) naming the agent and the fix, and leaves the env unchanged:
step before reset or after the end, a live agent missing from the action dict, an unknown agent, or a
non-string action (``ILRActionTypeError``, also a TypeError).
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
import unicodedata
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from gymnasium.spaces import Text
from pettingzoo import ParallelEnv

from ilr_env import difficulty as dif
from ilr_env.grading import Grade, format_bonus
from ilr_env.grading.base import GraderUnavailableError
from ilr_env.protocols import MODES, PROTOCOLS, PromptSet, load_prompts, stage_names
from ilr_env.tasks import load_questions
from ilr_env.tasks.base import Question

Grader = Callable[[Question, str], Grade]
Messages = list[dict[str, str]]

OBS_MAX_LENGTH = 10_000_000
"""Upper bound of an observation's length: prompts are bounded by the question plus m × stages × limit."""

_RENDER_MODES = (None, "ansi", "human")
TURN_ORDERS = ("simultaneous", "alternating")


class ILREnvError(ValueError):
    """A misuse of the environment (bad action dict, step after the end), naming the agent and the fix."""


class ILRActionTypeError(ILREnvError, TypeError):
    """An action that is not a string (decode token ids to text before stepping)."""


class ILRConfigError(ILREnvError):
    """An invalid ``make``/constructor argument; the message names the value and the accepted ones."""


class TextObservation(str):
    """A ``str`` whose ``dtype`` matches ``gymnasium.spaces.Text``.

    PettingZoo's AEC ``api_test`` compares ``observation_space.dtype`` with ``observation.dtype``, which
    a plain ``str`` does not have; everything else treats this exactly as a ``str``.
    """

    __slots__ = ()
    dtype = np.dtype(str)


@functools.cache
def wide_charset() -> frozenset[str]:
    """Printable code points plus whitespace controls and space/format separators.

    Left out: other control characters, surrogates, private-use and unassigned code points.

    Wide enough for any benchmark text, emoji and scripts; small enough (~145k) for ``Text`` to index.
    """
    keep_controls = set("\t\n\r\x0b\x0c")
    chars = []
    for cp in range(0x110000):
        c = chr(cp)
        if c.isprintable() or c in keep_controls or unicodedata.category(c) in ("Zs", "Zl", "Zp", "Cf"):
            chars.append(c)
    return frozenset(chars)


@functools.cache
def _text_space(max_length: int) -> Text:
    return Text(max_length=max_length, charset=wide_charset())


def _own_text_space(max_length: int) -> Text:
    """A Text space with its own RNG, sharing the (large, read-only) charset tables of a cached prototype."""
    space = copy.copy(_text_space(max_length))
    space._np_random = None  # a fresh generator, created on first use or by seed()
    return space


def sanitise(text: str) -> str:
    """Replace characters outside the observation charset with U+FFFD."""
    cs = wide_charset()
    if all(c in cs for c in text):
        return text
    return "".join(c if c in cs else "\ufffd" for c in text)


def _default_grader(question: Question, completion: str) -> Grade:
    from ilr_env.grading import grade  # resolved per call so a patched or late-loaded grader is used

    return grade(question, completion)


# ------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class EnvConfig:
    """Validated constructor arguments (see ``ilr_env.make``); derived values live on the env."""

    task: str
    num_agents: int = 2
    protocol: str | None = None
    debate_rounds: int = 2
    mode: str | float = "dynamic"
    split: str = "test"
    data_dir: str | Path | None = None
    limit: int | None = None
    max_message_chars: int = 4000
    format_reward: float = 0.0
    render_mode: str | None = None
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)
    turn_order: str = "simultaneous"

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task:
            raise ILRConfigError(f"task must be a non-empty task name such as 'math500', got {self.task!r}")
        if isinstance(self.num_agents, bool) or not isinstance(self.num_agents, int) or self.num_agents < 1:
            raise ILRConfigError(
                f"num_agents must be an int ≥ 1 (1 gives protocol='single'), got {self.num_agents!r}"
            )
        protocol = (
            self.protocol if self.protocol is not None else ("idea3" if self.num_agents >= 2 else "single")
        )
        if protocol not in PROTOCOLS:
            close = difflib.get_close_matches(str(protocol), PROTOCOLS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ILRConfigError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}{hint}")
        if protocol != "single" and self.num_agents < 2:
            raise ILRConfigError(
                f"protocol={protocol!r} needs num_agents ≥ 2, got {self.num_agents}; use "
                "protocol='single' for one agent"
            )
        object.__setattr__(self, "protocol", protocol)
        if (
            isinstance(self.debate_rounds, bool)
            or not isinstance(self.debate_rounds, int)
            or self.debate_rounds < 1
        ):
            raise ILRConfigError(f"debate_rounds must be an int ≥ 1, got {self.debate_rounds!r}")
        if isinstance(self.mode, str):
            if self.mode not in ("dynamic", *MODES):
                raise ILRConfigError(
                    f"mode must be 'dynamic', 'cooperate', 'compete' or a cooperation probability in [0, "
                    f"1], got {self.mode!r}"
                )
        elif (
            isinstance(self.mode, bool)
            or not isinstance(self.mode, int | float)
            or not 0.0 <= float(self.mode) <= 1.0
        ):
            raise ILRConfigError(
                f"mode as a cooperation probability must be a number in [0, 1], got {self.mode!r}"
            )
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        ):
            raise ILRConfigError(f"limit must be None or an int ≥ 1, got {self.limit!r}")
        mmc = self.max_message_chars
        if isinstance(mmc, bool) or not isinstance(mmc, int) or mmc < 1:
            raise ILRConfigError(
                f"max_message_chars must be an int > 0 (characters kept per message), got {mmc!r}"
            )
        fr = self.format_reward
        if isinstance(fr, bool) or not isinstance(fr, int | float) or not math.isfinite(fr) or fr < 0:
            raise ILRConfigError(f"format_reward must be a finite number ≥ 0, got {fr!r}")
        object.__setattr__(self, "format_reward", float(fr))
        if not isinstance(self.mode, str):
            object.__setattr__(self, "mode", float(self.mode))
        if self.render_mode not in _RENDER_MODES:
            raise ILRConfigError(f"render_mode must be None, 'ansi' or 'human', got {self.render_mode!r}")
        if self.turn_order not in TURN_ORDERS:
            raise ILRConfigError(f"turn_order must be one of {list(TURN_ORDERS)}, got {self.turn_order!r}")
        if self.turn_order == "alternating" and protocol != "idea3":
            raise ILRConfigError(
                f"turn_order='alternating' is defined for protocol='idea3' (agents take turns within each "
                f"stage), got protocol={protocol!r}; use turn_order='simultaneous'"
            )
        if not isinstance(self.task_kwargs, Mapping):
            raise ILRConfigError(
                f"task_kwargs must be a dict of load_questions keyword arguments, got {self.task_kwargs!r}"
            )


# ------------------------------------------------------------------------------------------ episode


@dataclass
class _Episode:
    """Everything one episode accumulates; ``reset`` replaces it whole, so nothing leaks across episodes."""

    question: Question
    modes: dict[str, str | None]
    difficulty: dict[str, float | None]
    p_correct: dict[str, float | None]
    stage_index: int = 0
    turn_index: int = 0
    prompts: list[dict[str, Messages]] = field(default_factory=list)  # per stage: agent -> prompt it acted on
    shown: list[dict[str, str]] = field(default_factory=list)  # per stage: agent -> message, in turn order
    answers: dict[str, str] = field(default_factory=dict)  # each agent's final-stage action
    rewards: dict[str, float] = field(default_factory=dict)
    grades: dict[str, Grade] = field(default_factory=dict)
    done: bool = False


class ILRParallelEnv(ParallelEnv[str, str, str]):
    """m agents discuss one question per episode through Idea3, debate or a single answer (module doc)."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "ilr_v0",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        task: str,
        *,
        num_agents: int = 2,
        protocol: str | None = None,
        debate_rounds: int = 2,
        mode: str | float = "dynamic",
        split: str = "test",
        data_dir: str | Path | None = None,
        questions: Sequence[Question] | None = None,
        limit: int | None = None,
        difficulty: Mapping[str, float]
        | Mapping[str, Mapping[str, float]]
        | str
        | Path
        | dif.Estimates
        | None = None,
        abilities: Mapping[str, float] | Sequence[float] | str | Path | dif.Estimates | None = None,
        max_message_chars: int = 4000,
        format_reward: float = 0.0,
        prompts: Mapping[str, Any] | PromptSet | None = None,
        render_mode: str | None = None,
        grader: Grader | None = None,
        task_kwargs: Mapping[str, Any] | None = None,
        turn_order: str = "simultaneous",
    ) -> None:
        self.config = EnvConfig(
            task=task,
            num_agents=num_agents,
            protocol=protocol,
            debate_rounds=debate_rounds,
            mode=mode,
            split=split,
            data_dir=data_dir,
            limit=limit,
            max_message_chars=max_message_chars,
            format_reward=format_reward,
            render_mode=render_mode,
            task_kwargs=dict(task_kwargs or {}),
            turn_order=turn_order,
        )
        self.protocol: str = self.config.protocol  # type: ignore[assignment]  # resolved in __post_init__
        self.render_mode = render_mode
        self.prompts = load_prompts(prompts)
        self.stages = stage_names(self.protocol, debate_rounds)
        self.possible_agents = [f"agent_{i}" for i in range(num_agents)]
        self.turns = self._turn_plan()
        self.agents = []
        self.observation_spaces = {a: _own_text_space(OBS_MAX_LENGTH) for a in self.possible_agents}
        self.action_spaces = {a: _own_text_space(max_message_chars) for a in self.possible_agents}
        self._grader: Grader = grader if grader is not None else _default_grader
        if grader is not None and not callable(grader):
            raise ILRConfigError(f"grader must be callable (question, completion) -> Grade, got {grader!r}")
        self._difficulty_source = difficulty
        self._abilities = self._resolve_abilities(abilities)
        self._questions: list[Question] | None = None
        self._by_id: dict[str, Question] = {}
        self._difficulties: dict[str, dict[str, float]] | None = None  # agent -> question id -> D_q
        self._rng: np.random.Generator | None = None
        self._episode: _Episode | None = None
        if questions is not None:
            self._set_questions(self._check_questions(questions))

    def _turn_plan(self) -> list[tuple[int, tuple[str, ...]]]:
        """(stage index, agents that write in this step) for every step of an episode.

        Simultaneous: one step per stage, everyone writes. Alternating (the paper's figure: A, B, A, B, A,
        B): one step per agent and stage in agent order, and each prompt template must show what was
        already written in the stage (``{earlier_in_stage}``), or the turn order would change nothing.
        """
        if self.config.turn_order == "simultaneous":
            return [(k, tuple(self.possible_agents)) for k in range(len(self.stages))]
        for k in range(len(self.stages)):
            for mode in MODES:
                path = self.prompts.stage_path(self.protocol, k, mode)
                if "{earlier_in_stage}" not in self.prompts.template(*path):
                    raise ILRConfigError(
                        f"turn_order='alternating' shows each agent what was already written in its "
                        f"stage through {{earlier_in_stage}}, which prompt {'.'.join(path)} lacks; add "
                        "it to that template or use turn_order='simultaneous'"
                    )
        return [(k, (a,)) for k in range(len(self.stages)) for a in self.possible_agents]

    # ------------------------------------------------------------------------------ spaces & data

    def observation_space(self, agent: str) -> Text:
        return self.observation_spaces[self._known(agent)]

    def action_space(self, agent: str) -> Text:
        return self.action_spaces[self._known(agent)]

    def _known(self, agent: str) -> str:
        if agent not in self.possible_agents:
            raise ILREnvError(f"unknown agent {agent!r}; this env's agents are {self.possible_agents}")
        return agent

    @property
    def questions(self) -> list[Question]:
        """The question pool, loaded on first use (so ``make`` stays cheap) and checked against the mode."""
        return self._load_pool()

    def _load_pool(self) -> list[Question]:
        if self._questions is None:
            c = self.config
            loaded = load_questions(
                c.task, c.split, data_dir=c.data_dir, limit=c.limit, **dict(c.task_kwargs)
            )
            self._set_questions(self._check_questions(loaded))
        assert self._questions is not None
        return self._questions

    def _has_difficulty(self, qid: str) -> bool:
        """Whether every agent has a D_q for ``qid``; loads the pool first (difficulties are resolved
        against it)."""
        self._load_pool()
        return self._difficulties is not None and all(qid in d for d in self._difficulties.values())

    @property
    def question(self) -> Question:
        """The current episode's question."""
        return self._require_episode().question

    @staticmethod
    def _check_questions(questions: Sequence[Question]) -> list[Question]:
        qs = list(questions) if not isinstance(questions, str | bytes) else None
        if not qs:
            raise ILRConfigError(
                f"questions must be a non-empty list of ilr_env.Question, got {questions!r:.80}"
            )
        bad = [i for i, q in enumerate(qs) if not isinstance(q, Question)]
        if bad:
            raise ILRConfigError(f"questions[{bad[0]}] is {type(qs[bad[0]]).__name__}, not ilr_env.Question")
        ids = [q.id for q in qs]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ILRConfigError(f"question ids must be unique; {dup!r} appears more than once")
        return qs

    def _set_questions(self, questions: list[Question]) -> None:
        self._difficulties = self._resolve_difficulties(questions)
        self._questions = questions
        self._by_id = {q.id: q for q in questions}

    def _resolve_difficulties(self, questions: list[Question]) -> dict[str, dict[str, float]] | None:
        """D_q for every agent: one shared source, or ``{agent: {question id: D_q}}`` (each agent's own)."""
        src = self._difficulty_source
        per_agent = (
            isinstance(src, Mapping) and bool(src) and all(isinstance(v, Mapping) for v in src.values())
        )
        if not per_agent:
            shared = self._resolve_one_difficulty(src, questions, "difficulty")
            return None if shared is None else dict.fromkeys(self.possible_agents, shared)
        assert isinstance(src, Mapping)
        unknown = [a for a in src if a not in self.possible_agents]
        missing = [a for a in self.possible_agents if a not in src]
        if unknown or missing:
            raise ILRConfigError(
                f"per-agent difficulty must give exactly the agents {self.possible_agents}; unknown "
                f"{unknown}, missing {missing}"
            )
        return {
            a: self._resolve_one_difficulty(src[a], questions, f"difficulty[{a!r}]") or {}
            for a in self.possible_agents
        }

    def _resolve_one_difficulty(
        self, src: Any, questions: list[Question], what: str
    ) -> dict[str, float] | None:
        dynamic = self.config.mode == "dynamic" and self.protocol != "single"
        if src is None and dynamic:
            if all(dif.question_level(q) is not None for q in questions):
                src = "level"
            else:
                raise ILRConfigError(
                    f"mode='dynamic' needs a difficulty D_q per question, and task {self.config.task!r} "
                    "has no "
                    "'level' field to fall back on. Pass difficulty=<dict qid->D_q or JSON path> (made "
                    "once with "
                    "ilr_env.difficulty.rank_difficulty or empirical_difficulty, saved with save_json), "
                    "or choose "
                    "mode='cooperate', 'compete' or a cooperation probability p"
                )
        if src is None:
            return None
        try:
            if isinstance(src, dif.Estimates):
                est = src
            elif isinstance(src, str) and src == "level":
                est = dif.level_difficulty(questions)
            elif isinstance(src, str | Path):
                est = dif.load_json(src, kind="difficulty")
            elif isinstance(src, Mapping):
                est = dif.Estimates("difficulty", {str(k): float(v) for k, v in src.items()})
            else:
                raise ILRConfigError(
                    f"{what} must be None, 'level', a dict qid->D_q (or agent -> such a dict), an "
                    "Estimates or a JSON path, "
                    f"got {type(src).__name__}"
                )
        except dif.DifficultyError as exc:
            raise ILRConfigError(str(exc)) from exc
        if est.kind != "difficulty":
            raise ILRConfigError(f"{what} got {est.kind} estimates; pass difficulty estimates")
        bad = [k for k, v in est.values.items() if not math.isfinite(v)]
        if bad:
            raise ILRConfigError(
                f"{what} for {bad[0]!r} is {est.values[bad[0]]}; difficulties must be finite"
            )
        missing = [q.id for q in questions if q.id not in est.values]
        if dynamic and missing:
            raise ILRConfigError(
                f"mode='dynamic' needs a difficulty for every question ({what}); {len(missing)} of "
                f"{len(questions)} have "
                f"none (e.g. {missing[:3]}). Estimate them for this split, or restrict the pool with "
                "questions=/limit="
            )
        return dict(est.values)

    def _resolve_abilities(self, src: Any) -> dict[str, float] | None:
        if src is None:
            return None
        try:
            if isinstance(src, str | Path):
                src = dif.load_json(src, kind="ability")
        except dif.DifficultyError as exc:
            raise ILRConfigError(str(exc)) from exc
        if isinstance(src, dif.Estimates):
            if src.kind != "ability":
                raise ILRConfigError(f"abilities got {src.kind} estimates; pass ability estimates")
            src = src.values
        if isinstance(src, Mapping):
            try:
                values = dif.abilities_by_agent(src, self.possible_agents)
            except dif.DifficultyError as exc:
                raise ILRConfigError(f"{exc}, or pass a list in agent order") from exc
        elif isinstance(src, Sequence | np.ndarray):
            if len(src) != len(self.possible_agents):
                raise ILRConfigError(
                    f"abilities list has {len(src)} values for {len(self.possible_agents)} agents"
                )
            values = {a: float(v) for a, v in zip(self.possible_agents, src, strict=True)}
        else:
            raise ILRConfigError(
                f"abilities must be a dict agent->γ, a list, an Estimates or a JSON path, got "
                f"{type(src).__name__}"
            )
        bad = [a for a, v in values.items() if not math.isfinite(v)]
        if bad:
            raise ILRConfigError(f"ability of {bad[0]} is {values[bad[0]]}; abilities must be finite")
        return values

    # ----------------------------------------------------------------------------------- episodes

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict]]:
        """Start an episode on a question drawn with the env's generator, or ``options["question_id"]``.

        ``options["question"]`` (a Question) plays a question from outside the pool;
        ``options["modes"]`` ({agent: "cooperate" | "compete"}) overrides the drawn mode of those agents for
        this episode (the draw still happens, so the generator's stream does not depend on overrides).
        Other option keys are ignored with a warning (PettingZoo's API test passes a dummy one).
        """
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
                raise ILREnvError(f"seed must be None or an int ≥ 0, got {seed!r}")
            self._rng = np.random.default_rng(int(seed))
        elif self._rng is None:
            self._rng = np.random.default_rng()
        options = dict(options or {})
        overrides = self._mode_overrides(options.get("modes"))
        question = self._pick_question(options)
        modes, d, p = self._draw_modes(question)
        modes.update(overrides)
        self._episode = _Episode(question=question, modes=modes, difficulty=d, p_correct=p)
        self.agents = list(self.possible_agents)
        self._begin_turn(self._episode)
        if self.render_mode == "human":
            self.render()
        return self._observations(), self._infos()

    def _pick_question(self, options: dict[str, Any]) -> Question:
        unknown = sorted(set(options) - {"question_id", "question", "modes"})
        if unknown:
            warnings.warn(
                f"reset ignores unknown options {unknown}; known: 'question_id', 'question', 'modes'",
                stacklevel=3,
            )
        assert self._rng is not None
        if options.get("question") is not None:
            q = options["question"]
            if not isinstance(q, Question):
                raise ILREnvError(f"options['question'] must be an ilr_env.Question, got {type(q).__name__}")
            dynamic = self.config.mode == "dynamic" and self.protocol != "single"
            if dynamic and not self._has_difficulty(q.id):
                raise ILREnvError(
                    f"options['question'] {q.id!r} has no difficulty, which mode='dynamic' needs"
                )
            return q
        pool = self.questions
        qid = options.get("question_id")
        if qid is not None:
            if qid not in self._by_id:
                close = difflib.get_close_matches(str(qid), list(self._by_id), n=3)
                raise ILREnvError(f"no question with id {qid!r} in this env's pool; closest: {close}")
            return self._by_id[qid]
        return pool[int(self._rng.integers(len(pool)))]

    def _mode_overrides(self, overrides: Any) -> dict[str, str]:
        if overrides is None:
            return {}
        if self.protocol == "single":
            raise ILREnvError(
                "options['modes'] has no effect with protocol='single' (no peers, no framing); drop it"
            )
        if not isinstance(overrides, Mapping):
            raise ILREnvError(
                f"options['modes'] must be a dict {{agent: 'cooperate'|'compete'}}, got {overrides!r}"
            )
        for agent, mode in overrides.items():
            self._known(agent)
            if mode not in MODES:
                raise ILREnvError(
                    f"options['modes'][{agent!r}] is {mode!r}; expected 'cooperate' or 'compete'"
                )
        return dict(overrides)

    def _draw_modes(
        self, q: Question
    ) -> tuple[dict[str, str | None], dict[str, float | None], dict[str, float | None]]:
        assert self._rng is not None
        d = {a: (self._difficulties or {}).get(a, {}).get(q.id) for a in self.possible_agents}
        mode = self.config.mode
        dynamic = mode == "dynamic"
        gammas = self._abilities or (dict.fromkeys(self.possible_agents, 0.0) if dynamic else None)
        p = {
            a: (dif.p_correct(gammas[a], d[a]) if d[a] is not None and gammas is not None else None)
            for a in self.possible_agents
        }
        if self.protocol == "single":
            return dict.fromkeys(self.possible_agents), d, p
        modes: dict[str, str | None] = {}
        for a in self.possible_agents:
            if dynamic:
                assert d[a] is not None and gammas is not None
                modes[a] = dif.choose_mode(gammas[a], d[a])
            elif isinstance(mode, str):
                modes[a] = mode
            else:
                modes[a] = "cooperate" if self._rng.random() < float(mode) else "compete"
        return modes, d, p

    def step(self, actions: dict[str, str]) -> tuple[dict, dict, dict, dict, dict]:
        """Record the messages of the agents whose turn it is; grade every final answer at the last step.

        With ``turn_order="simultaneous"`` every live agent writes in every step. With ``"alternating"``
        only ``infos[agent]["acting"]`` agents write; actions given for the others are ignored (PettingZoo
        hands every live agent an action).
        """
        ep = self._check_actions(actions)
        k, acting = self.turns[ep.turn_index]
        for a in acting:
            ep.shown[k][a] = self._shown(actions[a])
            if k == len(self.stages) - 1:
                ep.answers[a] = actions[a]
        final = ep.turn_index == len(self.turns) - 1
        rewards = dict.fromkeys(self.agents, 0.0)
        if final:
            for a in self.agents:
                rewards[a], ep.grades[a] = self._score_text(ep.question, ep.answers[a])
            ep.rewards = dict(rewards)
            ep.done = True
        else:
            ep.turn_index += 1
            self._begin_turn(ep)
        obs, infos = self._observations(), self._infos()
        terminations = dict.fromkeys(self.agents, final)
        truncations = dict.fromkeys(self.agents, False)
        if final:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminations, truncations, infos

    def _begin_turn(self, ep: _Episode) -> None:
        """Enter step ``ep.turn_index``: open its stage and build the prompts of the agents who write now."""
        k, acting = self.turns[ep.turn_index]
        ep.stage_index = k
        if len(ep.prompts) <= k:
            ep.prompts.append({})
            ep.shown.append({})
        for a in acting:
            ep.prompts[k][a] = self._stage_messages(a)

    def _check_actions(self, actions: Any) -> _Episode:
        if self._episode is None:
            raise ILREnvError("step() called before reset(); call env.reset(seed=...) first")
        if not isinstance(actions, Mapping):
            raise ILRActionTypeError(
                f"step() takes a dict {{agent: message str}} for the live agents {self.agents}, got "
                f"{type(actions).__name__}"
            )
        if self._episode.done:
            raise ILREnvError(
                f"step() got actions for {sorted(map(str, actions))} but the episode is over (all agents "
                "terminated); "
                "call env.reset() to start a new one"
            )
        acting = self.turns[self._episode.turn_index][1]
        missing = [a for a in acting if a not in actions]
        if missing:
            raise ILREnvError(
                f"step() is missing actions for agent(s) {missing}, whose turn it is (stage "
                f"{self.stages[self._episode.stage_index]!r}); pass {{agent: text}} for all of {list(acting)}"
            )
        extra = [a for a in actions if a not in self.agents]
        if extra:
            raise ILREnvError(
                f"step() got actions for unknown agent(s) {extra}; this env's agents are {self.agents}"
            )
        for a in acting:
            if not isinstance(actions[a], str):
                raise ILRActionTypeError(
                    f"action for {a} must be a str (the generated text; decode token ids first), got "
                    f"{type(actions[a]).__name__}"
                )
        return self._episode

    def _shown(self, text: str) -> str:
        limit = self.config.max_message_chars
        if not text.strip():
            return self.prompts.template("empty_message")
        if len(text) <= limit:
            return sanitise(text)
        marker = self.prompts.render(("truncation_marker",), omitted=len(text) - limit)
        return sanitise(text[:limit]) + marker

    def _score_text(self, question: Question, text: str, truncated: bool = False) -> tuple[float, Grade]:
        try:
            g = self._grader(question, text)
        except GraderUnavailableError:
            raise
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"grader raised {type(exc).__name__}: {exc}; scored as wrong", stacklevel=3)
            g = Grade(correct=False, reward=0.0, extracted=None, reason=f"grader_error:{type(exc).__name__}")
        return float(g.reward) + format_bonus(g, truncated, self.config.format_reward), g

    def score(self, agent: str, text: str, *, truncated: bool = False) -> tuple[float, Grade]:
        """Reward and grade of ``text`` as ``agent``'s final answer to the current question, without stepping.

        Same reward shape as the final step, so the n GRPO samples of a stage are scored alike; the whole
        text is graded (``max_message_chars`` only limits what peers are shown). ``truncated``: the reply
        was cut at the token limit, which forfeits the format term (a stepped action cannot say so).
        """
        self._known(agent)
        ep = self._require_episode()
        if not isinstance(text, str):
            raise ILRActionTypeError(f"score() text for {agent} must be a str, got {type(text).__name__}")
        return self._score_text(ep.question, text, truncated)

    def final_prompt(self, agent: str) -> Messages:
        """The final stage's messages for ``agent`` (available once the episode reaches that stage)."""
        self._known(agent)
        ep = self._require_episode()
        last = len(self.stages) - 1
        if len(ep.prompts) <= last or agent not in ep.prompts[last]:
            raise ILREnvError(
                f"the final prompt of {agent} depends on the earlier turns; step until "
                f"infos[{agent!r}]['final'] and ['acting'] are True (now at stage "
                f"{self.stages[ep.stage_index]!r})"
            )
        return [dict(m) for m in ep.prompts[last][agent]]

    def _require_episode(self) -> _Episode:
        if self._episode is None:
            raise ILREnvError("no episode yet; call env.reset() first")
        return self._episode

    # -------------------------------------------------------------------------------- prompts

    def _stage_messages(self, agent: str) -> Messages:
        ep = self._require_episode()
        q = ep.question
        peers = [a for a in self.possible_agents if a != agent]
        framing = {
            "agent": agent,
            "peers": _join_names(peers),
            "num_agents": len(self.possible_agents),
            "num_peers": len(peers),
        }
        fields: dict[str, object] = {
            **framing,
            "question": sanitise(q.prompt),
            "answer_format": self.prompts.answer_format(q.kind),
        }
        k = ep.stage_index
        if self.protocol == "idea3":
            earlier = [p for p in ep.shown[k] if p != agent]  # turn order: alternating fills a stage in turns
            fields["earlier_in_stage"] = (
                self.prompts.render(("earlier_in_stage",), messages=self._quote(earlier, ep.shown[k]))
                if earlier
                else ""
            )
        if self.protocol == "idea3" and k >= 1:
            fields["own_idea"] = ep.shown[0][agent]
            fields["peer_ideas"] = self._quote(peers, ep.shown[0])
        if self.protocol == "idea3" and k >= 2:
            fields["own_analysis"] = ep.shown[1][agent]
            fields["peer_analyses"] = self._quote(peers, ep.shown[1])
        if self.protocol == "debate" and k >= 1:
            fields["own_previous"] = ep.shown[k - 1][agent]
            fields["peer_previous"] = self._quote(peers, ep.shown[k - 1])
            fields["round"] = k + 1
            fields["num_rounds"] = len(self.stages)
        system = self.prompts.system(ep.modes[agent], **framing)
        user = self.prompts.render(self.prompts.stage_path(self.protocol, k, ep.modes[agent]), **fields)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _quote(self, peers: list[str], said: dict[str, str]) -> str:
        return "\n\n".join(self.prompts.render(("peer_message",), peer=p, message=said[p]) for p in peers)

    def _current_messages(self, agent: str) -> Messages:
        """The prompt of ``agent`` in the current stage: the one it answered or is answering now, else (its
        turn in this stage is still to come) the prompt as it stands now."""
        ep = self._require_episode()
        built = ep.prompts[ep.stage_index].get(agent)
        return built if built is not None else self._stage_messages(agent)

    def _observations(self) -> dict[str, str]:
        return {
            a: TextObservation(_as_text(self._current_messages(a)))
            for a in self.possible_agents
            if a in self.agents
        }

    def _infos(self) -> dict[str, dict[str, Any]]:
        ep = self._require_episode()
        k = ep.stage_index
        acting = self.turns[ep.turn_index][1]
        infos: dict[str, dict[str, Any]] = {}
        for a in self.agents:
            info: dict[str, Any] = {
                "messages": [dict(m) for m in self._current_messages(a)],
                "stage": self.stages[k],
                "stage_index": k,
                "num_stages": len(self.stages),
                "acting": not ep.done and a in acting,
                "turn": ep.turn_index,
                "num_turns": len(self.turns),
                "turn_order": self.config.turn_order,
                "final": k == len(self.stages) - 1,
                "mode": ep.modes[a],
                "difficulty": ep.difficulty[a],
                "p_correct": ep.p_correct[a],
                "question_id": ep.question.id,
                "task": ep.question.task,
                "protocol": self.protocol,
            }
            if ep.done:
                g = ep.grades[a]
                info.update(
                    extracted=g.extracted,
                    correct=bool(g.correct),
                    grade_reason=g.reason,
                    reward=ep.rewards[a],
                    has_box=bool(g.has_box),
                )
            infos[a] = info
        return infos

    # ------------------------------------------------------------------------------ rendering

    def transcript(self) -> str:
        """The episode so far as readable text: question, modes, every message, grades."""
        ep = self._require_episode()
        q = ep.question
        lines = [
            f"=== {q.task} · {q.id} · protocol={self.protocol} · prompts={self.prompts.version} ===",
            q.prompt,
            "",
        ]
        for a in self.possible_agents:
            extra = ""
            if ep.difficulty[a] is not None:
                extra = f" D_q={ep.difficulty[a]:+.3f}"
            if ep.p_correct[a] is not None:
                extra += f" P={ep.p_correct[a]:.3f}"
            lines.append(f"{a}: mode={ep.modes[a]}{extra}")
        for k, said in enumerate(ep.shown):
            lines += ["", f"--- stage {k + 1}/{len(self.stages)}: {self.stages[k]} ---"]
            for a, text in said.items():  # in the order they were written
                lines += [f"[{a}]", text, ""]
        if ep.done:
            lines.append("--- result ---")
            for a in self.possible_agents:
                g = ep.grades[a]
                lines.append(
                    f"{a}: extracted={g.extracted!r} correct={g.correct} reward={ep.rewards[a]:.3f} "
                    f"({g.reason})"
                )
        return "\n".join(lines)

    def render(self) -> str | None:
        """``ansi``: return the transcript; ``human``: print it; no render_mode: warn and return None."""
        if self.render_mode is None:
            warnings.warn(
                "render() called with render_mode=None; make the env with render_mode='ansi' or 'human'",
                stacklevel=2,
            )
            return None
        text = self.transcript() if self._episode is not None else "(no episode yet; call reset())"
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Nothing to release: the env holds no processes or files."""


def _as_text(messages: Messages) -> str:
    return "\n\n".join(m["content"] for m in messages)


def _join_names(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


__all__ = [
    "OBS_MAX_LENGTH",
    "EnvConfig",
    "ILRActionTypeError",
    "ILRConfigError",
    "ILREnvError",
    "ILRParallelEnv",
    "TextObservation",
    "sanitise",
    "wide_charset",
]
