"""Model sizes without loading a model, and a per-GPU memory estimate for a training preset.

Why: a paper preset that cannot fit should say so before it downloads 30 GB of weights. Sizes come from a
model's ``config.json`` (a local folder) or from a small table of the architectures this project's presets
name, copied from their hub ``config.json`` files; parameter counts are computed from the architecture (the
tests check the formula against transformers' own models built on the meta device).

The estimate is deliberately simple and says what it counts: optimiser state, gradients and weights from
exact parameter counts; activations, logits and KV caches from token counts with stated approximations.
No torch import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3
# What a process holds before any model: on a GPU the CUDA context (~0.5 GiB) and NCCL's communicator
# buffers (~0.5 GiB over 8 GPUs); on CPU, the Python process with torch, transformers, TRL and vLLM
# imported (measured: 0.89 GiB resident).
RUNTIME_GPU_BYTES = 1.0 * GIB
RUNTIME_CPU_BYTES = 0.9 * GIB

# Hub config.json fields of the models the presets name (only what the size formula reads).
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-3.1-8B-Instruct": {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "tie_word_embeddings": False,
    },
    "Qwen/Qwen2.5-7B-Instruct": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
    "Qwen/Qwen2.5-14B-Instruct": {
        "model_type": "qwen2",
        "hidden_size": 5120,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "intermediate_size": 13824,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
    "Skywork/Skywork-Reward-V2-Qwen3-0.6B": {
        "model_type": "qwen3",
        "architectures": ["Qwen3ForSequenceClassification"],
        "num_labels": 1,
        "hidden_size": 1024,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "intermediate_size": 3072,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
}

# Architectures whose attention projections q, k, v carry a bias / whose q and k get an RMSNorm each.
_QKV_BIAS = {"qwen2"}
_QK_NORM = {"qwen3"}


class UnknownModelSizeError(ValueError):
    """The size of a model cannot be known without downloading it (the message says how to add it)."""


@dataclass(frozen=True)
class Architecture:
    """A decoder-only transformer's shape: enough to count parameters and size activations and KV caches."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False
    classifier_labels: int | None = None  # a sequence-classification head instead of the LM head

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Architecture:
        heads = int(cfg["num_attention_heads"])
        kind = str(cfg.get("model_type", ""))
        classifier = any(a.endswith("ForSequenceClassification") for a in cfg.get("architectures") or [])
        return cls(
            hidden=int(cfg["hidden_size"]),
            layers=int(cfg["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or cfg["hidden_size"] // heads),
            intermediate=int(cfg["intermediate_size"]),
            vocab=int(cfg["vocab_size"]),
            tied=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=bool(cfg.get("attention_bias", kind in _QKV_BIAS)),
            qk_norm=kind in _QK_NORM,
            classifier_labels=int(cfg.get("num_labels", 1)) if classifier else None,
        )

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def embedding_parameters(self) -> int:
        return self.vocab * self.hidden

    @property
    def layer_parameters(self) -> int:
        q = self.heads * self.head_dim
        attention = self.hidden * (q + 2 * self.kv_dim) + q * self.hidden
        if self.qkv_bias:
            attention += q + 2 * self.kv_dim
        if self.qk_norm:
            attention += 2 * self.head_dim
        mlp = 3 * self.hidden * self.intermediate  # gate, up, down (SwiGLU)
        return attention + mlp + 2 * self.hidden  # two RMSNorms

    @property
    def parameters(self) -> int:
        if self.classifier_labels is not None:
            head = self.hidden * self.classifier_labels
        else:
            head = 0 if self.tied else self.embedding_parameters
        return self.embedding_parameters + self.layers * self.layer_parameters + self.hidden + head

    def lora_parameters(self, rank: int) -> int:
        """LoRA on every linear layer of every block (target_modules: all-linear), A and B matrices."""
        q = self.heads * self.head_dim
        shapes = [
            (self.hidden, q),
            (self.hidden, self.kv_dim),
            (self.hidden, self.kv_dim),
            (q, self.hidden),
            (self.hidden, self.intermediate),
            (self.hidden, self.intermediate),
            (self.intermediate, self.hidden),
        ]
        return self.layers * sum(rank * (a + b) for a, b in shapes)


def architecture(name: str) -> Architecture:
    """The architecture of a zoo model, a local folder or a cached hub id (its config.json), else of a hub id
    in ``KNOWN_CONFIGS``; nothing is downloaded and no weights are read."""
    from ilr_agents.models import ZOO, resolve_model

    path = Path(resolve_model(name) if name.lower() in ZOO else name).expanduser()
    config = path / "config.json"
    if not config.is_file() and "/" in name:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name, "config.json")
            config = Path(cached) if isinstance(cached, str) else config
        except ImportError:  # the hub client is optional; the table below still answers
            pass
    if config.is_file():
        return Architecture.from_config(json.loads(config.read_text()))
    if name in KNOWN_CONFIGS:
        return Architecture.from_config(KNOWN_CONFIGS[name])
    raise UnknownModelSizeError(
        f"size of model {name!r} is unknown without downloading it: pass a local folder with a config.json, "
        "or add its config.json fields to KNOWN_CONFIGS in experiments/pipeline/memory.py"
    )


# --- the estimate -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingShape:
    """What a training run puts on each GPU, from the config (see ``estimate_memory``)."""

    agents: list[Architecture]
    world_size: int  # processes (one per GPU)
    sharded: bool  # FSDP: weights, gradients and optimiser state split across the processes
    lora_rank: int | None  # None = full fine-tuning
    master_bytes: int  # bytes per stored weight: 4 (fp32 master weights) or 2 (bf16, LoRA base)
    rows: int  # per_device_train_batch_size: sequences per forward
    prompt_tokens: int  # the longest prompt a trained sequence carries (question + discussion context)
    completion_tokens: int  # max_completion_length
    gradient_checkpointing: bool
    reward_model: Architecture | None = None
    prompt_rows: int | None = None  # prompts in the loss forward (rows / n: each group's prompt read once)
    eval_batch: int = 64
    eval_tokens: int = 2048  # prompt + max new tokens of one evaluation sequence
    # vLLM rollouts (generation_backend: vllm, colocate): one engine per agent in every process
    engines: tuple[Architecture, ...] = ()
    engine_weight_bytes: int = 2  # bf16 on a GPU; the config's dtype (float32) on CPU
    engine_tokens: int = 0  # KV-cache tokens one engine needs: rows x its context length
    engine_reserved: float = 0.0  # bytes an engine takes up front (GPU: fraction x GPU; CPU: KV + weights)
    on_gpu: bool = True  # runtime context: CUDA + NCCL, or the CPU process's imports
    # models that rank questions and fit abilities before training (fp32, one at a time)
    preparation: tuple[Architecture, ...] = ()
    preparation_tokens: int = 0


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per GPU (per process on CPU), by component. Preparation, training and vLLM evaluation are
    separate phases (never all resident)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    rollout_kv_cache: float
    reward_model: float
    gathered_shards: float
    vllm_weights: float
    vllm_kv_cache: float
    rollout_engines: float = 0.0
    runtime: float = 0.0
    preparation: float = 0.0

    @property
    def training(self) -> float:
        return (
            self.weights
            + self.gradients
            + self.optimizer
            + max(self.activations + self.logits, self.rollout_kv_cache)
            + self.reward_model
            + self.gathered_shards
            + self.rollout_engines
            + self.runtime
        )

    @property
    def preparation_peak(self) -> float:
        """Ranking and ability fit: the largest preparation model beside this process's weight shards."""
        return self.weights + self.preparation + self.runtime if self.preparation else 0.0

    @property
    def evaluation(self) -> float:
        return self.vllm_weights + self.vllm_kv_cache

    def rows(self) -> list[tuple[str, float]]:
        """(component, GiB) in print order."""
        return [
            ("weights (all agents, this GPU's share)", self.weights / GIB),
            ("gradients", self.gradients / GIB),
            ("AdamW state (fp32 m and v)", self.optimizer / GIB),
            ("activations (one agent's step at a time)", self.activations / GIB),
            ("logits (fp32, completion tokens)", self.logits / GIB),
            ("rollout KV cache (generation, bf16)", self.rollout_kv_cache / GIB),
            ("reward model (bf16)", self.reward_model / GIB),
            ("FSDP gathered units (bf16)", self.gathered_shards / GIB),
            ("vLLM rollout engines (one per agent, colocated)", self.rollout_engines / GIB),
            ("runtime (CUDA context + NCCL / CPU imports)", self.runtime / GIB),
            ("= training peak per GPU", self.training / GIB),
            ("preparation model (fp32, ranking + ability fit)", self.preparation / GIB),
            ("= preparation peak per GPU", self.preparation_peak / GIB),
            ("vLLM weights (largest model, bf16)", self.vllm_weights / GIB),
            ("vLLM KV cache (eval batch)", self.vllm_kv_cache / GIB),
            ("= evaluation peak per GPU", self.evaluation / GIB),
        ]


def _kv_bytes(arch: Architecture, tokens: int) -> float:
    return 2.0 * arch.layers * arch.kv_dim * 2 * tokens  # keys and values, bf16


def _layer_activation_bytes(arch: Architecture, tokens: int) -> float:
    """Tensors one block keeps for backward under bf16 autocast (flash/SDPA attention, no s^2 term):
    bf16 inputs of the seven projections plus the SwiGLU intermediates, and the fp32 residual stream."""
    bf16 = 6 * arch.hidden + 2 * arch.kv_dim + 4 * arch.intermediate
    return tokens * (2.0 * bf16 + 8.0 * arch.hidden)


def estimate_memory(shape: TrainingShape) -> MemoryEstimate:
    """Per-GPU bytes of one training process and of one vLLM evaluation engine.

    Counted: every agent's weights, gradients and AdamW moments (all agents live in every process; FSDP
    divides them by the world size); the activations of ONE agent's forward/backward (agents step one at a
    time, token passing; with the shared-prompt loss each group's prompt is read once); logits of the
    completion tokens in fp32 with their gradient; the rollout's KV cache; the reward model in bf16; FSDP's
    gathered units (the root's embeddings plus two blocks in bf16).
    With vLLM rollouts, each agent's colocated engine: its weights and KV cache, or what it reserves up
    front if more (then the trainer's own rollout KV cache is not used). The runtime: CUDA context and NCCL
    buffers on a GPU, the imported libraries on CPU. Preparation (self-ranking, ability fit) is its own
    phase: one fp32 model at a time, with its KV cache, beside the weight shards.
    Not counted: allocator fragmentation, temporary buffers of fused kernels.
    """
    if shape.world_size < 1:
        raise ValueError(f"world_size={shape.world_size}: must be >= 1")
    share = 1.0 / shape.world_size if shape.sharded else 1.0
    weights = gradients = optimizer = 0.0
    for arch in shape.agents:
        trainable = arch.lora_parameters(shape.lora_rank) if shape.lora_rank else arch.parameters
        base_bytes = 2 if shape.lora_rank else shape.master_bytes
        weights += (arch.parameters * base_bytes + (4 * trainable if shape.lora_rank else 0)) * share
        gradients += 4.0 * trainable * share
        optimizer += 8.0 * trainable * share
    tokens = shape.rows * (shape.prompt_tokens + shape.completion_tokens)  # generation: every row's cache
    prompt_rows = shape.rows if shape.prompt_rows is None else shape.prompt_rows
    loss_tokens = prompt_rows * shape.prompt_tokens + shape.rows * shape.completion_tokens
    per_agent_act = []
    for arch in shape.agents:
        layer = _layer_activation_bytes(arch, loss_tokens)
        kept = 4.0 * loss_tokens * arch.hidden * arch.layers + layer if shape.gradient_checkpointing else None
        per_agent_act.append(kept if kept is not None else layer * arch.layers)
    logits = max(12.0 * shape.rows * shape.completion_tokens * a.vocab for a in shape.agents)
    kv = max(_kv_bytes(a, tokens) for a in shape.agents)
    rm = 0.0
    if shape.reward_model is not None:
        batch = 8 * (shape.prompt_tokens + shape.completion_tokens)  # RewardModelReward's batch of 8 texts
        rm = 2.0 * shape.reward_model.parameters + _layer_activation_bytes(shape.reward_model, batch) / 2
    gathered = 0.0
    if shape.sharded and shape.world_size > 1:
        gathered = max(
            2.0 * ((1 if a.tied else 2) * a.embedding_parameters + 2 * a.layer_parameters)
            for a in shape.agents
        )
    largest = max(shape.agents, key=lambda a: a.parameters)
    engines = sum(
        max(
            shape.engine_reserved,
            shape.engine_weight_bytes * a.parameters + _kv_bytes(a, shape.engine_tokens),
        )
        for a in shape.engines
    )
    preparation = max(
        (4.0 * a.parameters + 2 * _kv_bytes(a, shape.preparation_tokens) for a in shape.preparation),
        default=0.0,
    )
    return MemoryEstimate(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=max(per_agent_act),
        logits=logits,
        rollout_kv_cache=0.0 if shape.engines else kv,
        reward_model=rm,
        gathered_shards=gathered,
        vllm_weights=2.0 * largest.parameters,
        vllm_kv_cache=max(_kv_bytes(a, shape.eval_batch * shape.eval_tokens) for a in shape.agents),
        rollout_engines=engines,
        runtime=RUNTIME_GPU_BYTES if shape.on_gpu else RUNTIME_CPU_BYTES,
        preparation=preparation,
    )
