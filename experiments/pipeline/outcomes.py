"""Per-question outcomes of one model on one benchmark, from its episode records: the columns that
``results.json`` stores and the report's tables and paired tests are computed from.

They are read from the records that ``RUN_DIR/transcripts/`` holds (``records.read_records``), so every
count in the report is an answer a reader can open in the viewer. Length is ``completion_tokens``, the one
definition ``summarise`` uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from experiments.reports.records import submitted
from ilr_agents.evaluation import completion_tokens
from ilr_agents.rewards import lenient_correctness

COLUMNS = ("question_ids", "correct", "boxed", "strict", "lenient", "length")


def question_outcomes(records: Iterable[dict[str, Any]], questions: Sequence[Any]) -> dict[str, list[Any]]:
    """correct = graded correct; boxed = the answer was in a box; strict = both; lenient = correct or, with
    no answer stated and the reply not cut, its last number correct; length = completion tokens."""
    by_id = {q.id: q for q in questions}
    out: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for record in records:
        qid = record["question"]["id"]
        sample = submitted(record)
        boxed = bool(sample.grade and sample.grade.has_box)
        out["question_ids"].append(qid)
        out["correct"].append(sample.correct)
        out["boxed"].append(boxed)
        out["strict"].append(sample.correct and boxed)
        out["lenient"].append(lenient_correctness(by_id[qid], sample.text, sample.truncated) == 1.0)
        out["length"].append(completion_tokens(sample))
    return out
