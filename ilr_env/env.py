"""The ILR discussion as a PettingZoo ``ParallelEnv``: one question per episode, one step per stage.

Agents are ``agent_0 .. agent_{m-1}`` (``agent_names(m)``); every live agent acts in every step (one
message each). What each agent sees at each stage is its protocol's business (``ilr_env.protocols``:
``idea3``, the default for m ≥ 2; ``debate``; ``single``, the only one for m = 1): its observation is the
stage prompt, and ``infos[agent]["messages"]`` the same prompt as chat. The last stage's reply is graded.

Turn order. ``turn_order="simultaneous"`` (default): everyone writes in every stage. ``"alternating"``
(Idea3; the paper's figure: A, B, A, B, A, B): m steps per stage, one agent writing per step, and each
prompt also shows what the agents before it already wrote in the same stage (``{earlier_in_stage}`` in
the templates). ``first_speaker="fixed"`` lets agent_0 open every stage; ``"rotate"`` draws the opener
per episode from the env's seeded generator. Every agent stays live until the end (PettingZoo's parallel
API); ``infos[agent]["acting"]`` marks whose turn it is, only that agent's action is read, and a waiting
agent observes its prompt of the stage (the one it answered, or the one it would get now).

Modes are per agent and per question, drawn at ``reset`` (``options["modes"]`` overrides them):
``"dynamic"`` cooperates iff P(q, i) = 1/(1+exp(-1.7(γ_i − D_q))) < 0.5 (``difficulty`` is one D_q for
everyone, or ``{agent: {question id: D_q}}`` when each agent ranked the questions itself); a float p
cooperates with probability p (the env's own seeded generator); ``"cooperate"`` / ``"compete"`` are
fixed. An agent's framing (system message, and the Idea3 stage wording) follows its own mode; it is not
told the peers' modes. A protocol without framing (single) has no modes: its infos report ``mode=None``.

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

import difflib
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from gymnasium.spaces import Text
from pettingzoo import ParallelEnv

from ilr_env import difficulty as dif
from ilr_env.config import EnvConfig, agent_names
from ilr_env.episode import Episode, Messages
from ilr_env.errors import ILRActionTypeError, ILRConfigError, ILREnvError
from ilr_env.grading import Grade, format_bonus
from ilr_env.grading.base import GraderUnavailableError
from ilr_env.protocols import MODES, PromptSet, StageView, get_protocol, load_prompts
from ilr_env.sources import check_questions, resolve_abilities, resolve_difficulties
from ilr_env.spaces import OBS_MAX_LENGTH, TextObservation, own_text_space, sanitise, wide_charset
from ilr_env.tasks import load_questions
from ilr_env.tasks.base import Question

Grader = Callable[[Question, str], Grade]


def _default_grader(question: Question, completion: str) -> Grade:
    from ilr_env.grading import grade  # resolved per call so a patched or late-loaded grader is used

    return grade(question, completion)


class ILRParallelEnv(ParallelEnv[str, str, str]):
    """m agents discuss one question per episode under a registered protocol (module doc).

    ``protocol`` is its name and ``rules`` the protocol object the env asks for stages and prompts.
    """

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
        first_speaker: str = "fixed",
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
            first_speaker=first_speaker,
        )
        self.protocol: str = self.config.protocol  # type: ignore[assignment]  # resolved in __post_init__
        self.rules = get_protocol(self.protocol)
        self.render_mode = render_mode
        self.prompts = load_prompts(prompts)
        self.stages = self.rules.stages(debate_rounds)
        self.possible_agents = agent_names(num_agents)
        self.rules.check_turn_order(turn_order, self.prompts, len(self.stages))
        self.turns = self.rules.turn_plan(self.possible_agents, len(self.stages), turn_order)
        self.agents = []
        self.observation_spaces = {a: own_text_space(OBS_MAX_LENGTH) for a in self.possible_agents}
        self.action_spaces = {a: own_text_space(max_message_chars) for a in self.possible_agents}
        self._grader: Grader = grader if grader is not None else _default_grader
        if grader is not None and not callable(grader):
            raise ILRConfigError(f"grader must be callable (question, completion) -> Grade, got {grader!r}")
        self._difficulty_source = difficulty
        self._abilities = resolve_abilities(abilities, self.possible_agents)
        self._questions: list[Question] | None = None
        self._by_id: dict[str, Question] = {}
        self._difficulties: dict[str, dict[str, float]] | None = None  # agent -> question id -> D_q
        self._rng: np.random.Generator | None = None
        self._episode: Episode | None = None
        if questions is not None:
            self._set_questions(check_questions(questions))

    @property
    def _dynamic(self) -> bool:
        """Whether modes come from P(q, i): only for protocols whose agents have a framing."""
        return self.config.mode == "dynamic" and self.rules.framed

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
            self._set_questions(check_questions(loaded))
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

    def _set_questions(self, questions: list[Question]) -> None:
        self._difficulties = resolve_difficulties(
            self._difficulty_source,
            questions,
            self.possible_agents,
            dynamic=self._dynamic,
            task=self.config.task,
        )
        self._questions = questions
        self._by_id = {q.id: q for q in questions}

    # ----------------------------------------------------------------------------------- episodes

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict]]:
        """Start an episode on a question drawn with the env's generator, or ``options["question_id"]``.

        ``options["question"]`` (a Question) plays a question from outside the pool;
        ``options["modes"]`` ({agent: "cooperate" | "compete"}) overrides the drawn mode of those agents for
        this episode (the draw still happens, so the generator's stream does not depend on overrides).
        ``options["first_speaker"]`` (an agent) opens every stage of this alternating episode, e.g. for a
        caller that rotates the opener per batch, so that one policy call still serves every episode.
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
        opener = self._opener_override(options.get("first_speaker"))
        question = self._pick_question(options)
        modes, d, p = self._draw_modes(question)
        modes.update(overrides)
        first = 0
        if self.config.first_speaker == "rotate":  # drawn after the modes: their stream stays as with "fixed"
            first = int(self._rng.integers(len(self.possible_agents)))
        first = opener if opener is not None else first
        self.turns = self.rules.turn_plan(
            self.possible_agents, len(self.stages), self.config.turn_order, first
        )
        self._episode = Episode(question=question, modes=modes, difficulty=d, p_correct=p)
        self.agents = list(self.possible_agents)
        self._begin_turn(self._episode)
        if self.render_mode == "human":
            self.render()
        return self._observations(), self._infos()

    def _pick_question(self, options: dict[str, Any]) -> Question:
        unknown = sorted(set(options) - {"question_id", "question", "modes", "first_speaker"})
        if unknown:
            warnings.warn(
                f"reset ignores unknown options {unknown}; known: 'question_id', 'question', 'modes', "
                "'first_speaker'",
                stacklevel=3,
            )
        assert self._rng is not None
        if options.get("question") is not None:
            q = options["question"]
            if not isinstance(q, Question):
                raise ILREnvError(f"options['question'] must be an ilr_env.Question, got {type(q).__name__}")
            if self._dynamic and not self._has_difficulty(q.id):
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

    def _opener_override(self, agent: Any) -> int | None:
        if agent is None:
            return None
        if self.config.turn_order != "alternating":
            raise ILREnvError(
                f"options['first_speaker']={agent!r} orders alternating turns, but this env has "
                f"turn_order={self.config.turn_order!r}; drop it"
            )
        return self.possible_agents.index(self._known(agent))

    def _mode_overrides(self, overrides: Any) -> dict[str, str]:
        if overrides is None:
            return {}
        if not self.rules.framed:
            raise ILREnvError(
                f"options['modes'] has no effect with protocol={self.protocol!r} (no peers, no framing); "
                "drop it"
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
        if not self.rules.framed:
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

    def _begin_turn(self, ep: Episode) -> None:
        """Enter step ``ep.turn_index``: open its stage and build the prompts of the agents who write now."""
        k, acting = self.turns[ep.turn_index]
        ep.stage_index = k
        if len(ep.prompts) <= k:
            ep.prompts.append({})
            ep.shown.append({})
        for a in acting:
            ep.prompts[k][a] = self._stage_messages(a)

    def _check_actions(self, actions: Any) -> Episode:
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

    def _require_episode(self) -> Episode:
        if self._episode is None:
            raise ILREnvError("no episode yet; call env.reset() first")
        return self._episode

    # -------------------------------------------------------------------------------- prompts

    def _stage_messages(self, agent: str) -> Messages:
        ep = self._require_episode()
        view = StageView(
            agent=agent,
            agents=tuple(self.possible_agents),
            stage_index=ep.stage_index,
            num_stages=len(self.stages),
            shown=ep.shown,
            question=sanitise(ep.question.prompt),
            answer_format=self.prompts.answer_format(ep.question.kind),
            mode=ep.modes[agent],
        )
        return self.rules.messages(self.prompts, view)

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
        return ep.transcript(self.protocol, self.prompts.version, self.possible_agents, self.stages)

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


__all__ = [
    "OBS_MAX_LENGTH",
    "EnvConfig",
    "ILRActionTypeError",
    "ILRConfigError",
    "ILREnvError",
    "ILRParallelEnv",
    "TextObservation",
    "agent_names",
    "sanitise",
    "wide_charset",
]
