"""Hostile maths answers: each graded (as wrong) within the 2 s containment bound, on the main thread and
from a worker thread, without crashing or hanging the caller."""

from __future__ import annotations

import threading
import time

import pytest

from ilr_env.grading import grade
from ilr_env.grading.verify_pool import get_pool
from ilr_env.tasks.base import Question

BOUND_S = 2.0
GOLD = Question(id="h", prompt="?", answer="42", task="security", kind="math")

HOSTILE = {
    "power_tower": r"\boxed{9^{9^{9^9}}}",
    "unbraced_tower": r"\boxed{9^9^9^9}",
    "python_tower": r"\boxed{9**9**9**9}",
    "huge_exponent": r"\boxed{10^{100000000}}",
    "huge_factorial": r"\boxed{1000000!}",
    "huge_sum": r"\boxed{\sum_{k=1}^{10^{12}} k^{k}}",
    "slow_expand": r"\boxed{(x+1)^{5000} - (x-1)^{4999}}",
    "long_answer": r"\boxed{" + "1+" * 50_000 + "1}",
    "long_text": "x" * 100_000,
    "long_fallback": "the answer is " * 10_000,
    "nested_braces": r"\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "nested_parens": r"\boxed{" + "(" * 5_000 + "1" + ")" * 5_000 + "}",
    "unclosed_boxes": r"\boxed{" * 30_000,
    "invalid_latex": r"\boxed{\frac{{}{\sqrt[}}} \boxed{\begin{matrix} & \\ \end{pmatrix}}",
    "control_chars": "\\boxed{4\x00\x07\x1b[2J1}",
    "bidi_unicode": "\\boxed{\u202e24\u200b}",
    "big_matrix": r"\boxed{\begin{pmatrix}" + "&".join(["x^{99}"] * 30) + r"\end{pmatrix}}",
    "many_digits": r"\boxed{" + "9" * 900 + "}",
    "big_product": r"\boxed{" + "*".join(["99999999999"] * 80) + "}",
    "weird_integral": r"\boxed{\int_0^1 e^{x^2} \sin(x^{x^x}) \, dx}",
}


@pytest.fixture(scope="module", autouse=True)
def warm_pool() -> None:
    get_pool().warm()  # the first worker start imports math-verify; that is set-up, not grading


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_answer_graded_within_bound(name: str) -> None:
    start = time.monotonic()
    g = grade(GOLD, HOSTILE[name])
    elapsed = time.monotonic() - start
    assert elapsed <= BOUND_S, f"{name} took {elapsed:.2f}s"
    assert not g.correct and g.reward == 0.0 and g.reason


def test_hostile_answers_from_a_worker_thread() -> None:
    results: dict[str, tuple[float, bool]] = {}

    def work() -> None:
        for name in ("power_tower", "slow_expand", "nested_braces", "long_text", "control_chars"):
            start = time.monotonic()
            g = grade(GOLD, HOSTILE[name])
            results[name] = (time.monotonic() - start, g.correct)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert len(results) == 5
    assert all(elapsed <= BOUND_S and not correct for elapsed, correct in results.values()), results


LIST_GOLD = Question(id="hl", prompt="?", answer="1,-2", task="security", kind="math")
HOSTILE_LISTS = {
    "slow_boxes": r"\boxed{(x+1)^{5000} - (x-1)^{4999}} and \boxed{(x+2)^{5000} - (x-1)^{4999}}",
    "many_boxes": r"\boxed{1}, " * 100_000 + r"\boxed{-2}",
    "many_groups": r"\boxed{1} then " * 100_000,
    "tower_boxes": r"\boxed{9^{9^{9^9}}}, \boxed{-2}",
}


@pytest.mark.parametrize("name", sorted(HOSTILE_LISTS))
def test_hostile_boxes_against_a_list_gold_within_bound(name: str) -> None:
    """Several boxes are read together and, failing that, element by element: still bounded (the list
    and the element-by-element pass get one deadline each)."""
    start = time.monotonic()
    g = grade(LIST_GOLD, HOSTILE_LISTS[name])
    elapsed = time.monotonic() - start
    assert elapsed <= 2 * BOUND_S + 0.5, f"{name} took {elapsed:.2f}s"
    assert not g.correct


def test_pool_recovers_after_a_timeout() -> None:
    assert grade(GOLD, HOSTILE["slow_expand"]).reason == "timeout"
    start = time.monotonic()
    assert grade(Question("ok", "?", r"\frac{1}{2}", "t", "math"), r"\boxed{0.5}").correct
    assert time.monotonic() - start <= BOUND_S
