"""Whole-program limits and the kernel surface a program gets.

- Memory is bounded for the program and all its children together (a cgroup per program, where this
  machine has memory and pids controllers and the grader is root); tasks (processes and threads) too.
- The seccomp filter refuses the keyring, nested namespaces, ptrace, memfd and the rest (seccomp.py), so no
  kernel key outlives a program, while threads, fork and exec still work.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from ilr_env.grading import bwrap_available, run_program, sandbox
from ilr_env.grading.standalone import seccomp

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not usable on this machine")
needs_cgroups = pytest.mark.skipif(
    sandbox.cgroup_problem() is not None, reason=f"no per-program cgroups here: {sandbox.cgroup_problem()}"
)
needs_filter = pytest.mark.skipif(not seccomp.supported(), reason="no seccomp filter for this architecture")

CHILDREN = textwrap.dedent("""
    import os, time
    r, w = os.pipe()
    pids = []
    for i in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                block = bytearray(b"\\x01") * (120 << 20)  # touched: resident, not just reserved
                os.write(w, bytes([i]))
                time.sleep(4)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(w)
    time.sleep(2.5)
    os.set_blocking(r, False)
    try:
        wrote = set(os.read(r, 64))
    except BlockingIOError:
        wrote = set()
    # holding now: filled its block and still alive (the OOM killer ends a child that went over the limit)
    alive = {i for i, pid in enumerate(pids) if os.waitpid(pid, os.WNOHANG) == (0, 0)}
    print("children holding 120 MiB:", len(wrote & alive))
""")


def _held(memory_mb: int) -> int:
    r = run_program(CHILDREN, memory_mb=memory_mb, timeout_s=20)
    lines = [line for line in r.stdout.splitlines() if line.startswith("children holding")]
    return int(lines[-1].rsplit(" ", 1)[1]) if lines else 0


@needs_bwrap
@needs_cgroups
def test_memory_is_bounded_over_all_the_programs_processes() -> None:
    """Four children of 120 MiB each fit in a 1 GiB budget; with 200 MiB for the whole program, at most
    one holds its block at a time (each alone is under the per-process 200 MiB address-space limit)."""
    assert _held(1024) == 4
    assert _held(200) <= 1


@needs_bwrap
def test_tasks_are_bounded_per_program() -> None:
    code = textwrap.dedent("""
        import threading, time
        n = 0
        try:
            for _ in range(500):
                threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
                n += 1
        except RuntimeError:
            pass
        print("threads:", n)
    """)
    r = run_program(code, timeout_s=20)
    n = int(r.stdout.split("threads:")[1].split()[0])
    assert 8 <= n < sandbox.SANDBOX_PROCESSES, r.stdout


KERNEL_CALLS = textwrap.dedent("""
    import ctypes, os, subprocess, threading
    libc = ctypes.CDLL(None, use_errno=True)
    NR = {NR}
    def attempt(name, *args):
        ctypes.set_errno(0)
        rc = libc.syscall(NR[name], *args)
        print(name, rc, ctypes.get_errno())
    print("uid", os.getuid())
    attempt("add_key", b"user", b"ilr-key", b"secret", 6, -3)  # KEY_SPEC_SESSION_KEYRING
    attempt("keyctl", 1, -3)  # KEYCTL_JOIN_SESSION_KEYRING
    attempt("request_key", b"user", b"ilr-key", None, 0)
    attempt("unshare", 0x10000000)  # CLONE_NEWUSER
    attempt("unshare", 0x00020000)  # CLONE_NEWNS
    attempt("setns", 0, 0)
    attempt("ptrace", 16, 1, 0, 0)  # PTRACE_ATTACH to pid 1
    attempt("pidfd_open", 1, 0)
    attempt("bpf", 0, 0, 0)
    attempt("perf_event_open", 0, 0, -1, -1, 0)
    attempt("userfaultfd", 0)
    attempt("mount", b"none", b"/tmp", b"tmpfs", 0, None)
    attempt("memfd_create", b"m", 0)
    attempt("io_uring_setup", 1, None)
    attempt("clone", 0x10000000 | 17, 0, 0, 0, 0)  # CLONE_NEWUSER | SIGCHLD
    t = threading.Thread(target=lambda: print("thread ok")); t.start(); t.join()
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    print("fork ok", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(subprocess.run(["/bin/echo", "exec ok"], capture_output=True, text=True).stdout.strip())
""")


@needs_bwrap
@needs_filter
def test_the_kernel_surface_is_refused_and_no_key_survives() -> None:
    import platform

    numbers = seccomp._SYSCALLS[platform.machine()]
    r = run_program(KERNEL_CALLS.replace("{NR}", repr(numbers)), timeout_s=20)
    assert r.ok, r.stderr
    lines = r.stdout.splitlines()
    uid = int(lines[0].split()[1])
    results = [line.split() for line in lines[1:] if line.split()[0] in numbers]
    assert len(results) == 15, r.stdout
    refused = [name for name, rc, err in results if rc == "-1" and err == "1"]  # EPERM
    assert refused == [name for name, _, _ in results], r.stdout
    assert "thread ok" in lines and "fork ok 3" in lines and "exec ok" in lines, r.stdout
    with open("/proc/key-users") as f:
        owners = {int(line.split(":")[0]) for line in f if line.strip()}
    if os.geteuid() == 0:  # the program ran as its own fresh uid: nothing of it in the kernel's key table
        assert uid != 0 and uid not in owners


@needs_filter
def test_the_fallback_refuses_memfd_too() -> None:
    """Without bubblewrap (the unsafe opt-in) the filter still applies: no anonymous memory outside the
    address-space limit."""
    code = "import os\ntry:\n    os.memfd_create('m')\n    print('made')\n"
    code += "except OSError as e:\n    print(e.errno)\n"
    r = run_program(code, isolation="unsafe_subprocess", timeout_s=10)
    assert r.stdout.strip() == "1", (r.stdout, r.stderr)


@needs_cgroups
def test_a_live_judges_group_survives_a_sweep_whatever_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Judges run in pid namespaces of their own, so the pid in a group's name says nothing about whether its
    judge lives: another judge's sweep removed an empty group between two programs, and the next program ran
    without its memory limit. The judge's lock on the directory decides."""
    import subprocess
    import sys

    from ilr_env.grading.standalone import cgroup

    monkeypatch.setattr(cgroup, "_SWEEP_MIN_AGE_S", 0.0)
    live = cgroup.make(64 << 20, 8)
    assert live is not None
    held = [d.replace(os.path.basename(d), "4000000000-1-1") for d in live.dirs]  # a pid no process has
    for d in held:
        os.mkdir(d)
    holder = subprocess.Popen(  # another judge: it locks its groups and lives on
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time\n"
                "fds = [os.open(d, os.O_RDONLY) for d in sys.argv[1:]]\n"
                "[fcntl.flock(fd, fcntl.LOCK_EX) for fd in fds]\n"
                "print('locked', flush=True)\ntime.sleep(60)\n"
            ),
            *held,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        cgroup.sweep()
        assert all(os.path.isdir(d) for d in held)
    finally:
        holder.kill()
        holder.wait()
    cgroup.sweep()  # its judge is gone now: the group goes
    assert not any(os.path.exists(d) for d in held)
    live.remove()


@needs_cgroups
def test_groups_left_by_dead_judges_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A judge killed mid-program cannot remove its program's group; the next judge's first group removes
    every empty group whose judge is gone, and no group of a live process."""
    from ilr_env.grading.standalone import cgroup

    monkeypatch.setattr(cgroup, "_SWEEP_MIN_AGE_S", 0.0)

    live = cgroup.make(64 << 20, 8)
    assert live is not None
    stale_pid = 4_000_000_000  # above any pid_max: no such process
    stale = [d.replace(os.path.basename(d), f"{stale_pid}-0-0") for d in live.dirs]
    for d in stale:
        os.mkdir(d)
    cgroup.sweep()
    assert not any(os.path.exists(d) for d in stale)
    assert all(os.path.isdir(d) for d in live.dirs)
    live.remove()
    assert not any(os.path.exists(d) for d in live.dirs)


@pytest.mark.parametrize("kind", ["v2", "v1"])
def test_each_cgroup_layout_writes_the_limits_it_promises(tmp_path: Path, kind: str) -> None:
    """The v2 and v1 paths against a directory laid out like each interface (this machine has one of them
    at most; the kernel's side is covered by the memory and task tests above)."""
    from ilr_env.grading.standalone import cgroup

    root = tmp_path
    if kind == "v2":
        (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (root / "cgroup.subtree_control").write_text("")
    else:
        for controller in ("memory", "pids"):
            (root / controller).mkdir()
            (root / controller / "cgroup.procs").write_text("")
        (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert cgroup.layout(str(root)) == kind
    group = cgroup.make(256 << 20, 32, str(root))
    assert group is not None
    files = {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}
    if kind == "v2":
        (d,) = group.dirs
        name = Path(d).name
        assert files[f"ilr-sandbox/{name}/memory.max"] == str(256 << 20)
        assert files[f"ilr-sandbox/{name}/pids.max"] == "32"
        assert files["cgroup.subtree_control"] == "+memory +pids"
        assert files["ilr-sandbox/cgroup.subtree_control"] == "+memory +pids"
        assert group.procs == [f"{d}/cgroup.procs"]
    else:
        name = Path(group.dirs[0]).name
        assert files[f"memory/ilr-sandbox/{name}/memory.limit_in_bytes"] == str(256 << 20)
        assert files[f"pids/ilr-sandbox/{name}/pids.max"] == "32"
        assert [Path(p).parent.parent.parent.name for p in group.procs] == ["memory", "pids"]
    assert cgroup.layout(str(root / "nowhere")) is None
