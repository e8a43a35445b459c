"""Local generation with transformers: one left-padded ``generate`` call per batch of chats.

Why this shape: the rollout makes one call per (stage, agent) for all live episodes, and the trainer needs
the exact token ids and per-token log-probs of what was sampled, so this policy returns both. It accepts
either a path/hub id (loads the model) or a live model object (e.g. the model a TRL trainer is updating),
so the same sampler serves evaluation and training.

Log-probs: ``logprobs[t] = log_softmax(logits_t / T)[token_t]`` with T the sampling temperature (T = 1
for greedy), before top-k/top-p truncation. This is what TRL 1.16's GRPO computes for its importance ratio
(it divides the logits by ``GRPOConfig.temperature``), so at equal temperatures the two agree; at T = 1
it is the raw model distribution.

Prefill: the prompt of every chat except its last token is run through the model once, alone (no padding),
and the n samples of a chat then share that cache. This matters because Idea3 prompts are long and turns
short: a left-padded batched prefill wastes the padding, and ``num_return_sequences`` re-reads each prompt n
times. The caches are left-padded to one width and decoding runs batched from there (``prefill="shared"``).
Inside ``with policy.prefix_cache():`` (``run_episodes`` opens one per rollout) a prompt that begins like one
of the previous call's prompts starts from that prompt's cache and prefills only the rest: an Idea3 stage
prompt repeats the previous stage's question, ideas and framing. The block must not span a weight update.
On a GPU a padded batched prefill is already efficient, so ``prefill="auto"`` keeps plain ``generate`` there;
models whose cache is not a plain full-attention ``DynamicCache`` (sliding windows, linear attention) always
take plain ``generate``.

LoRA: a live PEFT model (a trainer's) decodes with each adapter folded into its base weight for the
duration of the call, and the base weights are then restored bit for bit (``merge_lora``). An unmerged
adapter adds two small matmuls per adapted layer to every decode step: on 2 CPU cores, SmolLM2-135M with
all-linear r=16 adapters decoded 16.7-18.9 tokens/s unmerged and 21.3-21.7 merged.

Randomness: every call runs under ``torch.random.fork_rng`` seeded from ``params.seed`` or, when that is
None, from the policy's own ``random.Random`` — the global torch RNG is left exactly as it was.
``fork_rng`` is process-wide, so do not run two policies' ``generate`` in parallel threads.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ilr_agents.policies.base import (
    Chat,
    Completion,
    PolicyError,
    SamplingParams,
    chat_token_ids,
    check_chats,
)

PREFILL_MODES = ("auto", "shared", "batched")


def _resolve_dtype(dtype: Any, device: Any) -> Any:
    import torch

    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        if dtype == "auto":
            return "auto"
        if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
            raise ValueError(
                f"dtype={dtype!r} is not a torch dtype; use e.g. 'float32', 'bfloat16' or 'auto'"
            )
        return getattr(torch, dtype)
    return dtype


@contextlib.contextmanager
def lora_merged(model: Any) -> Iterator[None]:
    """Fold a PEFT model's active, unmerged LoRA adapters into their base weights for the block.

    On exit the base weights are copied back from a saved copy rather than unmerged by subtraction: (W + d)
    - d is not W in floating point, and a trainer's frozen weights would drift by that residue each rollout.
    Sharded (DTensor) or quantised base weights are left alone, as is any model without such adapters.
    """
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        yield
        return
    layers = [
        m
        for m in model.modules()
        if isinstance(m, LoraLayer)
        and m.active_adapters
        and not m.merged
        and not hasattr(m.get_base_layer().weight, "placements")  # a DTensor shard (FSDP2)
        and m.get_base_layer().weight.dtype.is_floating_point
    ]
    saved = [m.get_base_layer().weight.detach().clone() for m in layers]
    for m in layers:
        m.merge()
    try:
        yield
    finally:
        for m, weight in zip(layers, saved):
            m.unmerge()
            m.get_base_layer().weight.data.copy_(weight)


class TransformersPolicy:
    """A causal LM behind the Policy protocol; exposes ``.model`` and ``.tokenizer`` for training.

    Args:
        model_or_path: a model object with ``generate`` (used as is, not copied), a local folder, a zoo name
            (``tiny``, ``smollm2-135m``, see ilr_agents.models) or a hub id.
        tokenizer: required with a model object unless its ``name_or_path`` points at a loadable tokenizer.
        device / dtype: only used when loading; default cuda+bfloat16 when available, else cpu+float32.
        adapter: a PEFT (LoRA) adapter folder, merged into the loaded model's weights.
        return_logprobs: also compute per-token log-probs (costs one vocab-sized float row per token).
        max_batch_size: split large batches (sorted by prompt length) into chunks; None = one call.
        seed: seeds the policy's own RNG, used for calls whose ``params.seed`` is None.
        prefill: "shared" (each distinct prompt prefilled once, unpadded), "batched" (plain ``generate``) or
            "auto" (shared on CPU, batched on accelerators).
        merge_lora: decode a PEFT model's unmerged adapters merged (see the module notes); holds a copy of
            the adapted base weights during each call. False keeps the adapters as separate layers.
    """

    def __init__(
        self,
        model_or_path: Any,
        tokenizer: Any = None,
        *,
        device: str | None = None,
        dtype: Any = None,
        adapter: str | None = None,
        return_logprobs: bool = True,
        max_batch_size: int | None = None,
        seed: int = 0,
        name: str | None = None,
        prefill: str = "auto",
        merge_lora: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"max_batch_size={max_batch_size}: must be >= 1 or None (no splitting)")
        if prefill not in PREFILL_MODES:
            raise ValueError(f"prefill={prefill!r}: choose one of {', '.join(PREFILL_MODES)}")
        if hasattr(model_or_path, "generate"):
            self.model = model_or_path
            source = getattr(getattr(model_or_path, "config", None), "_name_or_path", "") or ""
            label = Path(source).name if source else type(model_or_path).__name__
        else:
            label = str(model_or_path)  # what the user asked for: "tiny", "org/model", a folder
            label = Path(label).name if Path(label).exists() else label
            from ilr_agents.models import resolve_model

            source = resolve_model(model_or_path)
            dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            self.model = AutoModelForCausalLM.from_pretrained(source, dtype=_resolve_dtype(dtype, dev)).to(
                dev
            )
        if adapter is not None:
            from peft import PeftModel

            # merged into the weights: the same function, and decoding skips the LoRA layers (~30% of a
            # CPU decode step for all-linear adapters)
            self.model = PeftModel.from_pretrained(self.model, adapter).merge_and_unload()
        if tokenizer is None:
            if not source:
                raise TypeError(
                    "a model object needs tokenizer=...: its config names no folder to load one from"
                )
            tokenizer = AutoTokenizer.from_pretrained(source)
        if not getattr(tokenizer, "chat_template", None):
            raise PolicyError(
                f"tokenizer of {source or type(self.model).__name__} has no chat template; set "
                "tokenizer.chat_template (e.g. ilr_agents.models.CHATML_TEMPLATE) before building the policy"
            )
        self.tokenizer = tokenizer
        self.name = name or label
        self.return_logprobs = return_logprobs
        self.max_batch_size = max_batch_size
        self._rng = random.Random(seed)
        self.prefill = prefill
        self.merge_lora = merge_lora
        self._prefixes: _PrefixStore | None = None
        self.eos_ids = self._eos_ids()
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_ids[0]

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        for value in (
            getattr(self.model.generation_config, "eos_token_id", None),
            self.tokenizer.eos_token_id,
        ):
            for v in value if isinstance(value, list) else [value]:
                if v is not None and v not in ids:
                    ids.append(int(v))
        if not ids:
            raise PolicyError(
                f"{self.name}: neither the model nor the tokenizer defines an EOS token; set eos_token"
            )
        return ids

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def encode_chat(self, chat: Chat) -> list[int]:
        return chat_token_ids(self.tokenizer, chat)

    def generate(self, chats: list[Chat], params: SamplingParams) -> list[list[Completion]]:
        import torch

        check_chats(chats)
        if not chats:
            return []
        prompts = [self.encode_chat(chat) for chat in chats]
        seed = params.seed if params.seed is not None else self._rng.randrange(2**63)
        order = list(range(len(prompts)))
        size = self.max_batch_size or len(prompts)
        if size < len(prompts):  # similar lengths per chunk -> less padding
            order.sort(key=lambda i: len(prompts[i]))
        results: list[list[Completion]] = [[] for _ in prompts]
        if self._prefixes is not None:  # one call = one stage, however many chunks it is split into
            self._prefixes.next_call()
        dev = self.device
        was_training = self.model.training
        self.model.eval()
        try:
            with (
                torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []),
                torch.no_grad(),
                lora_merged(self.model) if self.merge_lora else contextlib.nullcontext(),
            ):
                torch.manual_seed(seed)
                for start in range(0, len(order), size):
                    chunk = order[start : start + size]
                    for i, comps in zip(chunk, self._generate_chunk([prompts[i] for i in chunk], params)):
                        results[i] = comps
        finally:
            self.model.train(was_training)
        return results

    def _generate_chunk(self, prompts: list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):
            ids[row, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p) :] = 1
        copies = params.n  # SamplingParams guarantees n == 1 when greedy
        ids, mask = ids.to(self.device), mask.to(self.device)
        cache = self._shared_prefill(prompts, width) if self._use_shared_prefill(prompts) else None
        if cache is not None:  # expand before decoding; the prompt itself was read once
            ids, mask = ids.repeat_interleave(copies, dim=0), mask.repeat_interleave(copies, dim=0)
            cache.batch_repeat_interleave(copies)
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            past_key_values=cache,
            max_new_tokens=params.max_new_tokens,
            **self._sampling_flags(params),
            num_return_sequences=1 if cache is not None else copies,
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            use_cache=True,
            return_dict_in_generate=True,
            output_logits=self.return_logprobs,
        )
        new = out.sequences[:, width:].cpu()
        logps = None
        if self.return_logprobs:
            logits = torch.stack(out.logits, dim=1).float()
            scale = params.temperature if not params.greedy else 1.0
            logps = torch.log_softmax(logits / scale, dim=-1).gather(-1, new[..., None].to(logits.device))
            logps = logps.squeeze(-1).cpu()
        completions: list[list[Completion]] = []
        for row, prompt in enumerate(prompts):
            group = []
            for k in range(copies):
                r = row * copies + k
                group.append(
                    self._completion(prompt, new[r].tolist(), None if logps is None else logps[r].tolist())
                )
            completions.append(group)
        return completions

    def _use_shared_prefill(self, prompts: list[list[int]]) -> bool:
        if self.prefill == "batched" or min(len(p) for p in prompts) < 2:
            return False
        return self.prefill == "shared" or self.device.type == "cpu"

    @contextlib.contextmanager
    def prefix_cache(self) -> Iterator[None]:
        """Reuse the previous call's prompt caches for prompts that extend them (same weights only)."""
        if self._prefixes is not None:  # nested: the outer block owns the store
            yield
            return
        self._prefixes = _PrefixStore()
        try:
            yield
        finally:
            self._prefixes = None

    def _shared_prefill(self, prompts: list[list[int]], width: int) -> Any:
        """A left-padded cache of every prompt but its last token, each distinct prompt run once, alone.

        Returns None (plain ``generate`` then) when the model's cache is not full-attention ``DynamicLayer``s.
        """
        import torch
        from transformers import DynamicCache

        distinct: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
        for p in prompts:
            if tuple(p) not in distinct:
                layers = self._prefill_one(p[:-1])
                if layers is None:
                    return None
                distinct[tuple(p)] = layers
        merged = DynamicCache()
        for index in range(len(next(iter(distinct.values())))):
            keys, values = [], []
            for p in prompts:
                key, value = distinct[tuple(p)][index]
                pad = width - len(p)
                keys.append(torch.nn.functional.pad(key, (0, 0, pad, 0)))
                values.append(torch.nn.functional.pad(value, (0, 0, pad, 0)))
            merged.update(torch.cat(keys), torch.cat(values), index)
        return merged

    def _prefill_one(self, tokens: list[int]) -> list[tuple[Any, Any]] | None:
        """Per-layer (keys, values) of ``tokens``, starting from the longest cached prefix if there is one."""
        import torch
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        reuse, cached = self._prefixes.longest(tokens) if self._prefixes is not None else (0, None)
        if cached is not None and reuse == len(tokens):
            layers = [(k[..., :reuse, :], v[..., :reuse, :]) for k, v in cached]
        else:
            cache = None
            if cached is not None:
                cache = DynamicCache()
                for index, (k, v) in enumerate(cached):
                    cache.update(k[..., :reuse, :], v[..., :reuse, :], index)
            out = self.model(
                input_ids=torch.tensor([tokens[reuse:]], device=self.device),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            found = getattr(out.past_key_values, "layers", None)
            if not found or any(type(layer) is not DynamicLayer for layer in found):
                return None
            layers = [(layer.keys, layer.values) for layer in found]
        if self._prefixes is not None:
            self._prefixes.add(tokens, layers)
        return layers

    @staticmethod
    def _sampling_flags(params: SamplingParams) -> dict[str, Any]:
        if params.greedy:
            return {"do_sample": False, "repetition_penalty": 1.0}
        return {
            "do_sample": True,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k,  # explicit: transformers' default is 50, TRL's and vLLM's is "off"
            "repetition_penalty": 1.0,  # ignore a checkpoint's own sampling defaults
        }

    def _completion(self, prompt: list[int], tokens: list[int], logps: list[float] | None) -> Completion:
        end = next((t for t, tok in enumerate(tokens) if tok in self.eos_ids), None)
        finish = "length" if end is None else "stop"
        keep = len(tokens) if end is None else end + 1  # keep the EOS: training must learn to stop
        tokens = tokens[:keep]
        body = tokens if end is None else tokens[:-1]
        return Completion(
            text=self.tokenizer.decode(body, skip_special_tokens=True),
            prompt_ids=list(prompt),
            completion_ids=tokens,
            logprobs=None if logps is None else logps[:keep],
            finish_reason=finish,
        )


class _PrefixStore:
    """Prompt caches of the current and the previous generate call; older ones are dropped (memory bound)."""

    def __init__(self) -> None:
        self.previous: list[tuple[Any, list[tuple[Any, Any]]]] = []
        self.current: list[tuple[Any, list[tuple[Any, Any]]]] = []

    def next_call(self) -> None:
        self.previous, self.current = self.current, []

    def add(self, tokens: list[int], layers: list[tuple[Any, Any]]) -> None:
        import numpy as np

        self.current.append((np.asarray(tokens), layers))

    def longest(self, tokens: list[int]) -> tuple[int, list[tuple[Any, Any]] | None]:
        """(length, layers) of the stored prompt sharing the longest prefix with ``tokens``, or (0, None)."""
        import numpy as np

        target = np.asarray(tokens)
        best, found = 0, None
        for stored, layers in (*self.previous, *self.current):
            n = min(len(stored), len(target))
            differ = np.flatnonzero(stored[:n] != target[:n])
            common = int(differ[0]) if differ.size else n
            if common > best:
                best, found = common, layers
        return best, found
