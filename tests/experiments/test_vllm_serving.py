"""`ilr eval` on the vLLM back-ends: the in-process engine and an OpenAI-compatible vLLM server.

The server is started by the test on 127.0.0.1 with vLLM's module entry point (the ``vllm`` console script
of the CPU build looks up the wrong distribution name and does not start) and stopped afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.cli import main
from ilr_agents.models import resolve_model

MODEL = "smollm2-135m"
EVAL = ["eval", "--task", "gsm8k", "--limit", "3", "--max-new-tokens", "24", "--no-progress", "--seed", "0"]


def texts(out: Path) -> list[str]:
    """Every message the models wrote (token ids and log-probs differ by back-end; texts must not)."""
    records = [json.loads(line) for line in (out / "transcripts.jsonl").read_text().splitlines()]
    return [
        stage["agents"][agent]["message"] for r in records for stage in r["stages"] for agent in r["agents"]
    ]


def run_eval(out: Path, *args: str) -> dict:
    assert main([*EVAL, "--out", str(out), *args]) == 0
    return json.loads((out / "results.json").read_text())


def test_ilr_eval_with_the_vllm_backend(tmp_path: Path) -> None:
    """The CI test of the vLLM path: engine start-up, chat, grading (about a minute on 2 idle cores)."""
    result = run_eval(tmp_path, "--model", MODEL, "--backend", "vllm")
    (metrics,) = result["metrics"].values()
    assert metrics["n_questions"] == 3 and 0 <= metrics["accuracy"] <= 1
    assert metrics["mean_tokens"] > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An OpenAI-compatible vLLM server for the zoo model; yields its /v1 base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_model(MODEL),
        "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--enforce-eager", "--max-model-len", "1024", "--kv-cache-memory-bytes", str(2**30), "--seed", "0",
    ]  # fmt: skip
    with open(log, "w") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    try:
        while True:  # ready when /health answers; a crashed server ends the wait at once
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"vLLM server not up after 900 s:\n{log.read_text()[-3000:]}"
                    ) from None
                time.sleep(1)
        yield url + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_ilr_eval_openai_backend_against_a_vllm_server_matches_the_engine(
    server: str, tmp_path: Path
) -> None:
    """Greedy: the server and the in-process engine (same vLLM, same dtype) write the same answers."""
    served = run_eval(tmp_path / "openai", "--model", MODEL, "--backend", "openai", "--base-url", server)
    local = run_eval(tmp_path / "vllm", "--model", MODEL, "--backend", "vllm")
    assert served["metrics"][MODEL]["accuracy"] == local["metrics"][MODEL]["accuracy"]
    assert texts(tmp_path / "openai") == texts(tmp_path / "vllm")


@pytest.mark.slow
def test_openai_backend_samples_n_and_runs_idea3_against_the_server(server: str, tmp_path: Path) -> None:
    sampled = run_eval(
        tmp_path / "n", "--model", MODEL, "--backend", "openai", "--base-url", server,
        "--n", "2", "--temperature", "0.8", "--pass-k", "1", "2",
    )  # fmt: skip
    assert sampled["metrics"][MODEL]["n_questions"] == 3 and "pass@2" in sampled["metrics"][MODEL]
    idea3 = run_eval(
        tmp_path / "idea3", "--model", MODEL, "--backend", "openai", "--base-url", server,
        "--protocol", "idea3", "--mode", "cooperate",
    )  # fmt: skip
    assert sum(name.startswith("agent_") for name in idea3["metrics"]) == 2  # one row per agent
    greedy = ["--model", MODEL, "--backend", "openai", "--base-url", server, "--n", "2"]
    assert main([*EVAL, "--out", str(tmp_path / "greedy"), *greedy]) == 2  # one error line, no request
