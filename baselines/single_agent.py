"""Single-agent GRPO baseline: each model trained alone by TRL's ``GRPOTrainer``.

Built from the same parts as ILR's trainers (``ilr_agents``' trainer factory, GRPOConfig, run
folder, resume, log) and scored by the same raw reward (``ilr_agents.rewards.RawReward``, here through its
TRL adapter), on the same questions in the same order, so the difference is only what ILR adds: TRL's
own generation from the plain single-agent prompt (the one evaluation uses) instead of a discussion, and
no calibration. The run folder has ILR's layout (``agent_<i>/``, ``checkpoints/manifest-<step>.json``,
``metrics.jsonl``), so the same resume and evaluation code applies.

PPO: TRL 1.16 ships no ``PPOTrainer`` (neither in ``trl`` nor in ``trl.experimental``), so the paper's
PPO baseline is not offered here.
"""

from __future__ import annotations

from ilr_agents.config import ILRConfig
from ilr_agents.distributed_prep import release
from ilr_agents.fsdp import wrap_this_model_next
from ilr_agents.model_loading import load_model
from ilr_agents.placement import PlacementCallback, write_placement
from ilr_agents.rewards import RawReward, TRLRawReward
from ilr_agents.run_folder import RunFolder, TrainResult
from ilr_agents.run_log import attach_run
from ilr_agents.trainer_factory import build_trainer
from ilr_agents.training_data import build_dataset, load_training_questions
from ilr_agents.vllm_training import close_engine


def train_single_agent(config: ILRConfig) -> TrainResult:
    """Train every listed model alone, one after the other, in ILR's run layout (``<output_dir>/agent_<i>``).

    A checkpoint step is committed once every model has saved it, so a crash while training the second
    model resumes both from the last step they share (the first model redoes its later steps).
    """
    run = RunFolder(config)
    train_q, _ = load_training_questions(config)
    dataset = build_dataset(train_q, config.prompts)
    raw = RawReward.from_config(config)
    writer = run.manifest_writer()
    step = 0
    placed: dict[str, dict] = {}  # agent -> how this process holds its model (placement.json)
    for agent, model_name in zip(run.agents, config.models, strict=True):
        model, tokenizer = load_model(model_name, config)
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        trainer = build_trainer(
            config, agent, model, tokenizer, dataset, reward_funcs=[TRLRawReward(raw, eos)]
        )
        log = attach_run(trainer, agent, run, writer)
        trainer.add_callback(PlacementCallback(agent, placed))
        if not run.done:
            wrap_this_model_next(trainer)  # under FSDP: this model's own layers
            trainer.train(resume_from_checkpoint=run.resume_checkpoint(agent))
        log.close()
        step = trainer.state.global_step or step
        close_engine(trainer)  # before the next agent's engine, with the processes' group kept
        del trainer, model
    write_placement(run.path, placed, prepared_on=None)  # the baseline prepares nothing
    release()
    return run.finish(step, is_main=writer.enabled)
