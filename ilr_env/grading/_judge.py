"""Trusted judge for untrusted programs. Run as a standalone script (stdlib only): ``python -I _judge.py``.

The grader writes one JSON job to our stdin and reads one verdict line ``ILR-VERDICT <nonce> <json>`` from
our stdout. We start the untrusted program inside the sandbox command we were given and, for test jobs,
run the TRUSTED test code here, in this process, with every user function replaced by a proxy that calls
into the sandbox over a pipe. The program can only influence the verdict through the plain-data values
its functions return (decoded strictly here): exiting early, printing markers, redefining ``check``,
``assert``, builtins or ``__eq__`` cannot reach this process. The nonce (known only to the grader and
us) marks the verdict line, so output from anything else cannot pass for it.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import Any

MAX_MESSAGE = 8 * 1024 * 1024
MAX_DEPTH = 200
_FLOAT_RE = re.compile(r"^-?(?:inf|nan|\d+(?:\.\d*)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)$")

# The program side. Runs first inside the sandbox: drops to the sandbox uid when started as root,
# installs the fallback guards, moves the protocol off stdin/stdout, then loads or runs the program.
RUNNER = r'''
import os, sys
_uid = int(sys.argv[1]); _mode = sys.argv[2]; _guard = sys.argv[3] == "1"; _path = sys.argv[4]
if _uid >= 0:
    os.setgroups([]); os.setgid(_uid); os.setuid(_uid)
if _guard:
    _blocked = ("socket.", "ctypes.dlopen", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn",
                "os.system", "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill")
    def _hook(event, args, _b=_blocked):
        if event.startswith(_b) and event != "socket.gethostname":
            raise PermissionError("blocked in the ilr sandbox: " + event)
    sys.addaudithook(_hook)
del _uid, _guard
if _mode == "run":
    import runpy
    sys.argv = [_path]
    runpy.run_path(_path, run_name="__main__")
    raise SystemExit(0)
import json, struct, traceback
_rin = os.fdopen(os.dup(0), "rb", buffering=0); _rout = os.fdopen(os.dup(1), "wb", buffering=0)
_null = os.open(os.devnull, os.O_RDONLY); os.dup2(_null, 0); os.close(_null); os.dup2(2, 1)
_handles = {}
def _enc(x, d=0):
    if d > 150: raise ValueError("value nested too deeply")
    if x is None: return ["n"]
    if isinstance(x, bool): return ["b", bool(x)]
    if isinstance(x, int): return ["i", str(int(x))]
    if isinstance(x, float): return ["f", repr(float(x))]
    if isinstance(x, complex): return ["c", repr(float(x.real)), repr(float(x.imag))]
    if isinstance(x, str): return ["s", str(x)]
    if isinstance(x, (bytes, bytearray)): return ["y", bytes(x).hex()]
    if isinstance(x, tuple): return ["t", [_enc(v, d + 1) for v in x]]
    if isinstance(x, list): return ["l", [_enc(v, d + 1) for v in x]]
    if isinstance(x, dict): return ["d", [[_enc(k, d + 1), _enc(v, d + 1)] for k, v in x.items()]]
    if isinstance(x, frozenset): return ["F", [_enc(v, d + 1) for v in x]]
    if isinstance(x, set): return ["S", [_enc(v, d + 1) for v in x]]
    _handles[id(x)] = x
    return ["h", id(x), type(x).__name__]
def _dec(x):
    tag = x[0]
    if tag == "n": return None
    if tag in ("b", "s"): return x[1]
    if tag == "i": return int(x[1])
    if tag == "f": return float(x[1])
    if tag == "c": return complex(float(x[1]), float(x[2]))
    if tag == "y": return bytes.fromhex(x[1])
    if tag == "t": return tuple(_dec(v) for v in x[1])
    if tag == "l": return [_dec(v) for v in x[1]]
    if tag == "d": return {_dec(k): _dec(v) for k, v in x[1]}
    if tag == "F": return frozenset(_dec(v) for v in x[1])
    if tag == "S": return {_dec(v) for v in x[1]}
    if tag == "h": return _handles[x[1]]
    raise ValueError(tag)
def _read(n):
    buf = b""
    while len(buf) < n:
        chunk = _rin.read(n - len(buf))
        if not chunk: raise SystemExit(0)
        buf += chunk
    return buf
def _send(obj):
    data = json.dumps(obj).encode()
    _rout.write(struct.pack(">I", len(data)) + data)
_ns = {"__name__": "__ilr_solution__"}
while True:
    _msg = json.loads(_read(struct.unpack(">I", _read(4))[0]))
    try:
        if _msg["op"] == "load":
            with open(_path) as _f: _src = _f.read()
            exec(compile(_src, "solution.py", "exec"), _ns)
            _send({"ok": True, "names": [k for k, v in list(_ns.items()) if callable(v) and not k.startswith("__")]})
        else:
            _fn = _ns[_msg["name"]] if _msg["name"] in _ns else None
            if not callable(_fn): raise NameError(_msg["name"])
            _val = _fn(*[_dec(a) for a in _msg["args"]], **{k: _dec(v) for k, v in _msg["kwargs"].items()})
            _send({"ok": True, "value": _enc(_val)})
    except BaseException as _e:
        if isinstance(_e, KeyboardInterrupt): raise
        _send({"ok": False, "error": (type(_e).__name__ + ": " + str(_e))[:500],
               "trace": traceback.format_exc()[-2000:]})
'''


class ProtocolError(Exception):
    """The program side broke the protocol (a malformed or oversized message, or it went away)."""


class CandidateError(Exception):
    """A user function raised; the test sees this like any exception from a candidate."""


class Timeout(Exception):
    """The deadline passed while waiting for the program."""


class RemoteHandle:
    """An opaque program-side object (not plain data). Equal to nothing but itself."""

    def __init__(self, ident: int, type_name: str) -> None:
        self.ident, self.type_name = ident, type_name

    def __repr__(self) -> str:
        return f"<program object {self.type_name}>"


def decode(x: Any, depth: int = 0) -> Any:
    """Strictly rebuild plain data from the program's message; anything unexpected is a ProtocolError."""
    if depth > MAX_DEPTH or not isinstance(x, list) or not x or not isinstance(x[0], str):
        raise ProtocolError("malformed value")
    tag, rest = x[0], x[1:]
    try:
        if tag == "n" and not rest:
            return None
        if tag == "b" and len(rest) == 1 and type(rest[0]) is bool:
            return rest[0]
        if tag == "s" and len(rest) == 1 and type(rest[0]) is str:
            return rest[0]
        if tag == "i" and len(rest) == 1 and type(rest[0]) is str and re.fullmatch(r"-?\d{1,4000}", rest[0]):
            return int(rest[0])
        if tag == "f" and len(rest) == 1 and type(rest[0]) is str and _FLOAT_RE.match(rest[0].lower()):
            return float(rest[0])
        if tag == "c" and len(rest) == 2 and all(type(v) is str and _FLOAT_RE.match(v.lower()) for v in rest):
            return complex(float(rest[0]), float(rest[1]))
        if tag == "y" and len(rest) == 1 and type(rest[0]) is str:
            return bytes.fromhex(rest[0])
        if tag in "tlFS" and len(rest) == 1 and type(rest[0]) is list:
            items = [decode(v, depth + 1) for v in rest[0]]
            return {"t": tuple, "l": list, "F": frozenset, "S": set}[tag](items)
        if tag == "d" and len(rest) == 1 and type(rest[0]) is list:
            out = {}
            for pair in rest[0]:
                if type(pair) is not list or len(pair) != 2:
                    raise ProtocolError("malformed dict item")
                out[decode(pair[0], depth + 1)] = decode(pair[1], depth + 1)
            return out
        if tag == "h" and len(rest) == 2 and type(rest[0]) is int and type(rest[1]) is str:
            return RemoteHandle(rest[0], rest[1][:100])
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"bad value: {exc}") from None
    raise ProtocolError(f"unknown value tag {tag!r}")


def encode(x: Any, depth: int = 0) -> Any:
    """Trusted test arguments as tagged plain data (the program side decodes them)."""
    if depth > MAX_DEPTH:
        raise ValueError("argument nested too deeply")
    if x is None:
        return ["n"]
    if isinstance(x, bool):
        return ["b", x]
    if isinstance(x, int):
        return ["i", str(x)]
    if isinstance(x, float):
        return ["f", repr(x)]
    if isinstance(x, complex):
        return ["c", repr(x.real), repr(x.imag)]
    if isinstance(x, str):
        return ["s", x]
    if isinstance(x, (bytes, bytearray)):
        return ["y", bytes(x).hex()]
    if isinstance(x, RemoteHandle):
        return ["h", x.ident]
    for kind, tag in ((tuple, "t"), (list, "l"), (frozenset, "F"), (set, "S")):
        if isinstance(x, kind):
            return [tag, [encode(v, depth + 1) for v in x]]
    if isinstance(x, dict):
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]]
    raise TypeError(f"cannot pass a {type(x).__name__} to the program under test")


class Channel:
    """Length-prefixed JSON messages to and from the program, under one deadline."""

    def __init__(self, proc: subprocess.Popen, deadline: float) -> None:
        self.proc, self.deadline = proc, deadline
        self.wfd, self.rfd = proc.stdin.fileno(), proc.stdout.fileno()
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

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(msg).encode()
        try:
            os.write(self.wfd, struct.pack(">I", len(data)))
            view = memoryview(data)
            while view:
                view = view[os.write(self.wfd, view):]
        except (BrokenPipeError, OSError):
            raise ProtocolError("the program exited before answering") from None
        (size,) = struct.unpack(">I", self._read(4))
        if size > MAX_MESSAGE:
            raise ProtocolError(f"message of {size} bytes is over the {MAX_MESSAGE}-byte limit")
        try:
            reply = json.loads(self._read(size))
        except ValueError:
            raise ProtocolError("malformed message") from None
        if not isinstance(reply, dict) or type(reply.get("ok")) is not bool:
            raise ProtocolError("malformed reply")
        return reply

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.calls += 1
        reply = self.request({"op": "call", "name": name, "args": [encode(a) for a in args],
                              "kwargs": {str(k): encode(v) for k, v in kwargs.items()}})
        if not reply["ok"]:
            raise CandidateError(str(reply.get("error", "error"))[:500])
        return decode(reply.get("value"))


class Remote:
    """Stands in for a user function inside the trusted tests."""

    def __init__(self, channel: Channel, name: str) -> None:
        self._channel, self.__name__ = channel, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(self.__name__, args, kwargs)


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
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL the program's process group, then every orphan re-parented to us (we are a subreaper)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()
    proc.wait()
    for _ in range(50):
        kids = _children_of(os.getpid())
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


def _limits_preexec(job: dict[str, Any]) -> Any:
    limits = job["rlimits"]

    def preexec() -> None:
        os.setsid()
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the judge
        for name, value in limits.items():
            res = getattr(resource, f"RLIMIT_{name.upper()}")
            resource.setrlimit(res, (value, value))

    return preexec


def _run_tests(job: dict[str, Any], channel: Channel) -> tuple[str, str]:
    loaded = channel.request({"op": "load"})
    if not loaded["ok"]:
        return "failed", "program failed to load: " + str(loaded.get("error"))[:500]
    names = loaded.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ProtocolError("malformed name list")
    test = job["test"]
    ns: dict[str, Any] = {"__name__": "__ilr_tests__"}
    if test.get("setup"):
        exec(compile(test["setup"], "setup.py", "exec"), ns)  # noqa: S102 - trusted dataset prompt
    entry = test.get("entry_point")
    if entry and entry not in names:
        return "failed", f"the program does not define {entry}()"
    for name in names[:1000]:
        if name == entry or name not in ns:
            ns[name] = Remote(channel, name)
    try:
        exec(compile(test["code"], "tests.py", "exec"), ns)  # noqa: S102 - trusted dataset tests
    except (Timeout, ProtocolError):
        raise
    except CandidateError as exc:
        return "failed", f"candidate raised {exc}"
    except AssertionError:
        frames = [f for f in traceback.extract_tb(sys.exc_info()[2]) if f.filename == "tests.py"]
        lines = test["code"].splitlines()
        where = lines[frames[-1].lineno - 1].strip() if frames and 0 < (frames[-1].lineno or 0) <= len(lines) else ""
        return "failed", f"assertion failed: {where[:300]}"
    except Exception as exc:  # noqa: BLE001 - any other test error is a failed program
        return "failed", f"tests raised {type(exc).__name__}: {str(exc)[:300]}"
    return "passed", f"tests passed ({channel.calls} calls)"


def main() -> int:
    job = json.loads(sys.stdin.read())
    nonce = job["nonce"]
    _prctl(4, 0)  # PR_SET_DUMPABLE=0: a same-uid program cannot ptrace or read this process
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of the program become our children, so we can kill them
    start = time.monotonic()
    deadline = start + float(job["timeout_s"])
    mode = "run" if job["mode"] == "run" else "serve"
    argv = [*job["argv"], "-c", RUNNER, str(job["drop_uid"]), mode, "1" if job["guard"] else "0", job["program_path"]]
    with open(os.devnull, "rb") as devnull:
        err_r, err_w = os.pipe()
        out_r, out_w = os.pipe() if mode == "run" else (-1, subprocess.PIPE)
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if mode == "serve" or job.get("stdin") else devnull,
            stdout=out_w, stderr=err_w, env=job["env"], cwd=job["cwd"],
            preexec_fn=_limits_preexec(job), close_fds=True,  # noqa: PLW1509 - no threads exist yet
        )
    limit = int(job["output_limit"])
    logs = [LogReader(err_r, limit)]
    os.close(err_w)
    if mode == "run":
        os.close(out_w)
        logs.append(LogReader(out_r, limit))
    for log in logs:
        log.start()
    try:
        if mode == "run":
            status, detail = _run_program(job, proc, deadline)
        else:
            status, detail = _run_tests(job, Channel(proc, deadline))
    except Timeout:
        status, detail = "timeout", f"no result within {job['timeout_s']} s"
    except ProtocolError as exc:
        status, detail = "failed", f"program ended or broke the protocol: {exc}"
    _kill_all(proc)
    for log in logs:
        log.join(timeout=2)
    result = {"status": status, "detail": detail, "returncode": proc.returncode,
              "stderr": logs[0].text(), "stdout": logs[1].text() if len(logs) > 1 else "",
              "truncated": any(log.truncated for log in logs), "duration_s": round(time.monotonic() - start, 4)}
    sys.stdout.write(f"ILR-VERDICT {nonce} {json.dumps(result)}\n")
    sys.stdout.flush()
    return 0


def _run_program(job: dict[str, Any], proc: subprocess.Popen, deadline: float) -> tuple[str, str]:
    if proc.stdin is not None:
        try:
            proc.stdin.write(job.get("stdin", "").encode())
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
    try:
        code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise Timeout() from None
    return ("passed" if code == 0 else "failed"), f"exit status {code}"


if __name__ == "__main__":
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    sys.exit(main())
