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
from ilr_agents.policies.base import (
    Chat,
    Completion,
    PolicyError,
    SamplingParams,
    chat_token_ids,
    check_chats,
)


def uses_vllm(config: ILRConfig) -> bool:
    return config.generation_backend == "vllm"


def check_generation_backend(config: ILRConfig) -> None:
    """Fail before any model loads when vLLM cannot run this config; every message names the fix."""
    if not uses_vllm(config):
        return
    from ilr_agents.models import resolve_model
    from ilr_agents.policies.vllm_setup import check_architecture, check_memory, import_vllm

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

    TRL builds ``vllm.LLM`` with its own argument list and ``dtype="auto"``, which would serve a float32 model
    in the checkpoint's dtype (bfloat16 for most hub models); the engine gets the config's dtype instead, so
    the log-probs TRL compares (engine vs trainer) differ by kernels only. On CPU the engine also runs eager
    (torch.compile takes minutes per engine on 2 cores), gets a fixed KV cache of ``VLLM_CPU_KVCACHE_SPACE``
    GiB (vLLM's own knob, kept when the user set it) instead of a fraction of RAM minus everything the
    training process already holds, and keeps its weights live (``live_cpu_weights``).
    """
    if not uses_vllm(config) or config.vllm_mode != "colocate":
        yield
        return
    import trl.generation.vllm_generation as trl_vllm

    from ilr_agents.policies.vllm_setup import CPU_KV_CACHE_GIB, on_cpu

    extra: dict[str, Any] = {} if config.dtype == "auto" else {"dtype": config.dtype}
    live: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if on_cpu():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
        extra["enforce_eager"] = True
        live = live_cpu_weights()
    original = trl_vllm.LLM
    trl_vllm.LLM = functools.partial(original, **extra)
    try:
        with live:
            yield
    finally:
        trl_vllm.LLM = original


@contextlib.contextmanager
def live_cpu_weights() -> Iterator[None]:
    """Engines built inside this block compute every linear layer from its live weight tensor.

    The CPU build of vLLM hands each linear layer to a kernel that keeps its own packed copy of the weights,
    made once at load (oneDNN, or AMX's packed GEMM), and on most of those paths empties the original tensor.
    TRL's weight push after an optimizer step writes the original: it fails on an emptied tensor ("Attempted
    to load weight ... into parameter (torch.Size([0]))", seen with float32 on AVX2) and never reaches the
    packed copy, so the engine would keep sampling from the initial model. torch's own linear over the live
    tensor serves whatever TRL last wrote. Colocated engines are built in this process (TRL's
    ``external_launcher``), so patching vLLM's dispatch function here reaches them.
    """
    import torch
    from vllm.model_executor.layers import utils

    packed = utils.dispatch_cpu_unquantized_gemm

    def dispatch(layer: Any, remove_weight: bool) -> None:
        if layer.weight.ndim != 2 or layer.weight.is_meta:  # not a dense linear layer: vLLM's own handling
            packed(layer, remove_weight)
            return
        layer.cpu_linear = torch.nn.functional.linear  # called as (x, layer.weight, bias): the live tensor

    utils.dispatch_cpu_unquantized_gemm = dispatch
    try:
        yield
    finally:
        utils.dispatch_cpu_unquantized_gemm = packed


def close_engine(trainer: Any) -> None:
    """Shut a trainer's colocated engine down now, leaving the training processes' own group standing.

    vLLM's engine shutdown (``cleanup_dist_env_and_memory``) also destroys torch's default process group,
    which under ``accelerate launch`` is the trainers' group, not the engine's. That resets torch's group
    counter, so the next engine built in the same process (the baseline trains its agents one after the
    other) names its groups as the first one did, in the same store, and reads stale addresses: gloo
    "connection refused" or a hang in vLLM's ``new_group``; on GPUs the NCCL world would be gone too. Left to
    the garbage collector the shutdown would come at an unknown moment; here it comes while
    ``keep_default_group`` holds. A no-op without a colocated engine (server mode, HF generation) and when
    the engine is already shut down.
    """
    generation = getattr(trainer, "vllm_generation", None)
    llm = getattr(generation, "llm", None) if generation is not None else None
    if llm is None:
        return
    with keep_default_group():
        llm.llm_engine.engine_core.shutdown()  # vLLM's in-process client: runs its finaliser once


@contextlib.contextmanager
def keep_default_group() -> Iterator[None]:
    """Inside this block torch's default process group survives ``destroy_process_group()``; the
    subgroups an engine made for itself are still destroyed."""
    import torch.distributed as dist

    original = dist.destroy_process_group

    def destroy(group: Any = None) -> None:
        if group is None or group is dist.GroupMember.WORLD:
            return
        original(group)

    dist.destroy_process_group = destroy
    try:
        yield
    finally:
        dist.destroy_process_group = original


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
        return chat_token_ids(self.tokenizer, chat)

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
