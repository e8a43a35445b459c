"""Where a run's numbers go: metrics.jsonl, ILR's per-step rows and rollouts, TensorBoard, the progress bar,
and the trainer callback that feeds them and commits checkpoints."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback
from trl import GRPOTrainer

from ilr_agents.checkpoint import ManifestWriter
from ilr_agents.config import ILRConfig
from ilr_agents.ilr_step import StepResult
from ilr_agents.run_folder import RunFolder
from ilr_agents.step_gather import whole_step


class RunLog:
    """metrics.jsonl, plus for ILR its per-step rows, TensorBoard scalars and progress bar (main process)."""

    def __init__(self, config: ILRConfig, rank: int, is_main: bool, start_step: int) -> None:
        self.config = config
        self.run_dir = Path(config.output_dir)
        self.rank = rank
        self.is_main = is_main
        self.start_step = start_step
        self.lock = threading.Lock()
        self.history: list[dict[str, Any]] = []
        self.writer: Any = None
        self.bar: Any = None

    def _open_ilr_outputs(self) -> None:
        """TensorBoard and the bar exist for ILR's own steps only (TRL reports its own logs)."""
        if self.is_main and "tensorboard" in self.config.report_to and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter  # optional: only runs that ask for it

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard" / "ilr"))
        if self.is_main and self.config.progress and self.bar is None:
            self.bar = tqdm(
                total=self.config.max_steps, initial=self.start_step, desc="ilr train", unit="step"
            )

    def _append(self, path: Path, row: dict[str, Any]) -> None:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=float) + "\n")

    @classmethod
    def for_this_process(cls, config: ILRConfig, start_step: int) -> RunLog:
        """The log of this process (accelerate's rank; the main process writes metrics.jsonl)."""
        from accelerate import PartialState

        state = PartialState()
        return cls(config, state.process_index, state.is_main_process, start_step)

    def ilr_step(self, result: StepResult, step_time: float | None) -> None:
        """One ILR step: its episodes to ``rollouts.rank<r>.jsonl`` (every process; one line per episode,
        the evaluation transcript's shape plus ``step`` and ``rank``), its per-agent rows to metrics.jsonl,
        TensorBoard and the bar (main process)."""
        with self.lock:
            self._open_ilr_outputs()
            path = self.run_dir / f"rollouts.rank{self.rank}.jsonl"
            with path.open("a", encoding="utf-8") as handle:
                for episodes in result.episodes:
                    for record in episodes:
                        line = {**record.to_dict(tokens=False), "step": result.step, "rank": self.rank}
                        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            whole = whole_step(result, calibration=self.config.calibration, eps=self.config.calibration_eps)
            if self.is_main and whole is not None:  # the rows cover every process's questions
                self._main_outputs(whole, step_time)

    def _main_outputs(self, result: StepResult, step_time: float | None) -> None:
        step, rows = result.step, result.agent_rows()
        for agent, row in rows.items():
            line = {
                "kind": "ilr",
                "step": step,
                "agent": agent,
                "step_time": step_time,
                "shift": result.shift,
            }
            line.update(row)
            self.history.append(line)
            self._append(self.run_dir / "metrics.jsonl", line)
            if self.writer is not None:
                self._scalars(agent, row, step)
        if self.writer is not None:
            for key, value in result.shift.items():
                self.writer.add_scalar(f"calibration/{key}", value, step)
            if step_time is not None:
                self.writer.add_scalar("time/step_seconds", step_time, step)
        if self.bar is not None:
            rewards = " ".join(f"{a}={r['reward_raw_mean']:.2f}" for a, r in rows.items())
            self.bar.set_postfix_str(f"reward {rewards}")
            self.bar.update(1)

    def _scalars(self, agent: str, row: dict[str, Any], step: int) -> None:
        for key in ("reward_raw_mean", "reward_cal_mean", "accuracy", "truncated_fraction"):
            self.writer.add_scalar(f"{agent}/{key}", row[key], step)
        for mode, count in row["mode_counts"].items():
            self.writer.add_scalar(f"{agent}/mode_{mode}", count, step)
        for mode, acc in row["accuracy_by_mode"].items():
            self.writer.add_scalar(f"{agent}/accuracy_{mode}", acc, step)

    def trl_log(self, agent: str, step: int, logs: dict[str, Any]) -> None:
        """One TRL training log (those with a reward; TRL's end-of-run totals are left to train_summary)."""
        if not self.is_main or "reward" not in logs:
            return
        with self.lock:
            self._append(
                self.run_dir / "metrics.jsonl", {"kind": "trl", "step": step, "agent": agent, **logs}
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class RunCallback(TrainerCallback):
    """Commits checkpoints to the manifest and forwards TRL's logs to metrics.jsonl (public callback API)."""

    def __init__(self, agent: str, writer: ManifestWriter, log: RunLog) -> None:
        self.agent, self.writer, self.log = agent, writer, log

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.writer.report_saved(self.agent, state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if logs:
            self.log.trl_log(self.agent, state.global_step, logs)


def attach_run(
    trainer: GRPOTrainer, agent: str, run: RunFolder, writer: ManifestWriter, log: RunLog | None = None
) -> RunLog:
    """Wire a built trainer to its run: checkpoints commit through ``writer``, logs go to ``log``.

    The first trainer of a run decides which process writes (the main one); pass its log to the others.
    """
    writer.enabled = trainer.accelerator.is_main_process
    if log is None:
        log = RunLog(run.config, trainer.accelerator.process_index, writer.enabled, run.resumed_from or 0)
    trainer.add_callback(RunCallback(agent, writer, log))
    return log
