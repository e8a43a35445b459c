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
RUNNER = r"""
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
"""


# The zygote: started once per judge inside bwrap (root in the initial user namespace, capabilities
# CAP_SYS_ADMIN, CAP_SETUID and CAP_SETGID only, no_new_privs set by bwrap). It pre-imports the standard
# library that programs commonly use, then serves ``spawn`` requests from the judge, one at a time:
#   C1 = fork(): unshare fresh mount, PID, network, IPC, UTS and cgroup namespaces; mount a fresh /tmp tmpfs and
#                a fresh /sandbox tmpfs; read the program source from its pipe into /sandbox/solution.py;
#                make /sandbox read-only; fork C2; report C2's pid; wait for C2 and exit with its status.
#   C2 = PID 1 of the new namespace: mount a fresh /proc, fork C3, reap until C3 exits, exit with its status;
#                the kernel then SIGKILLs everything else left in the namespace.
#   C3 = the program: new session, its stdio = the judge's pipes, every other fd closed, PDEATHSIG,
#                setgroups/setgid/setuid to the fresh uid (clears every capability), rlimits, cwd /tmp,
#                then the same RUNNER as a directly started sandbox.
# ``kill`` SIGKILLs C2 (so the whole namespace). The source never passes through the zygote, so nothing of
# one program is in the memory later programs are forked from.
ZYGOTE = r"""
import os, sys, json, struct, traceback, runpy, socket, select, signal, resource, ctypes
import math, re, collections, itertools, functools, heapq, bisect, string, typing, fractions, copy, hashlib, random
_sock = socket.socket(fileno=int(sys.argv[1])); del sys.argv[1:]
_libc = ctypes.CDLL(None, use_errno=True)
_NEWNS, _NEWCGROUP, _NEWUTS, _NEWIPC, _NEWPID, _NEWNET = 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x20000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_REC, _MS_PRIVATE = 1, 2, 4, 8, 32, 0x4000, 0x40000
_RUNNER = compile(__RUNNER__, "<runner>", "exec")
def _ck(rc, what):
    if rc != 0:
        os.write(2, ("ilr zygote: %s failed: errno %d\n" % (what, ctypes.get_errno())).encode())
        os._exit(121)
def _mount(src, dst, fstype, flags, data):
    _ck(_libc.mount(src, dst, fstype, flags, data), "mount " + dst.decode())
def _code(st):
    return os.waitstatus_to_exitcode(st) % 256 if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
def _c3(spec, fds):
    os.setsid()
    for i, fd in enumerate(fds[:3]):
        os.dup2(fd, i)
    os.closerange(3, 1 << 16)
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    os.chdir("/tmp")
    uid = spec["uid"]
    if uid >= 0:
        os.setgroups([]); os.setgid(uid); os.setuid(uid)
    for name, value in spec["rlimits"].items():
        resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), (value, value))
    random.seed()  # not the zygote's state, shared by every program it forks
    sys.argv = ["-c", "-1", spec["mode"], "0", "/sandbox/solution.py"]
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    exec(_RUNNER, g)
def _finish(code):
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit
        atexit._run_exitfuncs()
        sys.stdout.flush(); sys.stderr.flush()
    finally:
        os._exit(code)
def _c2(spec, fds):
    _mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
    pid = os.fork()
    if pid == 0:
        try:
            _c3(spec, fds)
        except SystemExit as e:
            if e.code is not None and not isinstance(e.code, int):
                try:
                    print(e.code, file=sys.stderr)
                finally:
                    _finish(1)
            _finish(e.code or 0)
        except BaseException:
            try:
                traceback.print_exc()
            finally:
                _finish(1)
        _finish(0)
    _libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE=0: the program cannot read this root process's /proc entries
    null = os.open("/dev/null", os.O_RDWR)
    for i in range(3):
        os.dup2(null, i)
    os.closerange(3, 1 << 16)
    while True:
        try:
            got, st = os.wait()
        except ChildProcessError:
            os._exit(1)
        if got == pid:
            os._exit(_code(st))
def _c1(spec, fds, ready_w):
    _sock.close()
    _ck(_libc.unshare(_NEWNS | _NEWPID | _NEWNET | _NEWIPC | _NEWUTS | _NEWCGROUP), "unshare")
    _mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None)
    size = ("size=%d,mode=1777" % spec["tmpfs_bytes"]).encode()
    _mount(b"tmpfs", b"/tmp", b"tmpfs", _MS_NOSUID | _MS_NODEV, size)
    _mount(b"tmpfs", b"/sandbox", b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=16m,mode=0755")
    src = fds[3]
    with open("/sandbox/solution.py", "wb") as f:
        while True:
            chunk = os.read(src, 1 << 16)
            if not chunk:
                break
            f.write(chunk)
    os.chmod("/sandbox/solution.py", 0o644)
    os.close(src)
    _mount(None, b"/sandbox", None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None)
    pid = os.fork()
    if pid == 0:
        os.close(ready_w)
        _c2(spec, fds[:3])
    for fd in fds[:3]:
        os.close(fd)
    os.write(ready_w, str(pid).encode()); os.close(ready_w)
    _, st = os.waitpid(pid, 0)
    os._exit(_code(st))
def _send(msg):
    _sock.send(json.dumps(msg).encode())
def _serve():
    _send({"op": "ready"})
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(_sock, 65536, 8)
        if not msg:
            return
        spec = json.loads(msg)
        if spec.get("op") != "spawn" or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                _c1(spec, fds, ready_w)
            finally:
                os._exit(122)
        del spec
        for fd in fds:
            os.close(fd)
        os.close(ready_w)
        got = b""
        while True:
            chunk = os.read(ready_r, 32)
            if not chunk:
                break
            got += chunk
        os.close(ready_r)
        c2 = int(got) if got.isdigit() else 0
        pidfd = os.pidfd_open(pid)
        while True:
            ready, _, _ = select.select([_sock, pidfd], [], [])
            if pidfd in ready:
                _, st = os.waitpid(pid, 0)
                os.close(pidfd)
                _send({"op": "exit", "status": _code(st)})
                break
            req = _sock.recv(65536)
            if not req or json.loads(req).get("op") == "kill":
                for target in (c2, pid):
                    if target > 0:
                        try:
                            os.kill(target, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                if not req:
                    return
_serve()
""".replace("__RUNNER__", repr(RUNNER))


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

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(msg).encode()
        try:
            os.write(self.wfd, struct.pack(">I", len(data)))
            view = memoryview(data)
            while view:
                view = view[os.write(self.wfd, view) :]
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
        reply = self.request(
            {
                "op": "call",
                "name": name,
                "args": [encode(a) for a in args],
                "kwargs": {str(k): encode(v) for k, v in kwargs.items()},
            }
        )
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
    """Direct children of ``pid`` (all its threads), from /proc/<pid>/task/*/children: no scan of all of /proc."""
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


def _limits_preexec(job: dict[str, Any]) -> Any:
    limits = job["rlimits"]

    def preexec() -> None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the judge
        for name, value in limits.items():
            res = getattr(resource, f"RLIMIT_{name.upper()}")
            resource.setrlimit(res, (value, value))

    return preexec


class PopenProgram:
    """A program started directly (rlimits fallback, or bwrap per program when no zygote can be used)."""

    def __init__(self, job: dict[str, Any], mode: str, limit: int) -> None:
        argv = [
            *job["argv"],
            "-c",
            RUNNER,
            str(job["drop_uid"]),
            mode,
            "1" if job["guard"] else "0",
            job["program_path"],
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
                preexec_fn=_limits_preexec(job),  # noqa: PLW1509
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


class ZygoteError(Exception):
    """The zygote died or answered nonsense; it is restarted for the next program."""


class Zygote:
    """One sandboxed, pre-warmed interpreter (bwrap namespaces, see ZYGOTE) that forks one child per program.

    We talk to it over a unix socket: ``spawn`` (spec + the program's stdio and source pipes as SCM_RIGHTS
    fds), ``kill``; it answers ``ready`` once and ``exit <status>`` per program.
    """

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import socket

        self.key = (tuple(argv), tuple(sorted(env.items())))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        with open(os.devnull, "rb") as devnull:
            self.proc = subprocess.Popen(
                [*argv, "-c", ZYGOTE, str(theirs.fileno())],
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
        data = self.sock.recv(65536)
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
        import socket

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
    """A program forked by the zygote into fresh namespaces (see ZYGOTE); killing it kills its namespace."""

    def __init__(self, job: dict[str, Any], mode: str, limit: int) -> None:
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
            "tmpfs_bytes": job.get("tmpfs_bytes", 64 * 1024 * 1024),
        }
        try:
            self.zygote.send(spec, [in_r, out_w, err_w, src_r])
        finally:
            for fd in (in_r, out_w, err_w, src_r):
                os.close(fd)
        self.stdin_fd, self.stdout_fd = in_w, out_r
        self.logs = [LogReader(err_r, limit)]
        if mode == "run":
            self.logs.append(LogReader(out_r, limit))
            self.stdout_fd = -1
        self._write_source(src_w, job["program"].encode("utf-8", "surrogatepass"))

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
    ns: dict[str, Any] = {"__name__": "__ilr_tests__"}
    if test.get("setup"):
        exec(compile(test["setup"], "setup.py", "exec"), ns)  # noqa: S102
    entry = test.get("entry_point")
    if entry and entry not in names:
        return "failed", f"the program does not define {entry}()"
    for name in names[:1000]:
        if name == entry or name not in ns:
            ns[name] = Remote(channel, name)
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


def _handle(job: dict[str, Any]) -> dict[str, Any]:
    start = time.monotonic()
    deadline = start + float(job["timeout_s"])
    mode = "run" if job["mode"] == "run" else "serve"
    limit = int(job["output_limit"])
    proc: Any = None
    if job.get("zygote_argv"):
        try:
            proc = ZygoteProgram(job, mode, limit)
        except (ZygoteError, Timeout, OSError) as exc:
            _drop_zygote()
            sys.stderr.write(f"ilr judge: zygote unusable ({exc}); starting this program directly\n")
    if proc is None:
        proc = PopenProgram(job, mode, limit)
    for log in proc.logs:
        log.start()
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
    _prctl(4, 0)  # PR_SET_DUMPABLE=0: a same-uid program cannot ptrace or read this process
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of the program become our children, so we can kill them
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
