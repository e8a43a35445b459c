"""Training questions as a TRL dataset: the plain single-agent prompt plus the question as a JSON column.

ILR's trainers use the dataset prompt only as a key (they train on the joint rollout's own prompt ids),
while the single-agent baseline generates from it, so both see the same questions in the same order.
The plain prompt is the env's ``single`` protocol prompt, i.e. exactly what evaluation asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasets import Dataset

import ilr_env
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.rewards import question_column


def plain_prompts(
    questions: Sequence[Any], prompts: dict[str, Any] | None = None
) -> list[list[dict[str, str]]]:
    """The test-time chat for each question (one env, reset per question); ``prompts`` overrides templates."""
    if not questions:
        return []
    env = ilr_env.make(
        questions[0].task, num_agents=1, protocol="single", questions=list(questions), prompts=prompts or None
    )
    chats = []
    for q in questions:
        _, infos = env.reset(options={"question_id": q.id})
        chats.append([dict(m) for m in infos[env.possible_agents[0]]["messages"]])
    return chats


def plain_prompt(question: Any) -> list[dict[str, str]]:
    return plain_prompts([question])[0]


def dedupe_by_prompt(questions: Sequence[Any]) -> list[Any]:
    """Keep the first of questions with identical prompt text: the rollout identifies questions by prompt."""
    seen: set[str] = set()
    out = []
    for q in questions:
        if q.prompt not in seen:
            seen.add(q.prompt)
            out.append(q)
    return out


def build_dataset(questions: Sequence[Any], prompts: dict[str, Any] | None = None) -> Dataset:
    chats = plain_prompts(questions, prompts)
    return Dataset.from_list(
        [
            {"prompt": chat, "question_id": q.id, "question_json": question_column(q)}
            for q, chat in zip(questions, chats, strict=True)
        ]
    )


def load_training_questions(config: ILRConfig) -> tuple[list[Any], list[Any]]:
    """(distinct training questions, validation questions) as the config names them."""
    train = dedupe_by_prompt(
        ilr_env.load_questions(
            config.task, config.train_split, limit=config.train_limit, **config.task_kwargs
        )
    )
    if len(train) < config.questions_per_step:
        raise ConfigError(
            f"task {config.task!r} split {config.train_split!r} gave {len(train)} distinct questions; "
            f"need at least questions_per_step={config.questions_per_step}"
        )
    val_task = config.validation_task or config.task
    val_kwargs = config.task_kwargs if val_task == config.task else {}
    validation = ilr_env.load_questions(
        val_task, config.validation_split, limit=config.validation_limit, **val_kwargs
    )
    return train, validation
