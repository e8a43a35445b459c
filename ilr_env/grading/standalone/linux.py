"""The Linux constants and libc calls the judge and the zygote use, by name instead of bare numbers.

Values from <linux/prctl.h>, <linux/sched.h> and <linux/mount.h> (stable kernel ABI, the same on every
architecture we run on). Standard library only: loaded by path by the judge and inside the sandbox.
"""

from __future__ import annotations

import ctypes
import functools

# prctl(2) options
PR_SET_PDEATHSIG = 1  # signal this process gets when its parent dies
PR_SET_DUMPABLE = 4  # 0: no core dumps, no ptrace and a root-owned /proc/<pid> for same-uid processes
PR_SET_CHILD_SUBREAPER = 36  # orphaned descendants are re-parented to this process instead of PID 1

# unshare(2) flags, by the names the zygote is told on its command line
CLONE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
# every namespace a program forked by the zygote gets fresh (the user namespace is left out on purpose)
PROGRAM_NAMESPACES = tuple(CLONE_FLAGS)

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_REC = 0x4000
MS_PRIVATE = 0x40000


@functools.lru_cache(maxsize=1)
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> int:
    """prctl(option, value); returns -1 with errno set on failure (callers decide whether that matters)."""
    return libc().prctl(option, value, 0, 0, 0)


def clone_flags(names: str) -> int:
    """The unshare(2) mask for a comma-separated list of ``CLONE_NEW*`` names (unknown names raise)."""
    mask = 0
    for name in names.split(","):
        mask |= CLONE_FLAGS[name]
    return mask
