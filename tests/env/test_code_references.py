"""Every HumanEval and MBPP reference solution that passes its own tests in plain Python passes the judge,
and every one that fails there fails in the judge too: the judge neither rejects correct programs (trees
built from the program's own classes, built-in types as arguments) nor rescues broken ones.

The plain-Python verdicts are computed here, in one ``python -I`` process, from the same program and test
text the judge gets; the judge runs every reference under its sandbox.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ilr_env import load_questions
from ilr_env.grading import check_many
from ilr_env.grading.code import build_program
from ilr_env.tasks.base import Question

# Known differences, each with its reason. mbpp/341's reference returns ``tuple(a_set)`` and its test wants
# sorted order: iteration order depends on how CPython laid out that set's table, which a value copied into
# the sandbox (rebuilt with a different history) does not keep. No judge can reproduce another process's
# set layout, so this broken reference passes.
SET_ORDER_DEPENDENT = {"mbpp/341"}
# Previously rejected although correct: trees of the program's own Node class, and `int`/`str` as arguments.
PREVIOUSLY_REJECTED = ["mbpp/367", "mbpp/927", "mbpp/533"]
BROKEN_UPSTREAM = ["mbpp/596", "mbpp/642"]  # see the data folder's README
REFERENCE_TIMEOUT_S = 60.0  # mbpp/123's reference takes ~13 s on a loaded 2-core machine

_PLAIN = r"""
import json, sys
verdicts = {}
for qid, program, tests in json.load(sys.stdin):
    ns = {"__name__": "__main__"}
    try:
        exec(compile(program + "\n" + tests, qid, "exec"), ns)
        verdicts[qid] = True
    except BaseException:
        verdicts[qid] = False
print(json.dumps(verdicts))
"""


def _all_references() -> list[Question]:
    try:
        qs = load_questions("humaneval")
        for split in ("test", "train", "validation"):
            qs += load_questions("mbpp", split)
    except (LookupError, OSError) as exc:
        pytest.skip(f"benchmarks not available offline: {exc}")
    return qs


def _plain_verdicts(qs: list[Question]) -> dict[str, bool]:
    """Each reference run with its tests in a fresh namespace of one plain interpreter."""
    jobs = [[q.id, build_program(q, q.answer), str(q.metadata["tests"])] for q in qs]
    r = subprocess.run(
        [sys.executable, "-I", "-c", _PLAIN],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(r.stdout)


def _judge_verdicts(qs: list[Question]) -> dict[str, tuple[bool, str]]:
    grades = check_many(qs, [q.answer for q in qs], workers=2, timeout_s=REFERENCE_TIMEOUT_S)
    return {q.id: (g.correct, g.reason) for q, g in zip(qs, grades)}


def _check_agreement(qs: list[Question]) -> None:
    plain = _plain_verdicts(qs)
    judged = _judge_verdicts(qs)
    assert len(judged) == len(plain) == len(qs)
    differ = {qid: judged[qid] for qid in plain if plain[qid] != judged[qid][0]}
    assert set(differ) <= SET_ORDER_DEPENDENT, differ
    for qid in set(PREVIOUSLY_REJECTED) & set(plain):
        assert plain[qid] and judged[qid][0], (qid, judged[qid])
    for qid in set(BROKEN_UPSTREAM) & set(plain):
        assert not plain[qid] and not judged[qid][0], (qid, judged[qid])
        assert judged[qid][1].startswith("failed: assertion failed"), judged[qid]


def test_the_judge_agrees_with_plain_python_on_the_named_references_and_a_sample() -> None:
    """The previously rejected, the broken, the set-order one, all of HumanEval and every 8th MBPP task."""
    qs = _all_references()
    named = set(PREVIOUSLY_REJECTED) | set(BROKEN_UPSTREAM) | SET_ORDER_DEPENDENT
    mbpp = [q for q in qs if q.id.startswith("mbpp/")]
    picked = [q for q in qs if q.id.startswith("HumanEval/") or q.id in named] + mbpp[::8]
    _check_agreement(list({q.id: q for q in picked}.values()))


@pytest.mark.slow
def test_the_judge_agrees_with_plain_python_on_every_reference() -> None:
    qs = _all_references()
    assert len(qs) >= 1128
    _check_agreement(qs)
