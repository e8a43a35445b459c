"""How the judge starts, watches and kills programs: directly (``PopenProgram``: the unsafe fallback, or one
bwrap per program) or forked by the judge's sandboxed zygote (``ZygoteProgram``), plus the log readers and the
clean-up of everything a program leaves behind. Standard library only: loaded by path by the judge.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import subprocess
import threading
import time
from typing import Any

import cgroup
import linux


class ProtocolError(Exception):
    """The program side broke the protocol (a malformed or oversized message, or it went away)."""


class Timeout(Exception):
    """The deadline passed while waiting for the program."""


class LogReader(threading.Thread):
    """Drains the program's stdout+stderr, keeping the first ``limit`` bytes and discarding the rest."""

    def __init__(self, fd: int, limit: int) -> None:
        super().__init__(daemon=True)
        self.fd, self.limit, self.buf, self.truncated = fd, limit, bytearray(), False

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            room = self.limit - len(self.buf)
            if room > 0:
                self.buf += chunk[:room]
            if len(chunk) > room:
                self.truncated = True

    def text(self) -> str:
        return self.buf.decode("utf-8", "replace")


def prctl(option: int, value: int) -> None:
    """Best effort: without libc's prctl the judge still works, with weaker process clean-up."""
    try:
        linux.prctl(option, value)
    except (OSError, AttributeError):
        pass


def _children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads), from /proc/<pid>/task/*/children: no scan of /proc."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return found


def kill_all(proc: Any, keep: frozenset[int] = frozenset()) -> None:
    """SIGKILL the program (its process group, or its whole zygote-made namespace), then every orphan
    re-parented to us (we are a subreaper); ``keep`` are our own long-lived children (the zygote)."""
    proc.kill_all()
    for _ in range(50):
        kids = [k for k in _children_of(os.getpid()) if k not in keep]
        if not kids:
            return
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for kid in kids:
            try:
                os.waitpid(kid, 0)
            except ChildProcessError:
                pass


def _limits_preexec(job: dict[str, Any], group: cgroup.ProgramCgroup | None) -> Any:
    limits = job["rlimits"]

    def preexec() -> None:
        prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the judge
        if group is not None:
            group.join()  # before bwrap or the runner: everything the program starts is in its group
        for name, value in limits.items():
            res = getattr(resource, f"RLIMIT_{name.upper()}")
            resource.setrlimit(res, (value, value))

    return preexec


class PopenProgram:
    """A program started directly (rlimits fallback, or bwrap per program when no zygote can be used)."""

    def __init__(self, job: dict[str, Any], mode: str, limit: int, group: Any = None) -> None:
        argv = [
            *job["runner_argv"],
            str(job["drop_uid"]),
            mode,
            "1" if job["guard"] else "0",
            job["program_path"],
            "1" if job.get("seccomp") else "0",
        ]
        with open(os.devnull, "rb") as devnull:
            err_r, err_w = os.pipe()
            out_r, out_w = os.pipe() if mode == "run" else (-1, subprocess.PIPE)
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if mode == "serve" or job.get("stdin") else devnull,
                stdout=out_w,
                stderr=err_w,
                env=job["env"],
                cwd=job["cwd"],
                start_new_session=True,
                preexec_fn=_limits_preexec(job, group),  # noqa: PLW1509
                close_fds=True,
            )
        os.close(err_w)
        self.logs = [LogReader(err_r, limit)]
        if mode == "run":
            os.close(out_w)
            self.logs.append(LogReader(out_r, limit))
        self.stdin_fd = self.proc.stdin.fileno() if self.proc.stdin is not None else -1
        self.stdout_fd = self.proc.stdout.fileno() if self.proc.stdout is not None else -1

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self.stdin_fd = -1

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            raise Timeout() from None

    def kill_all(self) -> None:
        _kill_session(self.proc)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with start_new_session and everything in its process group, then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()
    proc.wait()


class GraderFault(Exception):
    """The sandbox could not be set up as asked (say, the program's cgroup): reported to the grader as
    status "error", which it raises; the program never ran."""


class ZygoteError(Exception):
    """The zygote died or answered nonsense; it is restarted for the next program."""


class Zygote:
    """One sandboxed, pre-warmed interpreter (bwrap namespaces, see zygote.py) forking a child per program.

    We talk to it over a unix socket: ``spawn`` (spec + the program's stdio and source pipes as SCM_RIGHTS
    fds), ``kill``; it answers ``ready`` once and ``exit <status>`` per program.
    """

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.key = (tuple(argv), tuple(sorted(env.items())))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        with open(os.devnull, "rb") as devnull:
            self.proc = subprocess.Popen(
                [*argv, str(theirs.fileno()), ",".join(linux.PROGRAM_NAMESPACES)],
                stdin=devnull,
                stdout=subprocess.DEVNULL,
                stderr=None,
                env=env,
                cwd="/",
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )  # bwrap's --die-with-parent ties it to us
        theirs.close()
        reply = self.recv(time.monotonic() + 30)
        if reply.get("op") != "ready":
            self.close()
            raise ZygoteError(f"the zygote did not start: {reply}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def recv(self, deadline: float) -> dict[str, Any]:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([self.sock], [], [], max(0.0, left))
        if not ready:
            raise Timeout()
        try:
            data = self.sock.recv(65536)
        except OSError as exc:
            raise ZygoteError(f"the zygote went away: {exc}") from None
        if not data:
            raise ZygoteError("the zygote went away")
        try:
            msg = json.loads(data)
        except ValueError:
            raise ZygoteError("malformed zygote message") from None
        if not isinstance(msg, dict):
            raise ZygoteError("malformed zygote message")
        return msg

    def send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        try:
            if fds:
                socket.send_fds(self.sock, [json.dumps(msg).encode()], fds)
            else:
                self.sock.send(json.dumps(msg).encode())
        except OSError as exc:
            raise ZygoteError(f"the zygote went away: {exc}") from None

    def close(self) -> None:
        _kill_session(self.proc)
        self.sock.close()


_ZYGOTE: Zygote | None = None


def _zygote(job: dict[str, Any]) -> Zygote:
    global _ZYGOTE
    key = (tuple(job["zygote_argv"]), tuple(sorted(job["env"].items())))
    if _ZYGOTE is not None and (_ZYGOTE.key != key or not _ZYGOTE.alive()):
        _ZYGOTE.close()
        _ZYGOTE = None
    if _ZYGOTE is None:
        _ZYGOTE = Zygote(job["zygote_argv"], job["env"])
    return _ZYGOTE


def drop_zygote() -> None:
    global _ZYGOTE
    if _ZYGOTE is not None:
        _ZYGOTE.close()
        _ZYGOTE = None


class ZygoteProgram:
    """A program the zygote forked into fresh namespaces (see zygote.py); killing it kills its namespace."""

    def __init__(self, job: dict[str, Any], mode: str, limit: int, group: Any = None) -> None:
        self.zygote = _zygote(job)
        self.returncode: int | None = None
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        src_r, src_w = os.pipe()
        spec = {
            "op": "spawn",
            "uid": job["drop_uid"],
            "mode": mode,
            "rlimits": job["rlimits"],
            "seccomp": bool(job.get("seccomp")),
            "tmpfs_bytes": job.get("tmpfs_bytes", 64 * 1024 * 1024),
        }
        theirs = [in_r, out_w, err_w, src_r]
        try:
            try:
                theirs += group.open_procs() if group is not None else []
                self.zygote.send(spec, theirs)
            except BaseException:
                os.close(src_w)
                raise
            finally:
                for fd in theirs:
                    os.close(fd)
            self._write_source(src_w, job["program"].encode("utf-8", "surrogatepass"))
            msg = self.zygote.recv(time.monotonic() + 30)
            if msg.get("op") == "fault":
                raise GraderFault(str(msg.get("why"))[:300])
            if msg.get("op") != "spawned":
                raise ZygoteError(f"unexpected zygote message {msg!r}")
        except BaseException:  # a zygote that fails before the program starts: _handle starts it directly
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            raise
        self.stdin_fd, self.stdout_fd = in_w, out_r
        self.logs = [LogReader(err_r, limit)]
        if mode == "run":
            self.logs.append(LogReader(out_r, limit))
            self.stdout_fd = -1

    @staticmethod
    def _write_source(fd: int, data: bytes) -> None:
        # The source never passes through the zygote (later programs are forked from it): the program's own
        # namespace-init reads it from this pipe and writes /sandbox/solution.py.
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass
        finally:
            os.close(fd)

    def close_stdin(self) -> None:
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    def _await_exit(self, deadline: float) -> int:
        while self.returncode is None:
            msg = self.zygote.recv(deadline)
            if msg.get("op") == "exit" and type(msg.get("status")) is int:
                self.returncode = msg["status"]
            else:
                raise ZygoteError(f"unexpected zygote message {msg!r}")
        return self.returncode

    def wait(self, timeout: float) -> int:
        try:
            return self._await_exit(time.monotonic() + max(0.0, timeout))
        except ZygoteError:
            drop_zygote()
            raise ProtocolError("the sandbox zygote went away") from None

    def kill_all(self) -> None:
        try:
            if self.returncode is None:
                self.zygote.send({"op": "kill"})
                self._await_exit(time.monotonic() + 10)
        except (ZygoteError, Timeout):
            drop_zygote()  # killing the zygote's bwrap kills every namespace below it
        self.close_stdin()
        if self.stdout_fd >= 0:
            os.close(self.stdout_fd)
            self.stdout_fd = -1


def zygote_pids() -> frozenset[int]:
    """The judge's own long-lived children, which clean-up after a program must spare."""
    return frozenset([_ZYGOTE.proc.pid]) if _ZYGOTE is not None else frozenset()
