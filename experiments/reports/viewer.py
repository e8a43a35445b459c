"""`ilr view RUN_DIR`: the run's discussions as one self-contained HTML page (no server, no network).

Researchers read what agents said to each other: who changed its answer after the first stage, how the
cooperative and competitive framings differ, where calibration moved a reward. The page shows, per
question, the question and gold, each agent's mode and its turns stage by stage, its final answers with
raw and calibrated rewards (training), and correctness; filters by source, mode, correctness and
"changed its answer after the discussion"; and summary plots over whatever the filters select. The data
is embedded as JSON and drawn by a few hundred lines of plain JavaScript, so the file can be mailed,
archived or opened offline, and paging keeps it responsive with thousands of questions.

Inputs, whichever the folder holds:
  * ``transcripts.jsonl`` — ``ilr eval`` (every episode: prompts, messages, scored final samples);
  * ``transcripts/*.json`` — ``ilr compare``'s evaluation samples;
  * ``rollouts.rank*.jsonl`` anywhere below (``ilr train``, ``ilr compare``'s ``train/<method>-seed<k>/``):
    per step, each agent's mode, discussion turns, n fusion answers, raw and calibrated rewards.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ilr_env.grading.extract import extract_math_answer
from ilr_env.grading.maths import normalise

PAGE_NAME = "viewer.html"


class ViewerInputError(ValueError):
    """The folder holds nothing the viewer can show."""


def _answer(text: str | None) -> str | None:
    """The answer a message commits to (last box, "the answer is ..."), for the changed-answer filter."""
    if not text:
        return None
    return extract_math_answer(text).answer


def _changed(first: str | None, last: str | None) -> bool | None:
    """Whether the final answer differs from the first-stage answer; None when the first stage had none."""
    if first is None:
        return None
    return last is None or normalise(first) != normalise(last)


def _agent_row(
    name: str, mode: Any, turns: list[tuple[str, str]], finals: list[dict[str, Any]], opening: str | None
) -> dict[str, Any]:
    """``opening`` = the agent's first-stage message (None when there was no discussion)."""
    first = _answer(opening)
    last = finals[0].get("extracted") if finals else None
    if last is None and finals:
        last = _answer(finals[0]["text"])
    return {
        "name": name,
        "mode": mode,
        "turns": [list(t) for t in turns],
        "finals": finals,
        "correct": bool(finals and finals[0]["correct"]),
        "first": first,
        "last": last,
        "changed": _changed(first, last),
    }


def episode_item(record: dict[str, Any], group: str) -> dict[str, Any]:
    """One evaluation episode (an ``EpisodeRecord`` as JSON) as a viewer item."""
    question = record.get("question") or {}
    agents = []
    for name in record.get("agents") or sorted(record.get("final_samples", {})):
        turns = [
            (str(stage.get("stage")), str(stage["agents"][name].get("message", "")))
            for stage in record.get("stages", [])
            if name in stage.get("agents", {})
        ]
        finals = [
            {
                "text": s.get("text", ""),
                "correct": bool((s.get("grade") or {}).get("correct")),
                "extracted": (s.get("grade") or {}).get("extracted"),
                "raw": s.get("reward"),
                "cal": None,
            }
            for s in record.get("final_samples", {}).get(name, [])
        ]
        opening = turns[0][1] if len(turns) > 1 else None  # one stage: answered alone, no discussion
        agents.append(_agent_row(name, (record.get("modes") or {}).get(name), turns, finals, opening))
    return {
        "id": str(question.get("id", record.get("episode"))),
        "group": group,
        "question": str(question.get("prompt", "")),
        "gold": str(question.get("answer", "")),
        "agents": agents,
    }


def training_items(lines: Iterable[dict[str, Any]], group: str) -> Iterator[dict[str, Any]]:
    """Per step and question, every agent's rollout record (``rollouts.rank*.jsonl``) as one viewer item."""
    for line in lines:
        by_question: dict[str, list[dict[str, Any]]] = {}
        for rec in line.get("records", []):
            by_question.setdefault(str(rec["question_id"]), []).append(rec)
        for qid, recs in by_question.items():
            agents = []
            for rec in recs:
                texts = rec.get("texts") or [""] * len(rec.get("raw", []))
                finals = [
                    {
                        "text": text,
                        "correct": bool(ok),
                        "extracted": _answer(text),
                        "raw": raw,
                        "cal": cal,
                    }
                    for text, ok, raw, cal in zip(
                        texts,
                        rec.get("correct", []),
                        rec.get("raw", []),
                        rec.get("calibrated", []),
                        strict=False,
                    )
                ]
                turns = [tuple(t) for t in rec.get("turns", [])]
                opening = turns[0][1] if turns else None
                agents.append(_agent_row(rec["agent"], rec.get("mode"), turns, finals, opening))
            first = recs[0]
            yield {
                "id": qid,
                "group": f"{group} · step {line.get('step')}",
                "question": str(first.get("question", "(question text not logged by this run)")),
                "gold": str(first.get("answer", "")),
                "agents": agents,
            }


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _eval_group(run_dir: Path) -> str:
    try:
        config = json.loads((run_dir / "results.json").read_text()).get("config", {})
    except (OSError, ValueError):
        return "eval"
    models = config.get("models") or [config.get("model")]
    return f"eval · {config.get('task')} · {config.get('protocol')} · {' + '.join(map(str, models))}"


def transcript_stem(label: str, bench: str) -> str:
    """File name (without .json) of an evaluation's sample transcripts in ``RUN_DIR/transcripts/``."""
    return f"{label}__{bench}".replace("/", "_").replace(":", "_").replace(" ", "_")


def _compare_labels(run_dir: Path) -> dict[str, str]:
    """``ilr compare`` names its transcript files after "<label>__<benchmark>" with unsafe characters
    replaced; map each file stem back to the readable "<label> · <benchmark>" from results.json."""
    try:
        evaluations = json.loads((run_dir / "results.json").read_text()).get("evaluations", {})
    except (OSError, ValueError):
        return {}
    return {
        transcript_stem(label, bench): f"{label} · {bench}"
        for bench, by_label in evaluations.items()
        for label in by_label
    }


def collect(run_dir: Path) -> list[dict[str, Any]]:
    """Every item the run folder holds, evaluations first, then training steps in order."""
    items: list[dict[str, Any]] = []
    if (run_dir / "transcripts.jsonl").is_file():
        group = _eval_group(run_dir)
        items += [episode_item(r, group) for r in _jsonl(run_dir / "transcripts.jsonl")]
    names = _compare_labels(run_dir)
    for path in sorted((run_dir / "transcripts").glob("*.json")):
        group = "eval · " + names.get(path.stem, path.stem.replace("__", " · "))
        items += [episode_item(r, group) for r in json.loads(path.read_text())]
    for path in sorted(run_dir.rglob("rollouts.rank*.jsonl")):
        group = "train" if path.parent == run_dir else f"train · {path.parent.name}"
        items += training_items(_jsonl(path), group)
    return items


def _embedded(data: dict[str, Any]) -> str:
    """JSON that is safe inside a <script> element: no "</script>", "<!--" or line separators can form."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_viewer(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's discussion viewer (default ``RUN_DIR/viewer.html``) and return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ViewerInputError(
            f"run folder {str(run_dir)!r} does not exist; pass a folder `ilr eval/train/compare` wrote"
        )
    items = collect(run_dir)
    if not items:
        raise ViewerInputError(
            f"{run_dir} holds no transcripts.jsonl, transcripts/*.json or rollouts.rank*.jsonl: run "
            "`ilr eval --out DIR`, `ilr train` or `ilr compare` first"
        )
    n_agents = sum(len(it["agents"]) for it in items)
    data = {
        "title": f"ilr discussions · {run_dir.resolve().name}",
        "subtitle": f"{len(items)} questions, {n_agents} agent answers, from {run_dir}",
        "items": items,
    }
    template = resources.files("experiments.reports").joinpath("viewer_page.html").read_text(encoding="utf-8")
    page = Path(out) if out is not None else run_dir / PAGE_NAME
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(template.replace("__DATA__", _embedded(data)), encoding="utf-8")
    return page


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", type=Path, help="a folder written by `ilr eval --out`, `ilr train` or `ilr compare`"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"page to write (default RUN_DIR/{PAGE_NAME})")
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        metavar="PNG",
        help="also render the page in headless Chromium and save a screenshot (needs chromium installed)",
    )


def run(args: argparse.Namespace) -> int:
    page = write_viewer(args.run_dir, args.out)
    print(f"wrote {page} (open it in any browser; it needs no server or network)")
    if args.screenshot is not None:
        from experiments.reports.viewer_browser import Browser

        with Browser() as browser:
            browser.open(page)
            browser.screenshot(args.screenshot)
        print(f"wrote {args.screenshot}")
    return 0
