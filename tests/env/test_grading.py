"""Graders: maths extraction and verification, choice letters, code pass/fail, dispatch."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilr_env.grading import (
    UnknownKindError,
    check_code,
    extract_choice_letter,
    extract_code,
    extract_math_answer,
    grade,
    last_boxed,
    pass_at_k,
)
from ilr_env.grading.maths import unsafe_reason
from ilr_env.tasks.base import Question

VERDICT_TIMEOUT_S = 30.0


def mq(answer: str, **meta: object) -> Question:
    return Question(id="q", prompt="?", answer=answer, task="t", kind="math", metadata=dict(meta))


def cq(answer: str, choices: list[str] | None = None) -> Question:
    return Question(
        id="c",
        prompt="?",
        answer=answer,
        task="t",
        kind="choice",
        metadata={"choices": choices} if choices else {},
    )


# ---------------------------------------------------------------- maths extraction


def test_last_box_wins_and_nested_braces() -> None:
    text = r"first \boxed{1} then \boxed{\frac{a}{b^{2}}} done"
    assert last_boxed(text) == r"\frac{a}{b^{2}}"


def test_empty_and_unclosed_boxes_do_not_count() -> None:
    assert last_boxed(r"\boxed{7} and later \boxed{}") == "7"
    assert last_boxed(r"\boxed{7} then truncated \boxed{8") == "7"
    assert last_boxed(r"\boxed{ }") is None


def test_fbox_and_escaped_braces() -> None:
    assert last_boxed(r"so \fbox{5}.") == "5"
    assert last_boxed(r"\boxed{\{1,2\}}") == r"\{1,2\}"


@pytest.mark.parametrize(
    ("text", "answer", "source"),
    [
        ("So the answer is 12.", "12", "answer_is"),
        (
            "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.",
            "\\frac{3}{4}",
            "answer_is",
        ),
        ("the answer is 5. Later, the answer is 7", "7", "answer_is"),
        ("He pays 3 + 4 = 7 dollars.\n#### 7", "7", "hash"),
        ("no answer here", None, "none"),
    ],
)
def test_fallbacks(text: str, answer: str | None, source: str) -> None:
    got = extract_math_answer(text)
    assert (got.answer, got.source, got.has_box) == (answer, source, False)


_atoms = st.text(alphabet="abcxyz0123456789+-*/^_ ", min_size=1, max_size=5)
_balanced = st.recursive(
    _atoms,
    lambda inner: (
        st.builds(lambda a, b: a + "{" + b + "}", _atoms, inner) | st.builds(lambda a, b: a + b, inner, inner)
    ),
    max_leaves=30,
)


@given(prefix=st.text(alphabet="ab {}$\n", max_size=30), content=_balanced)
@settings(max_examples=200, deadline=None)
def test_box_content_roundtrips_for_any_balanced_braces(prefix: str, content: str) -> None:
    if not content.strip():
        return
    text = prefix.replace("{", "(").replace("}", ")") + r"\boxed{" + content + "} end."
    got = extract_math_answer(text)
    assert got.has_box and got.answer == content.strip()


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_extraction_never_raises(text: str) -> None:
    extract_math_answer(text)
    extract_choice_letter(text, "ABCD")


def test_deep_nesting_is_linear() -> None:
    text = r"\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}"
    assert last_boxed(text) is not None
    assert last_boxed(r"\boxed{" * 30_000) is None


# ---------------------------------------------------------------- maths verification


@pytest.mark.parametrize(
    ("gold", "pred"),
    [
        (r"\frac{1}{2}", "0.5"),
        (r"3\sqrt{13}", r"\sqrt{117}"),
        ("x^2+2x+1", "(x+1)^2"),
        ("70", "070"),
        (r"\{1,2\}", r"\{2,1\}"),
        (r"10\%", "0.1"),
        (r"\frac{\pi}{2}", r"\pi/2"),
        ("5", "x=5"),
        ("27.0", "27"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi/2)"),
        (r"\dfrac{3}{4}", r"\frac34"),
    ],
)
def test_math_verify_equivalences(gold: str, pred: str) -> None:
    # a generous deadline: these check verdicts, and sympy can need seconds on a loaded 2-core machine
    g = grade(mq(gold), f"We get \\boxed{{{pred}}}.", timeout=VERDICT_TIMEOUT_S)
    assert g.correct and g.reward == 1.0 and g.has_box and g.extracted == pred


@pytest.mark.parametrize(
    ("gold", "pred"), [("2", "3"), (r"\frac{1}{2}", "0.51"), ("x^2", "x^3"), ("12", "120")]
)
def test_math_mismatches(gold: str, pred: str) -> None:
    g = grade(mq(gold), f"\\boxed{{{pred}}}", timeout=VERDICT_TIMEOUT_S)
    assert not g.correct and g.reward == 0.0 and g.reason == "mismatch"


def test_gsm8k_style_and_no_answer() -> None:
    assert grade(mq("18"), "She earns 18 dollars.\n#### 18").correct
    g = grade(mq("18"), "I am not sure.")
    assert (g.correct, g.extracted, g.reason) == (False, None, "no_answer")


def test_grading_from_a_worker_thread() -> None:
    out: dict[str, bool] = {}

    def work() -> None:
        out["ok"] = (
            grade(mq(r"\frac{1}{2}"), r"\boxed{0.5}").correct and not grade(mq("1"), r"\boxed{x+1}").correct
        )

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert out == {"ok": True}


def test_unsafe_answers_are_flagged() -> None:
    assert unsafe_reason(r"9^{9^{9^9}}") == "rejected:power_tower"
    assert unsafe_reason("9^9^9") == "rejected:power_tower"
    assert unsafe_reason("10^{1000000000}") == "rejected:huge_exponent"
    assert unsafe_reason("100000!") == "rejected:huge_factorial"
    assert unsafe_reason("x" * 5000) == "rejected:too_long"
    assert unsafe_reason("(" * 100 + ")" * 100) == "rejected:too_deep"
    for ok in ["x^2+2x+1", "2^{2023}", r"e^{i\pi}", r"\frac{(x+1)^2}{3}", "10!"]:
        assert unsafe_reason(ok) is None


def test_reasoning_gym_rule_is_the_fallback() -> None:
    import reasoning_gym

    entry = reasoning_gym.create_dataset("basic_arithmetic", size=1, seed=3)[0]
    q = mq(entry["answer"], grader="reasoning_gym", rg_dataset="basic_arithmetic", rg_entry=entry)
    assert grade(q, f"The answer is {entry['answer']}").correct
    assert not grade(q, "The answer is 123456789").correct


# ---------------------------------------------------------------- multiple choice


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        (r"Thus \boxed{B}", "B"),
        (r"\boxed{\text{(D)}}", "D"),
        ("The answer is (C).", "C"),
        ("Answer: B", "B"),
        ("A good first step is to expand. The answer is C", "C"),
        ("A careful look shows option B works. So B.", "B"),
        ("After all that, (D)", "D"),
        ("I think the answer is a tricky one, so I pick A", "A"),
    ],
)
def test_choice_letters(text: str, letter: str) -> None:
    assert extract_choice_letter(text, "ABCD")[0] == letter


def test_article_a_is_not_an_answer() -> None:
    assert extract_choice_letter("A good approach is to factor.", "ABCD")[0] is None
    g = grade(cq("A"), "A common mistake is to divide first. I am unsure.")
    assert (g.correct, g.reason) == (False, "no_answer")


def test_choice_grades_and_boxed_option_text() -> None:
    assert grade(cq("B"), "Answer: B").correct
    assert not grade(cq("B"), "Answer: C").correct
    q = cq("C", ["red", "green", "blue", "black"])
    assert grade(q, r"It is \boxed{blue}").correct
    assert grade(cq("2", ["a", "b", "c", "d"]), "Answer: C").correct  # 0-based index gold


# ---------------------------------------------------------------- code

ADD = Question(
    id="add",
    prompt='def add(a, b):\n    """Add."""\n',
    answer="    return a + b\n",
    task="t",
    kind="code",
    metadata={
        "prompt": 'def add(a, b):\n    """Add."""\n',
        "entry_point": "add",
        "tests": "def check(c):\n    assert c(1, 2) == 3\n    assert c(-1, 1) == 0\n\ncheck(add)\n",
    },
)


def test_code_pass_and_fail() -> None:
    assert grade(ADD, "    return a + b\n").correct
    assert grade(ADD, "```python\ndef add(a, b):\n    return b + a\n```").correct
    bad = grade(ADD, "    return a - b\n")
    assert not bad.correct and bad.reason.startswith("failed: assertion failed")
    assert grade(ADD, "").reason == "no_answer"


def test_code_body_error_and_missing_function() -> None:
    assert grade(ADD, "    return undefined_name\n").reason.startswith("failed: candidate raised NameError")
    missing = Question("m", "", "", "t", "code", {"entry_point": "add", "tests": "assert add(1, 2) == 3\n"})
    assert check_code(missing, "def plus(a, b):\n    return a + b\n").reason.startswith("failed")


def test_extract_code_takes_last_block() -> None:
    assert extract_code("```python\nx = 1\n```\ntext\n```python\ny = 2\n```") == "y = 2\n"
    assert extract_code("print(1)") == "print(1)"


def test_pass_at_k() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="num_correct"):
        pass_at_k(2, 3, 1)


def test_unknown_kind_raises() -> None:
    q = Question("x", "", "", "t", "math")
    object.__setattr__(q, "kind", "essay")
    with pytest.raises(UnknownKindError, match="essay"):
        grade(q, "hi")


# ---- answers copied from the question --------------------------------------------------------------


def _asked(prompt: str, answer: str) -> Question:
    return Question(id="c", prompt=prompt, answer=answer, task="t", kind="math")


@settings(max_examples=40, deadline=None)
@given(a=st.integers(-9, 99), b=st.integers(-9, 99), op=st.sampled_from(["+", "-", "*"]))
def test_restating_the_expression_is_not_an_answer(a: int, b: int, op: str) -> None:
    """math-verify evaluates "a op b"; a policy that copies the question must still score 0."""
    expr = f"{a} {op} {b}"
    q = _asked(f"Calculate {expr}.", str({"+": a + b, "-": a - b, "*": a * b}[op]))
    for text in (
        f"The final answer is {expr}.",
        f"\\boxed{{{expr}}}",
        f"{expr} = {q.answer}. Answer: \\boxed{{{expr}}}",
    ):
        g = grade(q, text)
        assert not g.correct and g.reason == "rejected:copied_from_question", (text, g)
    assert grade(q, f"\\boxed{{{q.answer}}}").correct
    assert grade(q, f"So {expr} = {q.answer}, the answer is {q.answer}.").correct


def test_copy_rule_keeps_real_answers() -> None:
    assert not grade(_asked("Simplify $\\frac{4}{8}$.", "\\frac{1}{2}"), "\\boxed{\\frac{4}{8}}").correct
    assert grade(
        _asked("Simplify $\\frac{4}{8}$.", "\\frac{1}{2}"), "\\boxed{\\frac{2}{4}}"
    ).correct  # not a copy
    assert grade(
        _asked("Which is larger, 12 or 7?", "12"), "\\boxed{12}"
    ).correct  # numbers may occur in the question
    assert grade(_asked("Solve for x: x^2 = 9, x > 0.", "3"), "\\boxed{3}").correct
    assert grade(
        _asked("Write $\\sqrt{2}\\cdot 3$ in simplest form.", "3\\sqrt{2}"), "\\boxed{3\\sqrt{2}}"
    ).correct
