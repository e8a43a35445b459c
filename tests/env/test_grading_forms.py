"""The string rules around math-verify, one function at a time (no worker processes, so these run in
milliseconds): which boxes a reply commits to, the object a final-answer sentence states, a gold's list
shape, the interval an inequality denotes, and the multiple-choice letter."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from ilr_env.grading import maths
from ilr_env.grading.base import Grade
from ilr_env.grading.choice import grade_choice
from ilr_env.grading.extract import (
    MAX_CONNECTOR_CHARS,
    MAX_GROUP,
    boxes,
    committed_boxes,
    extract_choice_letter,
    extract_math_answer,
    final_object,
)
from ilr_env.grading.forms import (
    MAX_FORM_CHARS,
    gold_elements,
    inequality_as_interval,
    join_answers,
    split_top_level,
)
from ilr_env.grading.maths import (
    ELEMENTWISE_BUDGET,
    MAX_ELEMENTWISE,
    canonical,
    committed_answer,
    committed_parts,
)
from ilr_env.tasks.base import Question

# ---- boxes and the run a reply commits to -----------------------------------------------------------


def test_boxes_are_outermost_closed_and_non_empty_in_order() -> None:
    text = r"a \boxed{1} b \boxed{} c \boxed{\boxed{2}} d \boxed 3 e \boxed{4"
    assert [c for _, _, c in boxes(text)] == ["1", r"\boxed{2}", "3"]
    start, end, content = boxes(text)[0]
    assert text[start:end] == r"\boxed{1}" and content == "1"


@pytest.mark.parametrize(
    "gap",
    [
        ", ",
        " and ",
        " or ",
        "$ and $",
        "$, $x = ",
        r" \quad ",
        r" \qquad ",
        r" \\ ",
        "\n",
        "; ",
        " & ",
        r" \text{ and } ",
        r" \text{or} ",
        r"\mathrm{and}",
        r", x_2 = ",
        r", \theta = ",
        r"\), \(",
        r"\,",
    ],
)
def test_connectors_join_boxes(gap: str) -> None:
    text = rf"\boxed{{1}}{gap}\boxed{{2}}"
    assert committed_boxes(text, boxes(text)) == ["1", "2"]


@pytest.mark.parametrize(
    "gap",
    [". Then ", " so the final answer is ", ", wait, ", " hence ", " = ", " and then ", " 2. ", "x" * 90],
)
def test_other_text_ends_the_run(gap: str) -> None:
    text = rf"\boxed{{1}}{gap}\boxed{{2}}"
    assert committed_boxes(text, boxes(text)) == ["2"]


@pytest.mark.parametrize(
    ("text", "contents"),
    [
        (r"\boxed{1}\boxed{2}", ["1", "2"]),  # the second starts where the first ends
        (r"\boxed{1 \boxed{2}", ["2"]),  # an unclosed box is skipped, not the end
        (r"\boxed$ \boxed{2}", ["2"]),  # no argument
        (r"\boxed $x$ \boxed{2}", ["2"]),  # no bare argument
        (r"\boxed5 \boxed{2}", ["2"]),  # as last_boxed reads it: a bare argument needs a space
        (r"\boxed 5 \boxed{2}", ["5", "2"]),
        ("x \\boxed", []),
        (r"\fbox{3}", ["3"]),
    ],
)
def test_box_edge_cases(text: str, contents: list[str]) -> None:
    assert [c for _, _, c in boxes(text)] == contents


def test_many_unclosed_boxes_are_linear() -> None:
    assert boxes(r"\boxed{" * 30_000) == []  # one brace pass for all boxes (quadratic would time out)


def test_the_connector_length_limit() -> None:
    for gap, joined in ((" " * MAX_CONNECTOR_CHARS, True), (" " * (MAX_CONNECTOR_CHARS + 1), False)):
        text = rf"\boxed{{1}}{gap}\boxed{{2}}"
        assert committed_boxes(text, boxes(text)) == (["1", "2"] if joined else ["2"])


def test_a_run_is_capped() -> None:
    text = ", ".join(rf"\boxed{{{i}}}" for i in range(MAX_GROUP + 10))
    got = committed_boxes(text, boxes(text))
    assert len(got) == MAX_GROUP and got[-1] == str(MAX_GROUP + 9)


def test_extraction_reports_the_run_and_the_last_box() -> None:
    got = extract_math_answer(r"so \boxed{7}. Roots: \boxed{1} and \boxed{-2}.")
    assert (got.answer, got.parts, got.source, got.has_box) == ("-2", ("1", "-2"), "boxed", True)


# ---- final-answer markers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "obj"),
    [
        ("The volume of $ABCDEFGH$ is 120", "120"),
        ("7, which is the sum of 3 and 4", "7"),
        ("$7$ since we add three and four", "7"),
        ("the total comes to \\(12\\) in all", "12"),
        ("it comes to 2,000 steps in all", "2,000"),
        ("so we get 12 because 3*4 = 12", "12"),
        ("2,000 square feet", "2,000 square feet"),  # not a sentence: kept whole
        ("Monday and Tuesday both", "Monday and Tuesday both"),  # a sentence without maths: kept whole
        ("\\frac{3}{4}", "\\frac{3}{4}"),
        ("$a$ and $b$", "$a$ and $b$"),  # maths is not prose: not a sentence
        ("$x$5 is what we get here", "x"),  # positions are the sentence's own
    ],
)
def test_the_object_a_sentence_states(candidate: str, obj: str) -> None:
    assert final_object(candidate) == obj


@pytest.mark.parametrize(
    ("text", "answer", "source"),
    [
        ("\\boxed{200} \\boxed{255}\nFinal Answer: The final answer is $10,455$.", "10,455", "answer_is"),
        ("\\boxed{200}\nFinal answer: the volume is 120.", "120", "answer_is"),
        ("\\boxed{200}\nFinal answer: as above.", "200", "boxed"),  # no maths after the marker
        ("\\boxed{200}\nSo the answer is 300.", "200", "boxed"),  # only an explicit final answer overrides
        ("Final answer: \\boxed{5}", "5", "boxed"),
        ("So the answer is 7, which is 3 plus 4.", "7", "answer_is"),
        ("The answer is: the volume of the box is 120.", "120", "answer_is"),
        ("He pays 3 + 4 = 7 dollars.\n#### 7", "7", "hash"),
    ],
)
def test_marker_precedence(text: str, answer: str, source: str) -> None:
    got = extract_math_answer(text)
    assert (got.answer, got.source, got.has_box) == (answer, source, "boxed" in text)
    assert got.parts == (answer,) or source == "boxed"


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("So the answer is 5. Done now", "5"),  # a sentence ends at ". " before a capital
        ("So the answer is 5.5 exactly", "5.5 exactly"),
        ("the answer is X.", "X"),
        ("the answer is $X$.", "X"),
        ("the answer is $5", "$5"),  # a currency sign, not maths delimiters
        ("the answer is 5$", "5$"),
        ("the answer is $$", None),
    ],
)
def test_the_answer_phrase_is_cleaned(text: str, answer: str | None) -> None:
    assert extract_math_answer(text).answer == answer


# ---- the gold's shape and joining several answers ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("1,-2", ["1", "-2"]),
        ("(1,2), (3,4)", ["(1,2)", "(3,4)"]),
        (r"\{1,2\}, 3", [r"\{1,2\}", "3"]),
        (r"\left(1,2\right),[3,4],f(x,y)", [r"\left(1,2\right)", "[3,4]", "f(x,y)"]),
        (r"\frac{1}{2}, x", [r"\frac{1}{2}", "x"]),
        ("7", ["7"]),
        ("X,Y", ["X", "Y"]),  # letters are not brackets
        ("(X,Y),Z", ["(X,Y)", "Z"]),
    ],
)
def test_split_top_level(text: str, parts: list[str]) -> None:
    assert split_top_level(text) == parts


@pytest.mark.parametrize(
    ("gold", "shape", "elements"),
    [
        ("1,-2", "list", ["1", "-2"]),
        ("(1,1), (3,2)", "list", ["(1,1)", "(3,2)"]),
        (r"\{1\pm\sqrt{5},-2\}", "set", [r"1\pm\sqrt{5}", "-2"]),
        ("(6,31,-1)", "tuple", ["6", "31", "-1"]),
        (r"\left( 3, \frac{\pi}{2} \right)", "tuple", ["3", r"\frac{\pi}{2}"]),
        (r"(2,\infty)", "one", [r"(2,\infty)"]),  # an interval
        ("(3,4]", "one", ["(3,4]"]),
        ("(a)(b)", "one", ["(a)(b)"]),
        ("(1)+(2,3)", "one", ["(1)+(2,3)"]),  # not one tuple: its inner text is unbalanced
        ("(X, Y)", "tuple", ["X", "Y"]),
        ("10,\\!080", "one", ["10,\\!080"]),  # one number with a thousands separator
        ("11,\\! 111,\\! 111,\\! 100", "one", ["11,\\! 111,\\! 111,\\! 100"]),
        ("\\$32,\\!348", "one", ["\\$32,\\!348"]),
        ("58,500", "one", ["58,500"]),
        ("x", "one", ["x"]),
        ("(5)", "one", ["(5)"]),
    ],
)
def test_gold_elements(gold: str, shape: str, elements: list[str]) -> None:
    assert gold_elements(gold) == (shape, elements)


def test_join_answers_uses_the_gold_brackets() -> None:
    assert join_answers(["1", "2"], r"\{2,1\}") == r"\{1, 2\}"
    assert join_answers(["1", "2"], "(2,1)") == "(1, 2)"
    assert join_answers(["1", "2"], "2,1") == "1, 2"
    assert join_answers(["1", "2"], "3") == "1, 2"


def test_committed_parts_merge_repeats_only_against_one_value() -> None:
    assert committed_parts(("3", " 3 ", "3.", "\x003", "3.0"), "3") == ["3", "3.0"]
    assert committed_parts(("1", "1", "2"), "(1,1,2)") == ["1", "1", "2"]
    assert committed_parts(("", "4"), "4") == ["4"]


def test_canonical_drops_braces_around_one_character() -> None:
    assert canonical(r"\sqrt{2}") == canonical(r"\sqrt 2") == r"\sqrt2"
    assert canonical(r"\frac{1}{2}") == r"\frac12"
    assert canonical(r"\sqrt{12}") == r"\sqrt{12}"


# ---- inequalities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("x<3", r"(-\infty, 3)"),
        (r"x \le 3", r"(-\infty, 3]"),
        (r"x \leq 3", r"(-\infty, 3]"),
        ("x <= 3", r"(-\infty, 3]"),
        ("x ≤ 3", r"(-\infty, 3]"),
        (r"x \lt 3", r"(-\infty, 3)"),
        ("x>2", r"(2, \infty)"),
        (r"x \ge 2", r"[2, \infty)"),
        (r"x \geqslant 2", r"[2, \infty)"),
        ("x ≥ 2", r"[2, \infty)"),
        (r"x \gt 2", r"(2, \infty)"),
        ("3 > x", r"(-\infty, 3)"),
        (r"3 \ge x", r"(-\infty, 3]"),
        ("2 < x", r"(2, \infty)"),
        (r"2 \le x", r"[2, \infty)"),
        (r"-2 \le x < 7", "[-2, 7)"),
        (r"7 > x \ge -2", "[-2, 7)"),
        (r"7 \ge x > -2", "(-2, 7]"),
        (r"\frac{3}{5} < t \le \sqrt{3}", r"(\frac{3}{5}, \sqrt{3}]"),
        (r"$x<-1$ \text{ or } $x>2$.", r"(-\infty, -1) \cup (2, \infty)"),
        (r"x<-1 \lor x>2", r"(-\infty, -1) \cup (2, \infty)"),
        (r"x<-1 \vee x \geq 2", r"(-\infty, -1) \cup [2, \infty)"),
        (r"x<-1 \mathrm{ or } 0<x<1", r"(-\infty, -1) \cup (0, 1)"),
        (r"\left. x < \pi \right.", r"(-\infty, \pi)"),
        ("3 > X", r"(-\infty, 3)"),
        ("x < " + "1" * (MAX_FORM_CHARS - 4), r"(-\infty, " + "1" * (MAX_FORM_CHARS - 4) + ")"),
    ],
)
def test_inequality_as_interval(text: str, interval: str) -> None:
    assert inequality_as_interval(text) == interval


@pytest.mark.parametrize(
    "text",
    [
        "x < y",
        "x > 0, x < 5",  # a comma could mean "and"
        "a < x < b",
        "x < 1 or y > 2",  # two variables
        "x = 3",
        "x <= 3 = y",
        "1 < 2",
        "x^2 < 4",
        "x < 1 < 2 < 3",
        "1 < x > 2",  # a chain that goes up and down
        "x <",
        "< 3",
        "xy < 3",
        "[2, 3]",
        "x < " + "1" * MAX_FORM_CHARS,
        "x < 3 = 3",
        "x < 1,000",  # a comma anywhere: left as written
        "1 < xy < 3",
        "1 < x < y",
        "a < 1 < 3",
    ],
)
def test_not_a_one_variable_solution_set(text: str) -> None:
    assert inequality_as_interval(text) is None


# ---- multiple choice -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "picked"),
    [
        (r"\boxed{B}", ("B", True)),
        (r"\boxed{B} rather than (A)", ("B", True)),  # the box before a later lone letter
        (r"\boxed{E}", (None, True)),  # not an option
        (r"\boxed{7}", (None, True)),
        (r"\boxed{7} Answer: C", ("C", True)),
        (r"\boxed{7} so (D)", ("D", True)),
        ("Answer: B", ("B", False)),
        ("Answer: B, not (C)", ("B", False)),  # the answer phrase before a later lone letter
        ("Answer: B. Answer: E", ("B", False)),  # E is not an option
        ("so (D)", ("D", False)),
        ("nothing here", (None, False)),
    ],
)
def test_choice_letter_and_box_flag(text: str, picked: tuple[str | None, bool]) -> None:
    assert extract_choice_letter(text, "ABCD") == picked


def _choice(answer: str, choices: list[str] | None = None) -> Question:
    meta = {"choices": choices} if choices is not None else {}
    return Question(id="c", prompt="?", answer=answer, task="t", kind="choice", metadata=meta)


@pytest.mark.parametrize(
    ("gold", "choices", "reply", "expected"),
    [
        ("B", None, "Answer: B", Grade(True, 1.0, "B", "match", False)),
        ("B", None, "Answer: C", Grade(False, 0.0, "C", "mismatch", False)),
        ("(B)", None, r"\boxed{B}", Grade(True, 1.0, "B", "match", True)),
        ("b", None, "(B)", Grade(True, 1.0, "B", "match", False)),
        ("1", ["x", "y", "z"], "Answer: B", Grade(True, 1.0, "B", "match", False)),  # a 0-based index
        ("E", ["a", "b", "c", "d", "e"], "so (E)", Grade(True, 1.0, "E", "match", False)),
        ("C", ["red", "green", "blue"], r"\boxed{ Blue }", Grade(True, 1.0, "C", "match", True)),
        ("C", ["red", "green", "blue"], r"\boxed{purple}", Grade(False, 0.0, None, "no_answer", True)),
        ("C", ["red", "green", "blue"], "I pick blue", Grade(False, 0.0, None, "no_answer", False)),
        ("A", None, "Answer: E", Grade(False, 0.0, None, "no_answer", False)),  # 4 options by default
        ("B", ["red", "green", "blue"], r"\boxed{B}", Grade(True, 1.0, "B", "match", True)),
        ("(X)", [str(i) for i in range(26)], "Answer: X", Grade(True, 1.0, "X", "match", False)),
    ],
)
def test_choice_grades(gold: str, choices: list[str] | None, reply: str, expected: Grade) -> None:
    assert grade_choice(_choice(gold, choices), reply) == expected


@pytest.mark.parametrize(("gold", "n"), [("4", 4), ("AB", 4), ("", 4), ("-1", 4), ("7", 5)])
def test_a_choice_gold_that_names_no_option_is_refused(gold: str, n: int) -> None:
    fix = r"neither an option letter nor a 0-based index; store the letter \(e\.g\. 'B'\) in Question\.answer"
    with pytest.raises(ValueError, match=fix):
        grade_choice(_choice(gold, [str(i) for i in range(n)]), "Answer: A")


def test_a_question_without_metadata_has_four_options() -> None:
    q = SimpleNamespace(answer="D", kind="choice")
    assert grade_choice(q, "Answer: D").correct
    assert grade_choice(q, "Answer: E").reason == "no_answer"


def test_committed_answer_joins_only_several_parts() -> None:
    tuple_gold = SimpleNamespace(answer="(6,31,-1)")
    assert committed_answer(tuple_gold, ["(6,31,-1)"]) == "(6,31,-1)"  # one box holding the tuple
    assert committed_answer(tuple_gold, ["6", "31", "-1"]) == "(6, 31, -1)"
    assert committed_answer(SimpleNamespace(answer=r"\{1,2\}"), ["2"]) == "2"
    assert committed_answer(SimpleNamespace(answer="1,2"), []) == ""


def test_element_by_element_stops_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow comparison per element must not multiply the grading time by the list's length squared;
    each comparison gets the caller's time bound."""
    calls: list[float] = []

    def slow_verdict(gold: str, pred: str, timeout: float) -> tuple[bool, str, None]:
        calls.append(timeout)
        time.sleep(0.02)
        return gold == pred, "match", None

    monkeypatch.setattr(maths, "_verdict", slow_verdict)
    parts = [f"E_{{{i}}}" for i in range(MAX_ELEMENTWISE)]
    gold = ",".join(reversed(parts))  # greedy matching: 8 + 7 + ... + 1 = 36 comparisons
    assert maths._elementwise(gold, parts, timeout=5.0)
    assert set(calls) == {5.0}
    calls.clear()
    start = time.monotonic()
    assert not maths._elementwise(gold, parts, timeout=0.1)
    assert time.monotonic() - start < 0.1 * ELEMENTWISE_BUDGET + 0.3
    assert 0 < len(calls) < 36


def test_element_by_element_is_for_short_lists_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(maths, "_verdict", lambda g, p, timeout: (g == p, "match", None))
    for n, compared in ((MAX_ELEMENTWISE, True), (MAX_ELEMENTWISE + 1, False)):
        parts = [f"E_{{{i}}}" for i in range(n)]
        assert maths._elementwise(",".join(reversed(parts)), parts, timeout=1.0) is compared
    assert not maths._elementwise("E_{1},E_{2}", ["E_{1}", "E_{2}", "E_{3}"], timeout=1.0)
    assert not maths._elementwise("(E_{1},E_{2})", ["E_{2}", "E_{1}"], timeout=1.0)
    assert maths._elementwise("(E_{1},E_{2})", ["E_{1}", "E_{2}"], timeout=1.0)
