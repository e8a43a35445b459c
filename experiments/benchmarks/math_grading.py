"""Case 3 — maths grading: ``ilr_env.grade`` vs calling math-verify directly, on the same MATH-500 pairs.

Answers written in several boxes (list, set and tuple golds) are counted apart, ours against math-verify's,
and not timed.
Every question contributes three completions written the way a model writes them (reasoning, then the
answer in ``\\boxed{}``): its own gold, an equivalent rewrite of the gold when a cheap one exists
(``5`` -> ``5.0``, ``\\frac{a}{b}`` -> ``\\dfrac{a}{b}``), and another question's gold (a wrong answer).
The reference is what a user of math-verify writes: ``verify(parse("\\boxed{gold}"), parse(completion))``
on the main thread with math-verify's own timeouts. Verdicts must be identical; every disagreement is
reported. Our grader is allowed its fast path and its cache of parsed golds — that is the point.
"""

from __future__ import annotations

import re
from typing import Any

from experiments.benchmarks.common import (
    BenchContext,
    CaseResult,
    Stat,
    interleave,
    profile_top,
    ratios,
    timed,
)

NAME = "math_grading"
TITLE = "Maths grading (MATH-500, answers/s)"
_FRAC_RE = re.compile(r"^\\frac\{(-?\d+)\}\{(\d+)\}$")
_INT_RE = re.compile(r"^-?\d+$")


def _completion(answer: str) -> str:
    return (
        "Let me work through this step by step.\n"
        f"Combining the steps above, the answer is $\\boxed{{{answer}}}$."
    )


def _equivalent(gold: str) -> str | None:
    """A differently written but equal answer, when one is cheap to write."""
    if _INT_RE.match(gold):
        return f"{gold}.0"
    m = _FRAC_RE.match(gold)
    if m:
        return f"\\dfrac{{{m.group(1)}}}{{{m.group(2)}}}"
    return None


def build_pairs(questions: list[Any]) -> list[tuple[Any, str, str]]:
    """(question, completion, kind) triples: gold, equivalent rewrite where possible, another gold."""
    pairs: list[tuple[Any, str, str]] = []
    n = len(questions)
    for i, q in enumerate(questions):
        gold = str(q.answer)
        pairs.append((q, _completion(gold), "gold"))
        eq = _equivalent(gold)
        if eq is not None:
            pairs.append((q, _completion(eq), "equivalent"))
        for step in range(1, n):  # the nearest other question whose gold is written differently
            other = str(questions[(i + step) % n].answer)
            if other.strip() != gold.strip():
                pairs.append((q, _completion(other), "wrong"))
                break
    return pairs


def several_boxes(questions: list[Any]) -> list[tuple[Any, str]]:
    """Each list, set or tuple gold written as models often write it, one box per answer (math-verify
    reads such a reply as a set itself; our grader once read only its last box). Counted, not timed."""
    from ilr_env.grading.forms import gold_elements

    out = []
    for q in questions:
        shape, elements = gold_elements(str(q.answer))
        if shape != "one":
            boxes = " and ".join(f"$\\boxed{{{e}}}$" for e in elements)
            out.append((q, f"Let me work through this step by step.\nThe answers are {boxes}."))
    return out


def reference_verdict(gold: str, completion: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(f"\\boxed{{{gold}}}"), parse(completion)))


def run(ctx: BenchContext) -> CaseResult:
    import ilr_env
    from ilr_env.grading.verify_pool import get_pool

    result = CaseResult(NAME, TITLE, "answers/s", "ours / math-verify throughput", ">=", 1.0)
    questions = ilr_env.load_questions("math500", data_dir=ctx.data_dir, limit=24 if ctx.quick else None)
    pairs = build_pairs(questions)
    get_pool().warm()  # worker start-up is a one-off cost, not per-answer throughput

    def ours() -> list[bool]:
        return [ilr_env.grade(q, c).correct for q, c, _ in pairs]

    def reference() -> list[bool]:
        return [reference_verdict(str(q.answer), c) for q, c, _ in pairs]

    ours_first, ref_first = ours(), reference()  # warm-up (imports, sympy caches), and the verdict check
    disagreements = [
        {
            "question_id": q.id,
            "kind": kind,
            "gold": str(q.answer),
            "completion_tail": c[-80:],
            "ours": o,
            "math_verify": r,
        }
        for (q, c, kind), o, r in zip(pairs, ours_first, ref_first, strict=True)
        if o != r
    ]
    runs = interleave(
        {"ours": lambda: timed(lambda: len(ours())), "reference": lambda: timed(lambda: len(reference()))},
        ctx.reps(full=3),
    )
    result.ours = Stat.of([m.rate for m in runs["ours"]])
    result.reference = Stat.of([m.rate for m in runs["reference"]])
    result.ratio = Stat.of(ratios([m.rate for m in runs["ours"]], [m.rate for m in runs["reference"]]))
    kinds = {k: sum(1 for *_, kind in pairs if kind == k) for k in ("gold", "equivalent", "wrong")}
    forms = several_boxes(questions)
    result.details = {
        "questions": len(questions),
        "pairs": len(pairs),
        "pairs_by_kind": kinds,
        "correct_ours": sum(ours_first),
        "correct_math_verify": sum(ref_first),
        "disagreements": len(disagreements),
        "disagreement_examples": disagreements[:20],
        "verify_pool_workers": get_pool().max_workers,
        "several_boxes": {
            "pairs": len(forms),
            "correct_ours": sum(ilr_env.grade(q, c).correct for q, c in forms),
            "correct_math_verify": sum(reference_verdict(str(q.answer), c) for q, c in forms),
        },
    }
    result.notes.append(
        f"{len(pairs)} pairs ({kinds}); verdicts identical: {not disagreements} "
        f"({len(disagreements)} disagreements)"
    )
    several = result.details["several_boxes"]
    result.notes.append(
        f"several boxes (list/set/tuple golds, one box per answer; not timed): ours "
        f"{several['correct_ours']}/{several['pairs']} correct, math-verify "
        f"{several['correct_math_verify']}/{several['pairs']}"
    )
    result.notes.append(
        "both arms sequential on the calling thread; ours may use its exact/numeric fast path and "
        "its per-worker cache of parsed golds, the reference parses both sides every time"
    )
    result.judge()
    if disagreements:
        result.met = False
    if result.met is False:
        result.profile = profile_top(ours)
    return result
