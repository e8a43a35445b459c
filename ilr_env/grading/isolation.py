"""Where untrusted programs run: bubblewrap when it works, else nothing unless the user opts into the unsafe
fallback; the sandbox policy (``ILR_SANDBOX``); and the bwrap command lines of the sandbox.

Without bubblewrap a program shares the grader's user, files and ``/proc``: it can read the grader's
memory (and so forge a verdict) and environment. That is no sandbox, so code grading refuses it unless the
user names it (``ILR_SANDBOX=unsafe_subprocess``, or ``isolation="unsafe_subprocess"``). See SECURITY.md.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Literal

from ilr_env.grading.base import GraderUnavailableError

Isolation = Literal["auto", "bwrap", "unsafe_subprocess"]
ISOLATIONS: tuple[str, ...] = ("auto", "bwrap", "unsafe_subprocess")
SandboxPolicy = Literal["auto", "require_bwrap", "unsafe_subprocess"]
SANDBOX_POLICIES: tuple[str, ...] = ("auto", "require_bwrap", "unsafe_subprocess")
POLICY_ENV = "ILR_SANDBOX"
UNSAFE = "unsafe_subprocess"
logger = logging.getLogger(__name__)
_FALLBACK_WARNED = False
_FALLBACK_LOCK = threading.Lock()

TMPFS_BYTES = 64 * 1024 * 1024
# Fork each program from a warm, sandboxed zygote (one per judge) instead of starting bwrap + python per
# program. Only as root (the zygote needs real CAP_SYS_ADMIN for per-program namespaces); set
# ILR_SANDBOX_ZYGOTE=0 to start every program with its own bwrap.
ZYGOTE_ENABLED = os.environ.get("ILR_SANDBOX_ZYGOTE", "1") != "0"
# The stdlib-only programs of the sandbox (judge, zygote, runner and what they share), run by path; inside
# bwrap their folder is bound read-only at SANDBOX_CODE_DIR.
STANDALONE_DIR = Path(__file__).with_name("standalone")
SANDBOX_CODE_DIR = "/ilr"


class SandboxError(GraderUnavailableError):
    """The sandbox failed or may not run here (never the program's fault), so it is never scored as wrong."""


class SandboxUnavailableError(SandboxError):
    """Code cannot be graded here under the sandbox policy in force (bubblewrap missing or refused)."""


def sandbox_python() -> str:
    """The real interpreter behind a virtualenv: the sandbox sees the base installation, never the venv."""
    return os.path.realpath(sys.executable)


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """Why bubblewrap cannot isolate programs here (None when it can): missing from PATH, or unable to
    create the namespaces we need on this kernel."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap is not installed (not on PATH)"
    try:
        probe = subprocess.run(
            [exe, *bwrap_namespace_args(), "--ro-bind", "/", "/", "true"],
            check=False,
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap at {exe} did not run: {exc}"
    if probe.returncode != 0:
        err = probe.stderr.decode("utf-8", "replace").strip()[:200]
        return f"bwrap at {exe} cannot create namespaces here (exit {probe.returncode}: {err})"
    return None


def bwrap_available() -> bool:
    """True when ``bwrap`` is on PATH and can create the namespaces we need on this kernel."""
    return bwrap_problem() is None


def sandbox_policy() -> SandboxPolicy:
    """This process's policy, from ``ILR_SANDBOX`` (children inherit it): ``auto`` (default) grades code
    only under bubblewrap, ``require_bwrap`` the same but also refuses ``isolation="unsafe_subprocess"``,
    ``unsafe_subprocess`` allows the unsafe fallback where bubblewrap is unusable."""
    policy = os.environ.get(POLICY_ENV, "auto") or "auto"
    if policy not in SANDBOX_POLICIES:
        raise ValueError(f"{POLICY_ENV}={policy!r} is not a sandbox policy; use one of {SANDBOX_POLICIES}")
    return policy  # type: ignore[return-value]


def set_sandbox_policy(policy: str) -> None:
    """Set this process's policy (and its children's, through ``ILR_SANDBOX``): see ``sandbox_policy``."""
    if policy not in SANDBOX_POLICIES:
        raise ValueError(f"sandbox policy {policy!r} is unknown; use one of {SANDBOX_POLICIES}")
    os.environ[POLICY_ENV] = policy


def isolation_mode() -> tuple[str, str]:
    """(mode, why) for an ``isolation="auto"`` run now: "bwrap+zygote", "bwrap", "unsafe_subprocess" (the
    user opted in) or "refused" (code grading raises)."""
    problem = bwrap_problem()
    if problem is not None:
        if sandbox_policy() == UNSAFE:
            return UNSAFE, f"{problem}; {POLICY_ENV}={UNSAFE}: programs run unsandboxed (see SECURITY.md)"
        return "refused", f"{problem}; code grading raises (set {POLICY_ENV}={UNSAFE} to grade unsandboxed)"
    if os.geteuid() != 0:
        return "bwrap", "bubblewrap works; one bwrap per program (the zygote needs root)"
    if not ZYGOTE_ENABLED:
        return "bwrap", "bubblewrap works; one bwrap per program (ILR_SANDBOX_ZYGOTE=0)"
    return "bwrap+zygote", "bubblewrap works as root: programs are forked from a sandboxed zygote"


def use_bwrap(isolation: str) -> bool:
    """Whether this run goes under bubblewrap; raises where the unsafe fallback is not allowed."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation {isolation!r} is unknown; use one of {ISOLATIONS}")
    if isolation != UNSAFE and bwrap_available():
        return True
    _fallback_allowed(isolation)
    return False


def _fallback_allowed(isolation: str) -> None:
    """Raise unless the user opted into the unsafe fallback; then warn, once per process."""
    global _FALLBACK_WARNED
    policy = sandbox_policy()
    reason = f"isolation='{UNSAFE}' was requested" if isolation == UNSAFE else bwrap_problem()
    if isolation == "bwrap" or policy == "require_bwrap":
        required_by = "isolation='bwrap'" if isolation == "bwrap" else "sandbox: require_bwrap"
        raise SandboxUnavailableError(
            f"this run requires bubblewrap ({required_by}) but {reason}; install it (`apt-get install "
            "bubblewrap`, or `make install` as root)"
        )
    if isolation != UNSAFE and policy != UNSAFE:
        raise SandboxUnavailableError(
            f"code grading needs bubblewrap but {reason}; install it (`apt-get install bubblewrap`, or "
            f"`make install` as root), or opt into grading unsandboxed with {POLICY_ENV}={UNSAFE} (a program "
            "can then read your files and forge its verdict: see SECURITY.md)"
        )
    with _FALLBACK_LOCK:  # graders run in threads (check_many): one warning, not one per thread
        if _FALLBACK_WARNED:
            return
        _FALLBACK_WARNED = True
    logger.warning(
        "grading code WITHOUT bubblewrap (%s): model-written programs run unsandboxed, with rlimits and an "
        "audit hook only; they can read every file this user can and forge their own verdict (see "
        "SECURITY.md); install bubblewrap, and set sandbox: require_bwrap to make this an error",
        reason,
    )


def bwrap_namespace_args() -> list[str]:
    """The bwrap flags for the sandbox's namespaces (as root: no user namespace, two capabilities kept)."""
    ns = [
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
    ]
    if os.geteuid() == 0:
        # As root we skip the user namespace (it would map the sandbox back onto uid 0, where RLIMIT_NPROC is
        # not enforced); the runner instead drops to a fresh unprivileged uid with these two capabilities.
        return [*ns, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return ["--unshare-user", *ns]


def bwrap_argv(host_dir: str | None, python: str, env: dict[str, str]) -> list[str]:
    """bwrap around one program (``host_dir`` bound read-only at /sandbox), or, with ``host_dir=None``, around
    the zygote, which needs CAP_SYS_ADMIN to give each program it forks fresh namespaces and tmpfs mounts."""
    ns = bwrap_namespace_args()
    if host_dir is None:
        ns += ["--cap-add", "CAP_SYS_ADMIN"]
    argv = [shutil.which("bwrap") or "bwrap", *ns]
    for top in ("usr", "bin", "lib", "lib64", "sbin"):
        path = Path("/") / top
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    prefix = os.path.realpath(sys.base_prefix)
    if not prefix.startswith("/usr/"):
        # Parents are created world-readable: the host's /root is 0700 and the sandbox uid is not root.
        for parent in reversed(Path(prefix).parents[:-1]):
            argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]
    argv += ["--dev", "/dev", "--proc", "/proc"]
    argv += ["--ro-bind", str(STANDALONE_DIR), SANDBOX_CODE_DIR]
    argv += ["--ro-bind", host_dir, "/sandbox"] if host_dir is not None else ["--dir", "/sandbox"]
    argv += ["--chdir", "/tmp", "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [*argv, python, "-I", "-S", "-B"]


GUARANTEES = {
    "bwrap": (
        "verdicts come from trusted tests in the judge; programs cannot read host files, the network, the "
        "grader's environment or memory; rlimits per process"
    ),
    UNSAFE: (
        "NO isolation: a program can read every file and process of this user, the grader's memory and "
        "environment included, and so forge its verdict; only rlimits and an audit hook (a speed bump)"
    ),
    "refused": "code is not graded",
}


def guarantees(mode: str) -> str:
    """One line saying what ``mode`` (from ``isolation_mode``) promises; SECURITY.md has the details."""
    return GUARANTEES["bwrap" if mode.startswith("bwrap") else mode]
