"""Model zoo: pass-through rules, deterministic tiny builds, caching, locking, SmolLM2 conversion (slow)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ilr_agents import models
from ilr_agents.models import UnknownModelError, list_models, resolve_model


def test_hub_ids_and_existing_paths_pass_through(tmp_path: Path) -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model(tmp_path) == str(tmp_path)


@pytest.mark.parametrize("name,suggestion", [("tiny-lama", "tiny-llama"), ("smollm2", "smollm2-135m")])
def test_unknown_alias_lists_the_zoo(name: str, suggestion: str) -> None:
    with pytest.raises(UnknownModelError) as err:
        resolve_model(name)
    message = str(err.value)
    assert f"Did you mean {suggestion!r}" in message
    assert all(entry in message for entry in list_models())


def test_missing_local_path_is_not_mistaken_for_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError):
        resolve_model(str(tmp_path / "nope"))


def test_tiny_build_is_deterministic_and_cached(tmp_path: Path) -> None:
    a = Path(resolve_model("tiny", cache_dir=tmp_path / "a"))
    b = Path(resolve_model("tiny", cache_dir=tmp_path / "b"))
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    stamp = (a / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("TINY", cache_dir=tmp_path / "a") == str(a)
    assert (a / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".tiny-")]  # no temp leftovers


def test_tiny_tokenizer_round_trips_maths_and_code() -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model("tiny"))
    for text in ["$\\frac{1}{2} + \\sqrt{x^2}$ = \\boxed{3}", "def f(a):\n    return a * 2\n", "é ∑ 東京"]:
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_concurrent_builders_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Path] = []
    gate = threading.Barrier(3)

    def fake_builder(out: Path) -> None:
        built.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setitem(models.ZOO, "tiny", fake_builder)
    results: list[str] = []

    def worker() -> None:
        gate.wait()
        results.append(resolve_model("tiny", cache_dir=tmp_path))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(built) == 1 and len(set(results)) == 1 and len(results) == 3


def test_failed_build_leaves_no_partial_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(out: Path) -> None:
        (out / "half").write_text("x")
        raise RuntimeError("boom")

    monkeypatch.setitem(models.ZOO, "tiny", broken)
    with pytest.raises(RuntimeError, match="boom"):
        resolve_model("tiny", cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".tiny.lock"]


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ILR_CACHE_DIR", str(tmp_path))
    assert models.cache_root() == tmp_path / "models"


@pytest.mark.slow
def test_smollm2_builds_a_trainable_folder_that_answers() -> None:
    from transformers import AutoModelForCausalLM

    from ilr_agents.policies import SamplingParams, TransformersPolicy

    path = Path(resolve_model("smollm2-135m"))
    assert (path / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(path)
    assert getattr(model.config, "quantization_config", None) is None
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    policy = TransformersPolicy(model, name="smollm2")
    answer = policy.generate(
        [[{"role": "user", "content": "What is 2+3?"}]], SamplingParams(max_new_tokens=16, temperature=0)
    )[0][0]
    assert "5" in answer.text and answer.finish_reason == "stop"
