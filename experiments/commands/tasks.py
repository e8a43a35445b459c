"""`ilr tasks`: what tasks exist and where their data would come from; `--grade-gold` checks one end to end.

Grading every gold answer through the real grader catches loader/grader disagreements (a gold the grader
cannot parse, a code harness that fails its own reference solution) before any model is involved.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ilr_env.tasks import Question, get_task, list_tasks, load_questions
from ilr_env.tasks.sources import resolve_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grade-gold", metavar="TASK", help="load TASK and grade each gold answer as a completion"
    )
    parser.add_argument("--split", default="test", help="split for --grade-gold (default: test)")
    parser.add_argument("--limit", type=int, default=None, help="grade at most N questions")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (default: $ILR_DATA_DIR)")


def gold_completion(question: Question) -> str:
    """The gold answer written the way a model should answer, so a correct grader must accept it."""
    if question.kind == "code":
        program = (
            question.metadata.get("prompt", "") + question.answer
            if question.id.startswith("HumanEval/")
            else question.answer
        )
        return f"Here is the solution.\n```python\n{program}\n```"
    return f"Working through it, so the answer is \\boxed{{{question.answer}}}."


def _short(where: str | None) -> str:
    """One table cell for a source location: a file name, a PyPI package, or a hub id."""
    if where is None:
        return "[red]no source[/red]"
    if where.startswith("hf-hub:"):
        return f"[yellow]{where.removeprefix('hf-hub:')}[/yellow] (hub: network or HF cache)"
    if Path(where).is_file():
        return f"[green]{Path(where).name}[/green] (data_dir)"
    if ": " in where:
        return f"[green]{where.split(': ', 1)[0]}[/green] (PyPI)"
    return where


def _list(console: Console, data_dir: Path | None) -> int:
    table = Table(title=f"ilr tasks (data_dir: {data_dir or 'unset'})")
    for column in ("task", "kind", "split: source"):
        table.add_column(column, overflow="fold")
    for name in list_tasks():
        task = get_task(name)
        found = task.availability(data_dir)
        cells = {_short(where) for where in found.values()}
        sources = (
            f"{', '.join(found)}: {cells.pop()}"
            if len(cells) == 1
            else "\n".join(f"{split}: {_short(where)}" for split, where in found.items())
        )
        table.add_row(name, task.kind, sources)
    console.print(table)
    console.print(
        "rg/<dataset> also loads any other reasoning-gym dataset (kwargs: size, seed, config fields)."
    )
    return 0


def _grade_gold(console: Console, task: str, split: str, limit: int | None, data_dir: Path | None) -> int:
    from ilr_env.grading import grade  # the grader may pull in math-verify; only here

    start = time.perf_counter()
    questions = load_questions(task, split, data_dir=data_dir, limit=limit)
    loaded = time.perf_counter() - start
    failures = []
    for question in questions:
        result = grade(question, gold_completion(question))
        if not result.correct:
            failures.append((question, result))
    graded = time.perf_counter() - start - loaded
    summary = Table(title=f"gold answers of {task}/{split} graded as completions")
    for column in ("task", "split", "questions", "correct", "accuracy", "load s", "grade s"):
        summary.add_column(column, justify="right" if column not in ("task", "split") else "left")
    n = len(questions)
    summary.add_row(
        task,
        split,
        str(n),
        str(n - len(failures)),
        f"{(n - len(failures)) / max(n, 1):.1%}",
        f"{loaded:.2f}",
        f"{graded:.2f}",
    )
    console.print(summary)
    if failures:
        detail = Table(title=f"first {min(len(failures), 10)} of {len(failures)} rejected golds")
        for column in ("id", "gold", "extracted", "reason"):
            detail.add_column(column, overflow="fold")
        for question, result in failures[:10]:
            detail.add_row(question.id, question.answer[:60], str(result.extracted)[:60], str(result.reason))
        console.print(detail)
    return 0 if not failures else 1


def run(args: argparse.Namespace) -> int:
    console = Console()
    data_dir = resolve_data_dir(args.data_dir)
    if args.grade_gold:
        return _grade_gold(console, args.grade_gold, args.split, args.limit, data_dir)
    return _list(console, data_dir)
