"""vLLM back-end (GPU only): same contract as TransformersPolicy, far higher throughput.

vLLM is imported in the constructor, never at module import, so this module is safe to import anywhere.
Log-probs: the engine is built with ``logprobs_mode="processed_logprobs"`` by default, i.e. log-probs of
the temperature-scaled distribution, which equals TransformersPolicy's definition (and TRL's) when
``top_k == 0`` and ``top_p == 1`` (with truncation vLLM renormalises over the kept tokens). Pass
``logprobs_mode="raw_logprobs"`` for the untempered model distribution.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from ilr_agents.policies.base import Chat, Completion, PolicyError, SamplingParams, check_chats


class VLLMPolicy:
    """``vllm.LLM`` behind the Policy protocol; extra keyword arguments go to ``vllm.LLM``."""

    def __init__(
        self,
        model: str,
        *,
        return_logprobs: bool = True,
        seed: int = 0,
        name: str | None = None,
        lora_adapter: str | None = None,
        **llm_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as err:  # pragma: no cover - depends on the machine
            raise PolicyError(
                "the vllm backend needs vLLM on a CUDA machine: `pip install 'ilr[vllm]'`; on CPU use "
                "--backend transformers"
            ) from err
        from ilr_agents.models import resolve_model

        path = resolve_model(model)
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        llm_kwargs.setdefault("seed", seed)
        self._vllm = vllm
        self._lora = None
        if lora_adapter is not None:  # a PEFT adapter folder served on top of the base weights
            from vllm.lora.request import LoRARequest

            llm_kwargs.setdefault("enable_lora", True)
            self._lora = LoRARequest("ilr-adapter", 1, str(lora_adapter))
        self.llm = vllm.LLM(model=path, **llm_kwargs)
        self.name = name or (Path(model).name if Path(model).exists() else model)
        self.return_logprobs = return_logprobs
        self._rng = random.Random(seed)

    def _sampling_params(self, params: SamplingParams) -> Any:
        return self._vllm.SamplingParams(
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,  # -1 disables top-k in every vLLM version
            max_tokens=params.max_new_tokens,
            seed=params.seed if params.seed is not None else self._rng.randrange(2**31),
            logprobs=0 if self.return_logprobs else None,  # 0 = only the sampled token's log-prob
        )

    def generate(self, chats: list[Chat], params: SamplingParams) -> list[list[Completion]]:
        check_chats(chats)
        if not chats:
            return []
        outputs = self.llm.chat(chats, self._sampling_params(params), use_tqdm=False, lora_request=self._lora)
        results = []
        for request in outputs:
            group = []
            for out in request.outputs:
                logps = None
                if out.logprobs is not None:
                    logps = [float(step[tok].logprob) for step, tok in zip(out.logprobs, out.token_ids)]
                group.append(
                    Completion(
                        text=out.text,
                        prompt_ids=list(request.prompt_token_ids or []),
                        completion_ids=list(out.token_ids),
                        logprobs=logps,
                        finish_reason="length" if out.finish_reason == "length" else "stop",
                    )
                )
            results.append(group)
        return results
