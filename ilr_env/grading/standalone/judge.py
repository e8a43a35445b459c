"""Trusted judge for untrusted programs. Run by path as its own process (stdlib only): ``python -I judge.py``.

The grader writes one JSON job to our stdin and reads one verdict line ``ILR-VERDICT <nonce> <json>`` from our
stdout. We start the untrusted program inside the sandbox command we were given and, for test jobs, run the
TRUSTED test code here, in this process: its names resolve to what the tests and prompt define, then to the
true built-ins, and only then to the program's functions, each a proxy that calls into the sandbox over a pipe
(``TestGlobals``); how programs are started and killed is in ``programs.py``. The program can only influence
the verdict through the plain-data values its functions return (decoded strictly here): exiting early,
printing markers, redefining ``check``, ``assert``, builtins or ``__eq__`` cannot reach this process. The
nonce (known only to the grader and us) marks the verdict line, so output from anything else cannot pass for
it.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # run by path: ``-I`` puts no script directory on sys.path
    sys.path.insert(0, HERE)

import builtins
import json
import select
import time
import traceback
from typing import Any

import cgroup
import codec
import linux
from programs import (
    GraderFault,
    PopenProgram,
    ProtocolError,
    Timeout,
    ZygoteError,
    ZygoteProgram,
    drop_zygote,
    kill_all,
    prctl,
    zygote_pids,
)


class CandidateError(Exception):
    """A user function raised; the test sees this like any exception from a candidate."""


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
            drop_zygote()
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
    kill_all(proc, zygote_pids())
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
    prctl(linux.PR_SET_DUMPABLE, 0)  # a same-uid program cannot ptrace or read this process
    prctl(linux.PR_SET_CHILD_SUBREAPER, 1)  # orphans of the program become our children, so we can kill them
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
        drop_zygote()
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
