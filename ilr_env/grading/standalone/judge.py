"""Trusted judge for untrusted programs. Run by path as its own process (stdlib only): ``python -I judge.py``.

The grader writes one JSON job to our stdin and reads one verdict line ``ILR-VERDICT <nonce> <json>`` from
our stdout. We start the untrusted program inside the sandbox command we were given and, for test jobs,
run the TRUSTED test code here, in this process, with every user function replaced by a proxy that calls
into the sandbox over a pipe. The program can only influence the verdict through the plain-data values
its functions return (decoded strictly here): exiting early, printing markers, redefining ``check``,
``assert``, builtins or ``__eq__`` cannot reach this process. The nonce (known only to the grader and
us) marks the verdict line, so output from anything else cannot pass for it.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # run by path: ``-I`` puts no script directory on sys.path
    sys.path.insert(0, HERE)

import builtins
import json
import resource
import select
import signal
import socket
import subprocess
import threading
import time
import traceback
from typing import Any

import cgroup
import codec
import linux


class ProtocolError(Exception):
    """The program side broke the protocol (a malformed or oversized message, or it went away)."""


class CandidateError(Exception):
    """A user function raised; the test sees this like any exception from a candidate."""


class Timeout(Exception):
    """The deadline passed while waiting for the program."""


class RemoteHandle:
    """An opaque program-side object (not plain data), equal to nothing but itself. Its attributes and calls
    go to the program (tests build trees of the program's classes); what comes back is plain data again."""

    __slots__ = ("_ilr_channel", "_ilr_ident", "_ilr_type")

    def __init__(self, channel: Channel, ident: int, type_name: str) -> None:
        object.__setattr__(self, "_ilr_channel", channel)
        object.__setattr__(self, "_ilr_ident", ident)
        object.__setattr__(self, "_ilr_type", type_name)

    def __repr__(self) -> str:
        return f"<program object {self._ilr_type}>"

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in RemoteHandle.__slots__:
            raise AttributeError(attr)
        return self._ilr_channel.ask({"op": "getattr", "handle": self._ilr_ident, "attr": attr})

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr.startswith("__") or attr in RemoteHandle.__slots__:
            raise AttributeError(f"cannot set {attr} on a program object")
        self._ilr_channel.ask(
            {"op": "setattr", "handle": self._ilr_ident, "attr": attr, "value": encode(value)}
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ilr_channel.call({"handle": self._ilr_ident}, args, kwargs)


def _handle_of(x: Any) -> list[Any]:
    if isinstance(x, RemoteHandle):
        return ["h", x._ilr_ident]
    raise TypeError(f"cannot pass a {type(x).__name__} to the program under test")


def encode(x: Any) -> Any:
    """Trusted test arguments as tagged plain data (the program side decodes them)."""
    return codec.encode(x, _handle_of)


class Channel:
    """Length-prefixed JSON messages to and from the program, under one deadline."""

    def __init__(self, wfd: int, rfd: int, deadline: float) -> None:
        self.wfd, self.rfd, self.deadline = wfd, rfd, deadline
        self.calls = 0

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise Timeout()
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                raise Timeout()
            chunk = os.read(self.rfd, min(n - len(buf), 1 << 20))
            if not chunk:
                raise ProtocolError("the program exited before answering")
            buf += chunk
        return buf

    def _tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise Timeout()

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        try:
            view = memoryview(codec.frame(msg))
            while view:
                view = view[os.write(self.wfd, view) :]
        except (BrokenPipeError, OSError):
            raise ProtocolError("the program exited before answering") from None
        try:
            size = codec.message_size(self._read(codec.HEADER.size))
        except codec.MalformedValue as exc:
            raise ProtocolError(str(exc)) from None
        data = self._read(size)
        try:
            reply = json.loads(data)
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ProtocolError(f"undecodable message ({type(exc).__name__})") from None
        if not isinstance(reply, dict) or type(reply.get("ok")) is not bool:
            raise ProtocolError("malformed reply")
        return reply

    def decode(self, x: Any) -> Any:
        """Strictly rebuild plain data from the program's message; anything unexpected is a ProtocolError,
        and a decode that runs past the deadline is a Timeout."""

        def handle(rest: list[Any]) -> RemoteHandle:
            if len(rest) != 2 or type(rest[0]) is not int or type(rest[1]) is not str:
                raise ProtocolError("malformed handle")
            return RemoteHandle(self, rest[0], rest[1][:100])

        try:
            return codec.decode(x, handle, tick=self._tick)
        except codec.MalformedValue as exc:
            raise ProtocolError(str(exc)) from None
        except (RecursionError, MemoryError) as exc:
            raise ProtocolError(f"undecodable value ({type(exc).__name__})") from None

    def ask(self, msg: dict[str, Any]) -> Any:
        """One request whose reply is a value; the program's exception is the candidate's."""
        self.calls += 1
        reply = self.request(msg)
        if not reply["ok"]:
            raise CandidateError(str(reply.get("error", "error"))[:500])
        return self.decode(reply.get("value"))

    def call(self, target: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        msg = {
            "op": "call",
            **target,
            "args": [encode(a) for a in args],
            "kwargs": {str(k): encode(v) for k, v in kwargs.items()},
        }
        return self.ask(msg)


class Remote:
    """Stands in for a user function inside the trusted tests."""

    def __init__(self, channel: Channel, name: str) -> None:
        self._channel, self.__name__ = channel, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call({"name": self.__name__}, args, kwargs)


class TestGlobals(dict):
    """The trusted tests' globals: their own names first, then the real built-ins, and only then the
    program's functions. A program that defines ``abs``, ``range`` or ``check`` changes nothing the tests
    see; a name nothing else defines (the entry point, a class whose objects the tests build) is its."""

    def __init__(self, channel: Channel, program_names: list[str]) -> None:
        super().__init__(__name__="__ilr_tests__")
        self.channel, self.program_names = channel, frozenset(program_names)

    def __missing__(self, key: str) -> Any:
        if key in self.program_names and not hasattr(builtins, key):
            return Remote(self.channel, key)
        raise KeyError(key)  # the interpreter then looks in the built-ins


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


def _prctl(option: int, value: int) -> None:
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


def _kill_all(proc: Any, keep: frozenset[int] = frozenset()) -> None:
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
        _prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the judge
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


def _drop_zygote() -> None:
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
            _drop_zygote()
            raise ProtocolError("the sandbox zygote went away") from None

    def kill_all(self) -> None:
        try:
            if self.returncode is None:
                self.zygote.send({"op": "kill"})
                self._await_exit(time.monotonic() + 10)
        except (ZygoteError, Timeout):
            _drop_zygote()  # killing the zygote's bwrap kills every namespace below it
        self.close_stdin()
        if self.stdout_fd >= 0:
            os.close(self.stdout_fd)
            self.stdout_fd = -1


def _run_tests(job: dict[str, Any], channel: Channel) -> tuple[str, str]:
    loaded = channel.request({"op": "load"})
    if not loaded["ok"]:
        return "failed", "program failed to load: " + str(loaded.get("error"))[:500]
    names = loaded.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProtocolError("malformed name list")
    test = job["test"]
    ns = TestGlobals(channel, names[:1000])
    if test.get("setup"):
        exec(compile(test["setup"], "setup.py", "exec"), ns)  # noqa: S102
    entry = test.get("entry_point")
    if entry and entry not in names:
        return "failed", f"the program does not define {entry}()"
    if entry:
        ns[entry] = Remote(channel, entry)  # the program's, even where the prompt defined a stub
    try:
        exec(compile(test["code"], "tests.py", "exec"), ns)  # noqa: S102
    except (Timeout, ProtocolError):
        raise
    except CandidateError as exc:
        return "failed", f"candidate raised {exc}"
    except AssertionError:
        frames = [f for f in traceback.extract_tb(sys.exc_info()[2]) if f.filename == "tests.py"]
        lines = test["code"].splitlines()
        where = (
            lines[frames[-1].lineno - 1].strip()
            if frames and 0 < (frames[-1].lineno or 0) <= len(lines)
            else ""
        )
        return "failed", f"assertion failed: {where[:300]}"
    except Exception as exc:  # noqa: BLE001
        return "failed", f"tests raised {type(exc).__name__}: {str(exc)[:300]}"
    return "passed", f"tests passed ({channel.calls} calls)"


_GROUP: tuple[tuple[int, int], cgroup.ProgramCgroup] | None = None


def _cgroup(job: dict[str, Any]) -> cgroup.ProgramCgroup | None:
    """The program's own cgroup when the grader asked for one (it checked that this machine has them).

    A judge runs one program at a time and kills each one whole, so it keeps one group for all of them
    (making and removing groups per program halves grading throughput): reused only while empty and with
    the same limits, else replaced."""
    global _GROUP
    limits = job.get("cgroup")
    if not limits:
        return None
    key = (int(limits["memory"]), int(limits["tasks"]))
    if _GROUP is not None and (_GROUP[0] != key or not _GROUP[1].empty()):
        _drop_cgroup()
    if _GROUP is None:
        try:
            group = cgroup.make(*key)
        except OSError as exc:
            sys.stderr.write(f"ilr judge: no cgroup for this program ({exc}); per-process limits only\n")
            return None
        if group is None:
            return None
        _GROUP = (key, group)
    return _GROUP[1]


def _drop_cgroup() -> None:
    global _GROUP
    if _GROUP is not None:
        _GROUP[1].remove()
        _GROUP = None


def _started(nonce: str) -> None:
    """Tell the grader the program runs: its own clock for this job's deadline starts now."""
    sys.stdout.write(f"ILR-STARTED {nonce}\n")
    sys.stdout.flush()


def _handle(job: dict[str, Any]) -> dict[str, Any]:
    start = time.monotonic()
    mode = "run" if job["mode"] == "run" else "serve"
    limit = int(job["output_limit"])
    proc: Any = None
    group = _cgroup(job)
    if job.get("zygote_argv"):
        try:
            proc = ZygoteProgram(job, mode, limit, group)
        except GraderFault as exc:
            return {"status": "error", "detail": str(exc), "returncode": None, "stderr": "", "stdout": "",
                    "truncated": False, "duration_s": round(time.monotonic() - start, 4)}  # fmt: skip
        except (ZygoteError, Timeout, OSError) as exc:
            _drop_zygote()
            sys.stderr.write(f"ilr judge: zygote unusable ({exc}); starting this program directly\n")
    if proc is None:
        proc = PopenProgram(job, mode, limit, group)
    for log in proc.logs:
        log.start()
    _started(job["nonce"])
    deadline = time.monotonic() + float(job["timeout_s"])  # the program's time, not the zygote's start-up
    try:
        if mode == "run":
            status, detail = _run_program(job, proc, deadline)
        else:
            status, detail = _run_tests(job, Channel(proc.stdin_fd, proc.stdout_fd, deadline))
    except Timeout:
        status, detail = "timeout", f"no result within {job['timeout_s']} s"
    except ProtocolError as exc:
        status, detail = "failed", f"program ended or broke the protocol: {exc}"
    keep = frozenset([_ZYGOTE.proc.pid]) if _ZYGOTE is not None else frozenset()
    _kill_all(proc, keep)
    for log in proc.logs:
        log.join(timeout=2)
    logs = proc.logs
    return {
        "status": status,
        "detail": detail,
        "returncode": proc.returncode,
        "stderr": logs[0].text(),
        "stdout": logs[1].text() if len(logs) > 1 else "",
        "truncated": any(log.truncated for log in logs),
        "duration_s": round(time.monotonic() - start, 4),
    }


def main() -> int:
    """Serve jobs, one JSON object a line on stdin, until EOF; one verdict line per job on stdout."""
    _prctl(linux.PR_SET_DUMPABLE, 0)  # a same-uid program cannot ptrace or read this process
    _prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # orphans of the program become our children, so we can kill them
    stdin = sys.stdin.buffer
    try:
        while True:
            line = stdin.readline()
            if not line.strip():
                if not line:
                    return 0
                continue
            job = json.loads(line)
            result = _handle(job)
            sys.stdout.write(f"ILR-VERDICT {job['nonce']} {json.dumps(result)}\n")
            sys.stdout.flush()
    finally:
        _drop_zygote()
        _drop_cgroup()


def _run_program(job: dict[str, Any], proc: Any, deadline: float) -> tuple[str, str]:
    if proc.stdin_fd >= 0:
        try:
            data = memoryview(job.get("stdin", "").encode())
            while data:
                data = data[os.write(proc.stdin_fd, data) :]
        except (BrokenPipeError, OSError):
            pass
        proc.close_stdin()
    code = proc.wait(deadline - time.monotonic())
    return ("passed" if code == 0 else "failed"), f"exit status {code}"


if __name__ == "__main__":
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    sys.exit(main())
