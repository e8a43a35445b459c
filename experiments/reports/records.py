"""The one reader of episode records, for the viewer and for ``ilr compare``'s per-question outcomes.

Evaluation (``transcripts.jsonl``, ``ilr compare``'s ``transcripts/*.jsonl``) and training
(``rollouts.rank<r>.jsonl``) write the same line: ``EpisodeRecord.to_dict()``, which training extends with
``step`` and ``rank`` and, per final sample, ``calibrated_reward``. Reading them in one place means that a
number in a report and the answer shown beside it in the viewer cannot disagree.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ilr_agents.rollout import Sample
from ilr_env.grading import Grade

_GRADE_FIELDS = {f.name for f in dataclasses.fields(Grade)}


class RecordError(ValueError):
    """A line that is not an episode record (JSON with ``question`` and ``final_samples``)."""


def is_record(line: Any) -> bool:
    return isinstance(line, dict) and isinstance(line.get("final_samples"), dict) and "question" in line


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every episode record of a JSONL file, in order; a line of another shape stops the reading with its
    file and line number (a run from an older ilr wrote flat per-agent rows: re-run it to view it)."""
    path = Path(path)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{number} is not JSON ({exc.msg}); the file is damaged") from exc
            if not is_record(record):
                keys = sorted(record)[:6] if isinstance(record, dict) else type(record).__name__
                raise RecordError(
                    f"{path}:{number} is not an episode record (it has {keys}, not question and "
                    "final_samples): it was written by an older ilr; re-run to view it"
                )
            yield record


def sample_from_dict(sample: Mapping[str, Any]) -> Sample:
    """A final sample of a record as the typed ``Sample`` the metrics are defined on."""
    grade = sample.get("grade")
    return Sample(
        str(sample.get("text", "")),
        finish_reason=str(sample.get("finish_reason", "stop")),
        completion_ids=sample.get("completion_ids"),
        reward=sample.get("reward"),
        grade=None if grade is None else Grade(**{k: v for k, v in grade.items() if k in _GRADE_FIELDS}),
    )


def submitted(record: Mapping[str, Any], agent: str = "agent_0") -> Sample:
    """The sample ``agent`` submitted in this episode (its first final sample)."""
    samples = record["final_samples"].get(agent)
    if not samples:
        raise RecordError(f"episode {record.get('episode')} has no final sample of {agent}")
    return sample_from_dict(samples[0])
