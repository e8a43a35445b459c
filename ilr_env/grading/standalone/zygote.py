"""The zygote: one warm, sandboxed interpreter per judge that forks every program into fresh namespaces.

Started by the judge inside bwrap as ``python -I -S -B zygote.py SOCKET_FD NAMESPACES`` (root in the initial
user namespace with only CAP_SYS_ADMIN, CAP_SETUID and CAP_SETGID; bwrap sets no_new_privs). ``NAMESPACES``
names the ``CLONE_NEW*`` namespaces each program gets fresh, so ``ps`` shows them. It pre-imports the standard
library programs commonly use, then serves ``spawn`` requests from the judge, one at a time:

- C1 = fork(): unshare the namespaces; mount a fresh /tmp tmpfs and a fresh /sandbox tmpfs; read the program
  source from its pipe into /sandbox/solution.py; make /sandbox read-only; fork C2; report C2's pid (the
  zygote then answers ``spawned``); wait for C2 and exit with its status (the zygote answers ``exit``).
- C2 = PID 1 of the new namespace: mount a fresh /proc, fork C3, reap until C3 exits, exit with its status;
  the kernel then SIGKILLs everything else left in the namespace.
- C3 = the program: new session, its stdio = the judge's pipes, every other fd closed, PDEATHSIG,
  setgroups/setgid/setuid to the fresh uid (clears every capability), rlimits, cwd /tmp, then the same
  ``runner.main`` as a directly started sandbox.

``kill`` SIGKILLs C2 (so the whole namespace). The source never passes through the zygote, so nothing of one
program is in the memory later programs are forked from. Standard library only.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # run by path: ``-I`` puts no script directory on sys.path
    sys.path.insert(0, HERE)

import ctypes
import json
import random
import resource
import select
import signal
import socket
import traceback
from typing import Any, NoReturn

import linux
import runner

# Warm-up only: what programs commonly import, so each forked program finds it already loaded.
WARM_MODULES = (
    "math",
    "re",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "string",
    "typing",
    "fractions",
    "copy",
    "hashlib",
)
SOURCE_PATH = "/sandbox/solution.py"
MAX_FDS = 1 << 16


def _check(rc: int, what: str) -> None:
    if rc != 0:
        os.write(2, f"ilr zygote: {what} failed: errno {ctypes.get_errno()}\n".encode())
        os._exit(121)


def _mount(src: bytes | None, dst: bytes, fstype: bytes | None, flags: int, data: bytes | None) -> None:
    _check(linux.libc().mount(src, dst, fstype, flags, data), "mount " + dst.decode())


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _finish(code: int) -> NoReturn:
    """Exit C3 the way an interpreter would (threads joined, atexit run, output flushed), then for real."""
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()  # type: ignore[attr-defined]
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _program(spec: dict[str, Any], fds: list[int]) -> None:
    """C3: become the program."""
    os.setsid()
    for i, fd in enumerate(fds[:3]):
        os.dup2(fd, i)
    os.closerange(3, MAX_FDS)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    os.chdir("/tmp")
    if spec["uid"] >= 0:
        runner.drop_to(spec["uid"])
    for name, value in spec["rlimits"].items():
        resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), (value, value))
    random.seed()  # not the zygote's state, shared by every program it forks
    runner.main(-1, spec["mode"], False, SOURCE_PATH, bool(spec.get("seccomp")))


def _namespace_init(spec: dict[str, Any], fds: list[int]) -> NoReturn:
    """C2: PID 1 of the program's namespace."""
    _mount(b"proc", b"/proc", b"proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC, None)
    pid = os.fork()
    if pid == 0:
        try:
            _program(spec, fds)
        except SystemExit as e:
            if e.code is not None and not isinstance(e.code, int):
                try:
                    print(e.code, file=sys.stderr)
                finally:
                    _finish(1)
            _finish(e.code or 0)
        except BaseException:  # noqa: BLE001 - the program's own exception: shown, then exit 1
            try:
                traceback.print_exc()
            finally:
                _finish(1)
        _finish(0)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)  # the program cannot read this root process's /proc entries
    null = os.open("/dev/null", os.O_RDWR)
    for i in range(3):
        os.dup2(null, i)
    os.closerange(3, MAX_FDS)
    while True:
        try:
            got, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if got == pid:
            os._exit(_exit_code(status))


def _fresh_namespaces(spec: dict[str, Any], fds: list[int], ready_w: int, namespaces: int) -> NoReturn:
    """C1: join the program's cgroups (``fds[4:]``: their ``cgroup.procs``, from the judge), then fresh
    namespaces and mounts, the source written in, then C2; reports C2's pid on ``ready_w``."""
    for fd in fds[4:]:
        try:
            os.write(fd, b"0")
        except OSError as exc:  # told to the judge on ready_w, which no program code can reach
            os.write(ready_w, f"cgroup: joining the program's cgroup failed: {exc}".encode())
            os._exit(121)
        os.close(fd)
    _check(linux.libc().unshare(namespaces), "unshare")
    _mount(None, b"/", None, linux.MS_REC | linux.MS_PRIVATE, None)
    nodev = linux.MS_NOSUID | linux.MS_NODEV
    _mount(b"tmpfs", b"/tmp", b"tmpfs", nodev, f"size={spec['tmpfs_bytes']},mode=1777".encode())
    _mount(b"tmpfs", b"/sandbox", b"tmpfs", nodev, b"size=16m,mode=0755")
    src = fds[3]
    with open(SOURCE_PATH, "wb") as f:
        while chunk := os.read(src, 1 << 16):
            f.write(chunk)
    os.chmod(SOURCE_PATH, 0o644)
    os.close(src)
    _mount(None, b"/sandbox", None, linux.MS_REMOUNT | linux.MS_RDONLY | nodev, None)
    pid = os.fork()
    if pid == 0:
        os.close(ready_w)
        _namespace_init(spec, fds[:3])
    for fd in fds[:3]:
        os.close(fd)
    os.write(ready_w, str(pid).encode())
    os.close(ready_w)
    _, status = os.waitpid(pid, 0)
    os._exit(_exit_code(status))


def _read_all(fd: int) -> bytes:
    got = b""
    while chunk := os.read(fd, 32):
        got += chunk
    return got


def _spawn(sock: socket.socket, spec: dict[str, Any], fds: list[int], namespaces: int) -> tuple[int, int]:
    """Fork C1 for one program; returns (C1's pid, C2's pid) once C2 exists (C2's pid is -1 when C1 could
    not join the program's cgroup)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            sock.close()
            _fresh_namespaces(spec, fds, ready_w, namespaces)
        finally:
            os._exit(122)
    for fd in fds:
        os.close(fd)
    os.close(ready_w)
    got = _read_all(ready_r)
    os.close(ready_r)
    return pid, int(got) if got.isdigit() else (-1 if got.startswith(b"cgroup:") else 0)


def _supervise(sock: socket.socket, pid: int, c2: int) -> bool:
    """Wait for the program's end (answering ``exit``) or the judge's ``kill``; False when the judge left."""
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            ready, _, _ = select.select([sock, pidfd], [], [])
            if pidfd in ready:
                _, status = os.waitpid(pid, 0)
                sock.send(json.dumps({"op": "exit", "status": _exit_code(status)}).encode())
                return True
            req = sock.recv(65536)
            if not req or json.loads(req).get("op") == "kill":
                for target in (c2, pid):
                    if target > 0:
                        try:
                            os.kill(target, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                if not req:
                    return False
    finally:
        os.close(pidfd)


def serve(sock: socket.socket, namespaces: int) -> None:
    sock.send(json.dumps({"op": "ready"}).encode())
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 16)
        if not msg:
            return
        spec = json.loads(msg)
        if spec.get("op") != "spawn" or len(fds) < 4:
            for fd in fds:
                os.close(fd)
            continue
        pid, c2 = _spawn(sock, spec, fds, namespaces)
        del spec
        if c2 < 0:  # C1 could not set the program up (its cgroup): the grader's fault, never the program's
            os.waitpid(pid, 0)
            sock.send(json.dumps({"op": "fault", "why": "the program's cgroup could not be joined"}).encode())
            continue
        sock.send(json.dumps({"op": "spawned"}).encode())  # the judge may now count on this zygote
        if not _supervise(sock, pid, c2):
            return


if __name__ == "__main__":
    for _name in WARM_MODULES:
        __import__(_name)
    _sock = socket.socket(fileno=int(sys.argv[1]))
    _namespaces = linux.clone_flags(sys.argv[2])
    del sys.argv[1:]
    serve(_sock, _namespaces)
