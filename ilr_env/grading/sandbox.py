"""Run untrusted model-written programs through the trusted judge, under bubblewrap (see ``isolation.py``).

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
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ilr_env.grading.isolation import (
    POLICY_ENV,
    SANDBOX_CODE_DIR,
    SANDBOX_POLICIES,
    STANDALONE_DIR,
    TMPFS_BYTES,
    ZYGOTE_ENABLED,
    Isolation,
    SandboxError,
    SandboxUnavailableError,
    bwrap_argv,
    bwrap_available,
    bwrap_namespace_args,
    bwrap_problem,
    guarantees,
    isolation_mode,
    sandbox_policy,
    sandbox_python,
    set_sandbox_policy,
    use_bwrap,
)
from ilr_env.grading.pool import PerProcess, WorkerPool
from ilr_env.grading.standalone import cgroup, seccomp

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_MB = 1024
DEFAULT_OUTPUT_LIMIT = 64 * 1024
MAX_FILE_BYTES = 16 * 1024 * 1024
SANDBOX_PROCESSES = 64
_JUDGE = STANDALONE_DIR / "judge.py"


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


@functools.lru_cache(maxsize=1)
def cgroup_problem() -> str | None:
    """Why programs get no cgroup of their own here (None when they do); see ``standalone/cgroup.py``."""
    return cgroup.problem()


def cgroups_usable() -> bool:
    return cgroup_problem() is None


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
    bwrap = use_bwrap(isolation)
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
    elif bwrap:
        rlimits["nproc"] = SANDBOX_PROCESSES  # counted for the fresh uid the runner drops to
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    if bwrap:
        env["HOME"] = "/tmp"
        runner = f"{SANDBOX_CODE_DIR}/runner.py"
        argv, path = [*bwrap_argv(host_dir, python, env), runner], "/sandbox/solution.py"
        drop_uid = 1_000_000 + secrets.randbelow(1_000_000) if root else -1
    else:
        runner = str(STANDALONE_DIR / "runner.py")
        argv, path, drop_uid = [python, "-I", "-S", "-B", runner], str(prog_path), -1
        env["HOME"] = env["TMPDIR"] = host_dir  # temporary files stay where the fallback allows writes
    extra: dict[str, Any] = {}
    if bwrap and root and ZYGOTE_ENABLED:
        # The judge forks this program from its warm zygote into fresh namespaces (see SECURITY.md); ``argv``
        # stays the fallback should the zygote be unusable.
        extra = {
            "zygote_argv": [*bwrap_argv(None, python, env), f"{SANDBOX_CODE_DIR}/zygote.py"],
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
        "guard": not bwrap,
        "seccomp": seccomp.supported(),
        "cgroup": {"memory": memory_mb << 20, "tasks": SANDBOX_PROCESSES} if cgroups_usable() else None,
        "rlimits": rlimits,
        "timeout_s": timeout_s,
        "output_limit": output_limit,
        "stdin": stdin,
        "test": test,
        "isolation": "bwrap" if bwrap else "unsafe_subprocess",
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


START_GRACE_S = 60.0  # for the judge to take the job and start the program (a zygote's first start included)
VERDICT_GRACE_S = 5.0  # after the program's own deadline, for the judge's clean-up and verdict line


class _NotStarted(Exception):
    """The judge went away before it started the program: the grader's problem, never the program's."""


class _JudgeDied(Exception):
    """The judge went away while the program ran."""


def _await_verdict(judge: _Judge, job: dict[str, Any]) -> bytes:
    """The verdict's JSON. The deadline is the program's own (``timeout_s``) from the moment the judge says
    it started it, plus a grace: a judge stuck past it (in C code, say, on hash-colliding values) is
    stopped by the caller. Raises TimeoutError for that, _NotStarted or _JudgeDied."""
    started = f"ILR-STARTED {job['nonce']}".encode()
    marker = f"ILR-VERDICT {job['nonce']} ".encode()
    deadline, running = time.monotonic() + START_GRACE_S, False
    try:
        judge.proc.stdin.write(json.dumps(job).encode() + b"\n")
        judge.proc.stdin.flush()
    except OSError:
        raise _NotStarted("the judge did not take the job") from None
    while True:
        try:
            line = judge.read_line(deadline)
        except TimeoutError:
            if running:
                raise
            raise SandboxError(
                f"the judge did not start the program within {START_GRACE_S:.0f} s: {judge.stderr_tail()}"
            ) from None
        if line is None:
            raise (_JudgeDied if running else _NotStarted)(f"exit {judge.proc.poll()}")
        if line == started:
            deadline, running = time.monotonic() + job["timeout_s"] + VERDICT_GRACE_S, True
        elif line.startswith(marker):
            return line[len(marker) :]


def _result(job: dict[str, Any], status: str, detail: str) -> SandboxResult:
    return SandboxResult(status, detail, None, "", "", False, job["timeout_s"], job["isolation"])


def _run_judge(job: dict[str, Any], *, probe: bool = False, tries: int = 2) -> SandboxResult:
    judges = _JUDGES.get()
    judge = judges.acquire()
    try:
        verdict = _await_verdict(judge, job)
    except TimeoutError:
        judges.discard(judge)
        return _result(job, "timeout", f"no verdict within {job['timeout_s']} s: the judge was stopped")
    except _NotStarted as exc:  # a judge that died idle: another one, then the grader is broken
        tail = judge.stderr_tail()
        judges.discard(judge)
        if tries > 1:
            return _run_judge(job, probe=probe, tries=tries - 1)
        raise SandboxError(f"the judge went away before starting the program ({exc}): {tail}") from None
    except _JudgeDied as exc:
        tail = judge.stderr_tail()
        judges.discard(judge)
        if probe or not _judge_works(job["isolation"]):
            raise SandboxError(f"the judge died ({exc}); a fresh one cannot run a program: {tail}") from None
        return _result(job, "failed", f"the judge died while checking this program ({exc})")
    except BaseException:
        judges.discard(judge)
        raise
    judges.release(judge)
    r = json.loads(verdict)
    if r["status"] == "error":  # the judge could not set the sandbox up: never a verdict on the program
        raise SandboxError(f"the sandbox could not be set up: {r['detail']}")
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


def _judge_works(isolation: str) -> bool:
    """After a judge died under a program: can a fresh judge run an empty one? If so, the program killed it
    (a graded failure); if not, the grader is broken (an error, never a score)."""
    with tempfile.TemporaryDirectory(prefix="ilr-sandbox-") as host_dir:
        job = _build_job(
            "",
            mode="run",
            timeout_s=DEFAULT_TIMEOUT_S,
            memory_mb=DEFAULT_MEMORY_MB,
            isolation=isolation,  # type: ignore[arg-type]
            output_limit=DEFAULT_OUTPUT_LIMIT,
            host_dir=host_dir,
        )
        try:
            return _run_judge(job, probe=True).ok
        except SandboxError:
            return False


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


__all__ = [
    "POLICY_ENV",
    "SANDBOX_POLICIES",
    "Isolation",
    "SandboxError",
    "SandboxResult",
    "SandboxUnavailableError",
    "bwrap_available",
    "bwrap_namespace_args",
    "bwrap_problem",
    "cgroup_problem",
    "guarantees",
    "isolation_mode",
    "judge_once",
    "run_program",
    "run_tests",
    "sandbox_policy",
    "sandbox_python",
    "set_sandbox_policy",
]
