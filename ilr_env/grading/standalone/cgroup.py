"""Whole-program limits: one cgroup per program bounds the memory and the number of tasks (processes and
threads) of the program and everything it starts, anonymous memory such as memfd and tmpfs pages included.

Made by the judge, as root, under ``/sys/fs/cgroup``: with cgroup v2 one group with ``memory.max``,
``memory.swap.max`` and ``pids.max``; with v1 (or a hybrid) one group in each of the ``memory`` and ``pids``
hierarchies. The program joins before any of its code runs: a directly started one in its pre-exec hook,
a zygote-forked one by writing ``0`` to the group's ``cgroup.procs`` through a descriptor the judge passes
it. Where no group can be made (not root, no such controllers), ``make`` returns None and only the
per-process rlimits apply. Standard library only: loaded by path by the judge, imported by the grader.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import time

ROOT = "/sys/fs/cgroup"
PARENT = "ilr-sandbox"
_COUNTER = itertools.count()
# A group younger than this is never swept: its judge may not have locked it yet.
_SWEEP_MIN_AGE_S = 10.0


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def layout(root: str = ROOT) -> str | None:
    """ "v2", "v1" or None: which cgroup interface can limit memory and tasks here."""
    if {"memory", "pids"} <= set(_read(f"{root}/cgroup.controllers").split()):
        return "v2"
    if os.path.exists(f"{root}/memory/memory.limit_in_bytes") and os.path.exists(f"{root}/pids/cgroup.procs"):
        return "v1"
    return None


def problem(root: str = ROOT) -> str | None:
    """Why no per-program cgroup can be made here (None when one can): tries to make and remove one."""
    if os.geteuid() != 0:
        return "not root: cgroups need root here"
    if layout(root) is None:
        return f"no memory and pids cgroup controllers under {root}"
    try:
        group = make(1 << 30, 64, root)
    except OSError as exc:
        return f"cannot make a cgroup under {root}: {exc}"
    if group is None:
        return f"cannot make a cgroup under {root}"
    group.remove()
    return None


def _lock(path: str) -> int:
    """An exclusive lock on a group's directory, held by its judge for as long as the judge lives: the
    kernel drops it when the judge dies, which is how ``sweep`` tells an abandoned group from one in use
    (a pid in the group's name cannot tell: judges run in pid namespaces of their own)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


class ProgramCgroup:
    """The group(s) of one program: ``procs`` are the ``cgroup.procs`` files it joins."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs
        self.procs = [f"{d}/cgroup.procs" for d in dirs]
        self._locks: list[int] = []
        try:
            self._locks = [_lock(d) for d in dirs]
        except OSError:
            self.remove()
            raise

    def empty(self) -> bool:
        """No process is left in the group (so the next program of this judge can have it)."""
        return all(not _read(path).strip() for path in self.procs)

    def join(self) -> None:
        """Move the calling process (and so everything it starts later) into the group(s)."""
        for path in self.procs:
            _write(path, "0")

    def open_procs(self) -> list[int]:
        """Descriptors of the ``cgroup.procs`` files, for a process that cannot see /sys/fs/cgroup."""
        return [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in self.procs]

    def remove(self) -> None:
        """Remove the group(s) once the program's processes are gone (they were killed; this waits a little
        for the kernel to finish reaping them)."""
        for d in self.dirs:
            for _ in range(200):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)
        for fd in self._locks:
            os.close(fd)
        self._locks = []


def _v2(memory: int, tasks: int, root: str, name: str) -> list[str]:
    parent = f"{root}/{PARENT}"
    os.makedirs(parent, exist_ok=True)
    for d in (root, parent):
        if not {"memory", "pids"} <= set(_read(f"{d}/cgroup.subtree_control").split()):
            _write(f"{d}/cgroup.subtree_control", "+memory +pids")
    group = f"{parent}/{name}"
    os.mkdir(group)
    _write(f"{group}/memory.max", str(memory))
    if os.path.exists(f"{group}/memory.swap.max"):
        _write(f"{group}/memory.swap.max", "0")
    _write(f"{group}/pids.max", str(tasks))
    return [group]


def _v1(memory: int, tasks: int, root: str, name: str) -> list[str]:
    groups = []
    try:
        for controller in ("memory", "pids"):
            parent = f"{root}/{controller}/{PARENT}"
            os.makedirs(parent, exist_ok=True)
            os.mkdir(f"{parent}/{name}")
            groups.append(f"{parent}/{name}")
        _write(f"{groups[0]}/memory.limit_in_bytes", str(memory))
        if os.path.exists(f"{groups[0]}/memory.memsw.limit_in_bytes"):
            _write(f"{groups[0]}/memory.memsw.limit_in_bytes", str(memory))
        _write(f"{groups[1]}/pids.max", str(tasks))
    except OSError:
        ProgramCgroup(groups).remove()
        raise
    return groups


def sweep(root: str = ROOT) -> None:
    """Remove the groups of judges that are gone (a judge killed mid-program cannot remove its own). A live
    judge holds its groups' locks, and a group with processes in it is refused by rmdir."""
    for parent in (f"{root}/{PARENT}", f"{root}/memory/{PARENT}", f"{root}/pids/{PARENT}"):
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            _remove_if_abandoned(f"{parent}/{name}")


def _remove_if_abandoned(path: str) -> None:
    try:
        if time.time() - os.stat(path).st_ctime < _SWEEP_MIN_AGE_S:
            return
        fd = _lock(path)
    except OSError:  # gone already, or locked by its live judge
        return
    try:
        os.rmdir(path)
    except OSError:
        pass
    finally:
        os.close(fd)


def make(memory: int, tasks: int, root: str = ROOT) -> ProgramCgroup | None:
    """A fresh group limited to ``memory`` bytes and ``tasks`` processes and threads, or None where this
    machine has no usable cgroup controllers. Raises OSError when it has them but the group cannot be made.
    A judge's first call also sweeps away the groups that dead judges left."""
    kind = layout(root)
    if kind is None:
        return None
    serial = next(_COUNTER)
    if serial == 0:
        sweep(root)
    name = f"{os.getpid()}-{serial}-{time.monotonic_ns()}"
    return ProgramCgroup((_v2 if kind == "v2" else _v1)(memory, tasks, root, name))
