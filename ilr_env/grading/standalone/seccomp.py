"""A seccomp filter for programs under test: the system calls grading never needs fail with EPERM.

Refused: the kernel keyring (keys would outlive the program and its fresh uid), new namespaces of any kind
(``unshare``, ``setns``, ``clone`` with a ``CLONE_NEW*`` flag; ``clone3`` answers ENOSYS so libc falls back
to ``clone``, whose flags a classic filter can read), ``ptrace`` and cross-process memory access, pidfds,
``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``, the mount family, module and kexec loading,
``reboot``, swap, clocks, ``acct``, ``quotactl``, ``chroot``, ``syslog``, file handles, ``memfd_create``
(anonymous memory the address-space limit does not count), ``kcmp`` and ``fanotify``. Everything else is
allowed; a call from another ABI (i386 or x32 on x86_64) kills the process.

The filter is classic BPF assembled here with ``struct`` (no libseccomp needed) and installed with
``prctl(PR_SET_SECCOMP)`` after ``no_new_privs``. Standard library only and self-contained: loaded by path in
the sandbox, and imported by the grader to say what it refuses.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import struct

# System call numbers: x86_64 from <asm/unistd_64.h>, aarch64 from <asm-generic/unistd.h>.
_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "keyctl": 250, "add_key": 248, "request_key": 249, "unshare": 272, "setns": 308, "ptrace": 101,
        "pidfd_send_signal": 424, "pidfd_open": 434, "pidfd_getfd": 438, "bpf": 321, "perf_event_open": 298,
        "userfaultfd": 323, "mount": 165, "umount2": 166, "pivot_root": 155, "move_mount": 429,
        "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168, "process_vm_readv": 310,
        "process_vm_writev": 311, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "acct": 163, "quotactl": 179, "chroot": 161, "syslog": 103, "name_to_handle_at": 303,
        "open_by_handle_at": 304, "iopl": 172, "ioperm": 173, "settimeofday": 164, "clock_settime": 227,
        "clock_adjtime": 305, "adjtimex": 159, "memfd_create": 319, "memfd_secret": 447, "fanotify_init": 300,
        "vhangup": 153, "lookup_dcookie": 212, "kcmp": 312,
        "clone": 56, "clone3": 435,
    },
    "aarch64": {
        "keyctl": 219, "add_key": 217, "request_key": 218, "unshare": 97, "setns": 268, "ptrace": 117,
        "pidfd_send_signal": 424, "pidfd_open": 434, "pidfd_getfd": 438, "bpf": 280, "perf_event_open": 241,
        "userfaultfd": 282, "mount": 40, "umount2": 39, "pivot_root": 41, "move_mount": 429,
        "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225, "process_vm_readv": 270,
        "process_vm_writev": 271, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "acct": 89, "quotactl": 60, "chroot": 51, "syslog": 116, "name_to_handle_at": 264,
        "open_by_handle_at": 265, "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266,
        "adjtimex": 171, "memfd_create": 279, "memfd_secret": 447, "fanotify_init": 262, "vhangup": 58,
        "lookup_dcookie": 18, "kcmp": 272,
        "clone": 220, "clone3": 435,
    },
}  # fmt: skip
_MACHINE = os.uname().machine
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_BIT = 0x40000000

# classic BPF opcodes and seccomp return values (<linux/filter.h>, <linux/seccomp.h>)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
# seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (args[0]'s low word on little endian)
_NR, _ARCH, _ARG0_LOW = 0, 4, 16
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (<linux/sched.h>)
_CLONE_NEW_ANY = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000


def supported() -> bool:
    """Whether this machine's architecture has a filter (x86_64 and aarch64 do)."""
    return _MACHINE in _SYSCALLS


def refused() -> list[str]:
    """The names of the system calls the filter refuses on this architecture (clone only with CLONE_NEW*)."""
    return sorted(name for name in _SYSCALLS.get(_MACHINE, {}) if name != "clone3")


def program(machine: str | None = None) -> bytes:
    """The filter as packed ``struct sock_filter`` instructions."""
    machine = machine or _MACHINE
    calls = _SYSCALLS[machine]
    denied = [nr for name, nr in calls.items() if name not in ("clone", "clone3")]
    # Labels are resolved after layout: classic BPF only jumps forward, by an 8-bit offset.
    code: list[tuple[int, object, object, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 0, "kill", _AUDIT_ARCH[machine]),
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if machine == "x86_64":
        code.append((_JGE_K, "kill", 0, _X32_BIT))
    code += [(_JEQ_K, "eperm", 0, nr) for nr in denied]
    code += [(_JEQ_K, "enosys", 0, calls["clone3"]), (_JEQ_K, "clone", 0, calls["clone"])]
    labels = {"allow": len(code)}
    code.append((_RET_K, 0, 0, _RET_ALLOW))
    labels["clone"] = len(code)
    code += [(_LD_W_ABS, 0, 0, _ARG0_LOW), (_JSET_K, "eperm", 0, _CLONE_NEW_ANY), (_RET_K, 0, 0, _RET_ALLOW)]
    for label, value in (
        ("eperm", _RET_ERRNO | errno.EPERM),
        ("enosys", _RET_ERRNO | errno.ENOSYS),
        ("kill", _RET_KILL_PROCESS),
    ):
        labels[label] = len(code)
        code.append((_RET_K, 0, 0, value))
    out = b""
    for i, (op, jt, jf, k) in enumerate(code):
        offsets = [labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
        assert all(0 <= off < 256 for off in offsets), offsets  # a layout bug, never input
        out += struct.pack("=HBBI", op, offsets[0], offsets[1], k)
    return out


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@functools.lru_cache(maxsize=1)
def _filter() -> bytes:
    return program()


def install() -> None:
    """Set no_new_privs and install the filter on this process (its future children inherit it)."""
    code = _filter()
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()) + ": seccomp filter refused")
