"""The program side of the sandbox: the first code that runs in it, before any of the program's.

Started by path, ``python -I -S -B runner.py UID MODE GUARD PATH SECCOMP`` (or called as ``main`` by the
zygote in a program it forked). It drops to the sandbox uid when ``UID >= 0``, installs the seccomp filter
(``seccomp.py``) when ``SECCOMP`` is 1 and the fallback guards when ``GUARD`` is 1, then either runs the
program at ``PATH`` as ``__main__`` (``MODE`` "run") or loads it and serves the judge's requests over
stdin/stdout (``MODE`` "serve"): calls of its functions, and calls and attribute access on objects it
returned; length-prefixed JSON, arguments and results in the shared codec. Standard library only.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # run by path: ``-I`` puts no script directory on sys.path
    sys.path.insert(0, HERE)

import json
import runpy
import traceback
from typing import Any, BinaryIO

import codec
import seccomp

# Audit events the fallback refuses outright: network, native code, new processes and signals.
BLOCKED_EVENTS = (
    "socket.",
    "ctypes.dlopen",
    "os.fork",
    "os.forkpty",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.system",
    "subprocess.Popen",
    "pty.spawn",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
)
# Audit events that change the filesystem -> (position of a path it changes, position of its dir_fd or None)
# pairs. The fallback allows them only inside the program's own directory (and on /dev/null).
WRITE_EVENTS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "os.remove": ((0, 1),),
    "os.rmdir": ((0, 1),),
    "os.mkdir": ((0, 2),),
    "os.rename": ((0, 2), (1, 3)),
    "os.link": ((0, 2), (1, 3)),
    "os.symlink": ((1, 2),),
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.chflags": ((0, None),),
    "os.lchflags": ((0, None),),
    "os.truncate": ((0, None),),
    "os.utime": ((0, 3),),
    "os.setxattr": ((0, None),),
    "os.removexattr": ((0, None),),
    "shutil.rmtree": ((0, 1),),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
ALWAYS_WRITABLE = frozenset({os.devnull})


def _outside(path: Any, dir_fd: Any, own_dir: str) -> bool:
    """True when ``path`` (relative to ``dir_fd`` or the cwd) resolves outside ``own_dir``. A bare file
    descriptor passes: opening it was checked."""
    if isinstance(path, int):
        return False
    base = os.getcwd() if dir_fd is None or dir_fd == -1 else os.readlink(f"/proc/self/fd/{int(dir_fd)}")
    real = os.path.realpath(os.path.join(base, os.fsdecode(path)))
    return real not in ALWAYS_WRITABLE and os.path.commonpath([real, own_dir]) != own_dir


def _changed_paths(event: str, args: tuple[Any, ...]) -> list[tuple[Any, Any]]:
    """(path, dir_fd) of everything ``event`` would create, change or remove."""
    if event == "open":  # (path, mode, flags); os.open passes mode None
        flags = args[2] if isinstance(args[2], int) else 0
        writes = flags & WRITE_FLAGS or (isinstance(args[1], str) and any(c in args[1] for c in "wax+"))
        return [(args[0], None)] if writes else []
    return [(args[p], None if d is None else args[d]) for p, d in WRITE_EVENTS.get(event, ())]


def install_guard(own_dir: str) -> None:
    """The fallback's audit hook: a speed bump against sockets, native code, processes, signals and writes
    outside ``own_dir``, not a boundary (native code can bypass it; see SECURITY.md)."""
    own_dir = os.path.realpath(own_dir)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event.startswith(BLOCKED_EVENTS) and event != "socket.gethostname":
            raise PermissionError("blocked in the ilr sandbox: " + event)
        if any(_outside(path, dir_fd, own_dir) for path, dir_fd in _changed_paths(event, args)):
            raise PermissionError(f"blocked in the ilr sandbox: {event} outside the program's directory")

    sys.addaudithook(hook)


def drop_to(uid: int) -> None:
    """No supplementary groups, then gid and uid ``uid``: with a fresh uid this clears every capability."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise SystemExit(0)  # the judge hung up
        buf += chunk
    return buf


def _answer(msg: dict[str, Any], namespace: dict[str, Any], handles: dict[int, Any], path: str) -> Any:
    """One request of the judge: load the program, call one of its functions or objects, or get or set an
    attribute of an object it returned (tests build the program's trees with its own classes)."""

    def arg(x: Any) -> Any:
        return codec.decode(x, lambda rest: handles[rest[0]])

    op = msg["op"]
    if op == "load":
        with open(path) as f:
            source = f.read()
        exec(compile(source, "solution.py", "exec"), namespace)  # noqa: S102
        return [k for k, v in list(namespace.items()) if callable(v) and not k.startswith("__")]
    target = handles[msg["handle"]] if "handle" in msg else namespace.get(msg.get("name"))
    if op == "getattr":
        return getattr(target, str(msg["attr"]))
    if op == "setattr":
        setattr(target, str(msg["attr"]), arg(msg["value"]))
        return None
    if not callable(target):
        raise NameError(msg.get("name"))  # noqa: TRY004 - what a test calling a missing function sees
    return target(*[arg(a) for a in msg["args"]], **{k: arg(v) for k, v in msg["kwargs"].items()})


def serve(path: str) -> None:
    """Answer the judge's requests (see ``_answer``) until it closes the pipe."""
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the program's own stdin/stdout are not the protocol's
    os.close(null)
    os.dup2(2, 1)
    handles: dict[int, Any] = {}

    def opaque(x: Any) -> list[Any]:
        handles[id(x)] = x
        return ["h", id(x), type(x).__name__]

    namespace: dict[str, Any] = {"__name__": "__ilr_solution__"}
    while True:
        msg = json.loads(_read_exactly(requests, codec.HEADER.unpack(_read_exactly(requests, 4))[0]))
        try:
            value = _answer(msg, namespace, handles, path)
            if msg["op"] == "load":
                reply: dict[str, Any] = {"ok": True, "names": value}
            else:
                reply = {"ok": True, "value": codec.encode(value, opaque)}
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            reply = {
                "ok": False,
                "error": (type(exc).__name__ + ": " + str(exc))[:500],
                "trace": traceback.format_exc()[-2000:],
            }
        replies.write(codec.frame(reply))


def main(uid: int, mode: str, guard: bool, path: str, syscall_filter: bool = False) -> None:
    if uid >= 0:
        drop_to(uid)
    if syscall_filter:
        seccomp.install()
    if guard:
        install_guard(os.path.dirname(path))
    if HERE in sys.path:  # the program imports only what it would without us
        sys.path.remove(HERE)
    if mode == "run":
        sys.argv = [path]
        runpy.run_path(path, run_name="__main__")
        raise SystemExit(0)
    serve(path)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5] == "1")
