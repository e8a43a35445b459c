"""ILR co-training: m agents, each its own model and TRL ``GRPOTrainer``, fed by one joint rollout per step.

``train_ilr(config)`` is the whole run: validate (already done by ILRConfig), load questions, compute or
load difficulties and abilities, build one trainer per agent, run every trainer's ``train()`` once in its
own thread (they meet inside ``rollout_func``, see joint_rollout.py; the step itself is ilr_step.py),
checkpoint crash-safely (checkpoint.py) and log. The parts every run shares live in their own modules
(model_loading, grpo_config, run_folder, run_log, trainer_factory, fsdp);
``experiments/pipeline/methods.py`` picks this trainer or the single-agent baseline.

Outputs in ``output_dir``: ``config.yaml``, ``difficulty.json``, ``abilities.json``, ``metrics.jsonl``
(one line per step and agent: rewards raw/calibrated, accuracy, mode counts, calibration shift, step
time; plus TRL's own logs), ``rollouts.rank<r>.jsonl`` (every episode, as evaluation writes it, with each
final sample's raw and calibrated reward), ``<agent>/`` (TRL output and HF checkpoints, TensorBoard logs
under ``<agent>/runs``), ``tensorboard/ilr`` (ILR's own scalars) and ``checkpoints/manifest-<step>.json``.
"""

from __future__ import annotations

import threading
from typing import Any

import ilr_env
from ilr_agents import distributed_prep
from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.fsdp import wrap_this_model_next
from ilr_agents.joint_rollout import JointRollout, prompt_key
from ilr_agents.model_loading import load_model
from ilr_agents.placement import PlacementCallback, write_placement
from ilr_agents.preparation import Preparation, prepare_once
from ilr_agents.rendezvous import Rendezvous, RendezvousError
from ilr_agents.rewards import RawReward
from ilr_agents.run_folder import RunFolder, TrainResult
from ilr_agents.run_log import RunLog, attach_run
from ilr_agents.trainer_factory import build_trainer
from ilr_agents.training_data import build_dataset, load_training_questions


def ilr_reward(
    prompts: list[Any], completions: list[Any], ilr_reward: list[float], **kwargs: Any
) -> list[float]:
    """The calibrated reward the joint rollout computed, forwarded by TRL as an extra rollout key."""
    return list(ilr_reward)


def ilr_raw_reward(
    prompts: list[Any], completions: list[Any], ilr_raw_reward: list[float], **kwargs: Any
) -> list[float]:
    """The raw (uncalibrated) reward, weight 0: logged by TRL next to the calibrated one."""
    return list(ilr_raw_reward)


def _run_threads(trainers: dict[str, Any], turns: Rendezvous, run: RunFolder) -> None:
    errors: dict[str, BaseException] = {}

    def go(name: str) -> None:
        try:
            turns.wait_turn(name)
            wrap_this_model_next(trainers[name])  # under FSDP: this agent's own layers
            trainers[name].train(resume_from_checkpoint=run.resume_checkpoint(name))
        except BaseException as exc:  # noqa: BLE001
            errors[name] = exc
            turns.abort()
        finally:
            turns.pass_turn()

    threads = [
        threading.Thread(target=go, args=(name,), name=f"ilr-{name}", daemon=True) for name in trainers
    ]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
    except KeyboardInterrupt:
        turns.abort()
        raise
    if errors:
        primary = [e for e in errors.values() if type(e) is not RendezvousError] or list(errors.values())
        raise primary[0]


# --- the run ---------------------------------------------------------------------------------------


def train_ilr(config: ILRConfig) -> TrainResult:
    """Run ILR co-training of ``config.models`` as the config says."""
    if config.method != "ilr":
        raise ConfigError(
            f"method={config.method!r} is not ILR: train it with experiments.pipeline.methods.train"
        )
    run = RunFolder(config)
    train_q, val_q = load_training_questions(config)
    payload = run.resume_payload  # the checkpoint's own difficulties and abilities: same modes as before
    resumed = None if payload is None else Preparation(payload["difficulty"], payload["abilities"], [])
    prep, prepared_on = prepare_once(config, train_q, val_q, resumed)  # main process only, shared

    slots = config.questions_per_step * (config.num_generations if config.sampling == "full_episode" else 1)
    envs = [
        ilr_env.make(
            config.task,
            num_agents=config.num_agents,
            protocol=config.protocol,
            debate_rounds=config.debate_rounds,
            turn_order=config.turn_order,
            first_speaker=config.first_speaker,
            mode=config.mode,
            questions=train_q,
            prompts=config.prompts or None,
            difficulty=prep.difficulty,
            abilities=prep.abilities,
            format_reward=0.0,
        )
        for _ in range(slots)
    ]
    dataset = build_dataset(train_q, config.prompts)
    log = RunLog.for_this_process(config, run.resumed_from or 0)
    joint = JointRollout(
        config,
        run.agents,
        envs,
        RawReward.from_config(config),
        questions={prompt_key(row["prompt"]): q for row, q in zip(dataset, train_q, strict=True)},
        on_step=log.ilr_step,
    )
    writer = run.manifest_writer(difficulty=prep.difficulty, abilities=prep.abilities)
    trainers: dict[str, Any] = {}
    placed: dict[str, dict[str, Any]] = {}  # agent -> how this process holds its model
    for agent, model_name in zip(run.agents, config.models, strict=True):
        model, tokenizer = load_model(model_name, config)
        trainers[agent] = build_trainer(
            config,
            agent,
            model,
            tokenizer,
            dataset,
            reward_funcs=[ilr_reward, ilr_raw_reward],
            reward_weights=[1.0, 0.0],
            rollout_func=joint.rollout_func_for(agent),
        )
        attach_run(trainers[agent], agent, run, writer, log)
        trainers[agent].add_callback(PlacementCallback(agent, placed))
    try:
        if not run.done:
            _run_threads(trainers, joint.rendezvous, run)
    finally:
        log.close()
    write_placement(run.path, placed, prepared_on)
    distributed_prep.release()
    return run.finish(trainers[run.agents[0]].state.global_step, is_main=writer.enabled, history=log.history)
