"""Published benchmarks as tasks: each maps its source's own field names onto ``Question``.

Expected file names in a data directory (``data_dir=`` or ``$ILR_DATA_DIR``; ``.jsonl.gz`` also accepted):

==============  ==========  ===============================================================
task            split       file
==============  ==========  ===============================================================
math500         test        math500.jsonl
math            train       all of MATH (train + test, 12.5k) minus MATH-500 minus validation (~11k):
                            math.jsonl (the whole of MATH in one file), or math_train.jsonl +
                            math_test.jsonl; MATH-500 (math500.jsonl) is needed to exclude it
math            validation  1,000 problems of that pool (``validation_size``, fixed seed)
math            test        MATH-500 (the same rows as task math500, with MATH's content-hash ids)
gsm8k           test/train  gsm8k.jsonl / gsm8k_train.jsonl
minerva_math    test        minerva_math.jsonl
olympiadbench   test        olympiadbench.jsonl
aime24, aime25  test        aime24.jsonl, aime25.jsonl
amc23           test        amc23.jsonl
humaneval       test        humaneval.jsonl(.gz)
mbpp            test/train/ mbpp.jsonl / mbpp_train.jsonl / mbpp_validation.jsonl (HF ``full`` fields;
                validation  otherwise the hub only: no offline copy of MBPP is known)
gpqa_diamond    test        gpqa_diamond.csv (the original GPQA columns)
mmlu_stem       test        mmlu_stem.jsonl
==============  ==========  ===============================================================

Gold answers: GSM8K = text after ``####`` (commas removed); Minerva and MATH without an ``answer`` field =
last ``\\boxed{}`` of the solution; OlympiadBench = its ``final_answer`` list joined with ", " (``$`` removed,
the raw list kept in metadata); AMC = as written (``27.0``), with ``metadata["answer_normalised"]`` ("27").
Choice tasks: answer is a letter, ``metadata["choices"]`` the options in prompt order. Code tasks: answer is
the reference solution (HumanEval: the body, MBPP: a full program); ``metadata["tests"]`` is test code that
raises when appended to a correct full program (HumanEval's ``check(entry_point)`` call is included),
``metadata["entry_point"]`` the function under test, ``metadata["prompt"]`` HumanEval's stub.

Hub ids are real dataset ids; every ``revision="main"`` below is an unverified revision (no commit hash
could be checked from this machine) and should be pinned to a hash once verified.
"""

from __future__ import annotations

from ilr_env.tasks.benchmarks.choice import CHOICE_TASKS
from ilr_env.tasks.benchmarks.code import CODE_TASKS
from ilr_env.tasks.benchmarks.common import BenchmarkTask
from ilr_env.tasks.benchmarks.maths import MATH_TASKS

BENCHMARKS: tuple[BenchmarkTask, ...] = (*MATH_TASKS, *CODE_TASKS, *CHOICE_TASKS)

__all__ = ["BENCHMARKS", "BenchmarkTask"]
