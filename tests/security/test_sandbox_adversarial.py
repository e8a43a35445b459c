"""Hostile programs against the code sandbox: each is contained, graded as a failure with a reason, and
leaves the host (files, processes, network listener, the grader itself) untouched."""

from __future__ import annotations

import hashlib
import os
import socket
import textwrap
import time
from pathlib import Path

import pytest

from ilr_env.grading import bwrap_available, check_many, run_program
from ilr_env.grading import sandbox as sandbox_module
from ilr_env.tasks.base import Question

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not usable on this machine")

STUB = 'def add(a, b):\n    """Return a + b."""\n'
TESTS = (
    "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-4, 4) == 0\n\ncheck(add)\n"
)
ADD = Question(
    id="add",
    prompt=STUB,
    answer="    return a + b\n",
    task="security",
    kind="code",
    metadata={"prompt": STUB, "entry_point": "add", "tests": TESTS},
)
WRONG = "def add(a, b):\n    return a - b\n"
TIMEOUT_S = 3.0


def prog(body: str, *, add: str = WRONG) -> str:
    return textwrap.dedent(body) + "\n" + add


def hostile_programs(canary: Path, port: int, tag: str) -> dict[str, str]:
    """name -> full program. Every one either defines a wrong add() or never gets to define one."""
    return {
        "infinite_loop": prog("while True:\n    pass\n"),
        "infinite_loop_in_call": "def add(a, b):\n    while True:\n        pass\n",
        "sigterm_ignored_loop": prog(
            "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
        ),
        "fork_bomb": prog(
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
        ),
        "memory_bomb": prog("x = bytearray(64 * 1024 ** 3)\n"),
        "memory_growth": prog("x = []\nwhile True:\n    x.append(' ' * 10 ** 7)\n"),
        "huge_output": prog("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"),
        "huge_stderr": prog("import sys\nfor _ in range(10 ** 6):\n    sys.stderr.write('y' * 4096)\n"),
        "write_canary": prog(f"open({str(canary)!r}, 'w').write('pwned')\n"),
        "delete_canary": prog(f"import os\nos.remove({str(canary)!r})\n"),
        "shred_tmp": prog(
            "import shutil, glob\nfor p in glob.glob('/tmp/*'):\n    shutil.rmtree(p, ignore_errors=True)\n"
        ),
        "read_home_and_env": prog(
            "import os\nSTOLEN = (os.environ.get('ILR_FAKE_SECRET'), os.listdir(os.path.expanduser('~')))\n"
        ),
        "connect_listener": prog(
            f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "s.sendall(b'exfiltrated')\n"
        ),
        "kill_parent": prog("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"),
        "kill_everything": prog("import os, signal\nos.kill(-1, signal.SIGKILL)\n"),
        "os_exit_before_tests": prog("import os\nos._exit(0)\n"),
        "sys_exit_before_tests": prog("import sys\nsys.exit(0)\n"),
        "exit_in_call": "def add(a, b):\n    raise SystemExit(0)\n",
        "redefine_check": prog("def check(candidate):\n    return True\n"),
        "patch_builtins": prog(
            "import builtins\nbuiltins.AssertionError = type('N', (Exception,), {})\n"
            "builtins.print = lambda *a, **k: None\n"
        ),
        "always_equal_object": "class Eq:\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return Eq()\n",
        "int_subclass_eq": "class I(int):\n    def __eq__(self, other):\n        return True\n"
        "def add(a, b):\n    return I(0)\n",
        "fake_success_marker": prog(
            "print('ILR-VERDICT 0 {\"status\": \"passed\"}')\nprint('tests passed')\n"
        ),
        "patch_exit_functions": prog(
            "import os, sys\nsys.exit = lambda *a: None\nos._exit = lambda *a: None\n"
        ),
        "daemon_left_behind": prog(
            f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            f"        os.execv('/bin/sleep', ['sleep', '{tag}'])\n    os._exit(0)\n"
            "time.sleep(0.3)\n"
        ),
        "touch_grader_files": prog(f"open({sandbox_module.__file__!r}, 'a').write('# pwned')\n"),
        "recursion_crash": prog(
            "import sys\nsys.setrecursionlimit(10 ** 9)\ndef f(n):\n    return f(n + 1)\nf(0)\n"
        ),
        "ctypes_segfault": prog("import ctypes\nctypes.string_at(0)\n"),
        "close_all_fds": prog("import os\nos.closerange(0, 4096)\n"),
        "forge_protocol": prog(
            "import os, json, struct\nfor fd in range(3, 10):\n    try:\n"
            "        d = json.dumps({'ok': True, 'value': ['i', '5']}).encode()\n"
            "        os.write(fd, struct.pack('>I', len(d)) + d)\n    except OSError:\n        pass\n"
        ),
        "scan_memory_for_nonce": prog(
            "import gc\nfound = [o for o in gc.get_objects() if isinstance(o, str) and len(o) == 32]\n"
        ),
        "read_stdin": prog("x = input()\n"),
        "huge_return_value": "def add(a, b):\n    return list(range(10 ** 8))\n",
        "thread_left_running": prog(
            "import threading\n"
            "threading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=False).start()\n"
        ),
    }


def _listener() -> socket.socket:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    return srv


def _procs_with(tag: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if tag.encode() in cmd:
                found.append(int(entry))
    return found


@needs_bwrap
def test_hostile_programs_are_contained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ILR_FAKE_SECRET", "s3cr3t-token-value")
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    grader_file = Path(sandbox_module.__file__)
    grader_hash = hashlib.sha256(grader_file.read_bytes()).hexdigest()
    tag = f"{time.time_ns() % 10**9}.25"
    srv = _listener()
    programs = hostile_programs(canary, srv.getsockname()[1], tag)
    assert len(programs) >= 25
    start = time.monotonic()
    grades = check_many(
        [ADD] * len(programs),
        [f"```python\n{p}\n```" for p in programs.values()],
        workers=4,
        timeout_s=TIMEOUT_S,
        memory_mb=512,
    )
    elapsed = time.monotonic() - start
    verdicts = dict(zip(programs, grades))
    passed = {name: g.reason for name, g in verdicts.items() if g.correct}
    assert not passed, f"hostile programs graded correct: {passed}"
    assert all(g.reason.startswith(("failed", "timeout")) for g in grades), {
        n: g.reason for n, g in verdicts.items()
    }
    assert verdicts["infinite_loop"].reason.startswith("timeout")
    assert verdicts["os_exit_before_tests"].reason.startswith("failed")
    # the host is unaffected
    assert canary.read_text() == "intact"
    assert hashlib.sha256(grader_file.read_bytes()).hexdigest() == grader_hash
    with pytest.raises(TimeoutError):
        srv.accept()
    srv.close()
    assert not _procs_with(tag), "a daemon survived grading"
    assert elapsed < 60
    # and the sandbox still works afterwards
    assert check_many([ADD], ["    return a + b\n"])[0].correct


@needs_bwrap
def test_secrets_home_and_network_are_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ILR_FAKE_SECRET", "s3cr3t-token-value")
    code = textwrap.dedent("""
        import os, socket
        print(sorted(os.environ.items()))
        print(os.path.exists('/root'), os.path.exists('/work'), os.path.exists(os.path.expanduser('~/.ssh')))
        print(sorted(os.listdir('/')))
        try:
            socket.create_connection(('1.1.1.1', 53), timeout=1)
            print('NET-OK')
        except OSError as e:
            print('net blocked', e)
        print('uid', os.getuid())
        print('caps', open('/proc/self/status').read().split('CapEff:')[1].split()[0])
    """)
    r = run_program(code, timeout_s=5)
    assert r.ok, r.stderr
    assert "s3cr3t" not in r.stdout and "NET-OK" not in r.stdout
    assert "'/work'" not in r.stdout and "work" not in r.stdout.splitlines()[2]
    assert "uid 0" not in r.stdout and "caps 0000000000000000" in r.stdout


def test_unsafe_fallback_still_grades_and_blocks_sockets() -> None:
    """Without bwrap (the unsafe opt-in): plain subprocess + rlimits + audit-hook guards (see SECURITY.md)."""
    ok = check_many([ADD, ADD], ["    return a + b\n", "    return a - b\n"], isolation="unsafe_subprocess")
    assert [g.correct for g in ok] == [True, False]
    srv = _listener()
    r = run_program(
        f"import socket\nsocket.create_connection(('127.0.0.1', {srv.getsockname()[1]}), timeout=1)\n",
        isolation="unsafe_subprocess",
        timeout_s=5,
    )
    assert not r.ok and "blocked in the ilr sandbox" in r.stderr
    with pytest.raises(TimeoutError):
        srv.accept()
    srv.close()
    loop = run_program("while True:\n    pass\n", isolation="unsafe_subprocess", timeout_s=1)
    assert loop.timed_out
    exited = check_many([ADD], [prog("import os\nos._exit(0)\n", add="")], isolation="unsafe_subprocess")[0]
    assert not exited.correct and exited.reason.startswith("failed")


def test_output_is_capped() -> None:
    r = run_program(
        "import sys\nfor _ in range(2000):\n    sys.stdout.write('z' * 4096)\n",
        timeout_s=5,
        output_limit=10_000,
    )
    assert r.truncated and len(r.stdout) == 10_000


# --- the per-worker zygote (bwrap as root): programs of one worker are forked one after another from the same
# warm sandboxed interpreter; nothing one program does may be visible to the next.

needs_zygote = pytest.mark.skipif(
    not (bwrap_available() and os.geteuid() == 0 and sandbox_module.ZYGOTE_ENABLED),
    reason="the zygote is used only with bwrap, as root",
)

LEAVE_STATE = """
import os, sys, time, math, json, builtins
open('/tmp/left-behind', 'w').write('secret of program A')
os.makedirs('/tmp/dir-left-behind', exist_ok=True)
math.pi = 3.0
json.dumps = lambda *a, **k: 'patched'
builtins.LEFT = 'A'
sys.modules['left_module'] = type(sys)('left_module')
for target in ('/sandbox/solution.py', '/dev/shm/x', '/x', '/usr/x'):
    try:
        open(target, 'w').write('x')
        print('WROTE', target)
    except OSError:
        pass
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '{tag}'])
    os._exit(0)
time.sleep(0.2)
print('uid', os.getuid())
"""

SEE_STATE = """
import os, sys, math, json, builtins
print('tmp', sorted(os.listdir('/tmp')))
print('pi', math.pi == 3.141592653589793, json.dumps(1))
print('builtin', hasattr(builtins, 'LEFT'), 'left_module' in sys.modules)
print('procs', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
print('sandbox', sorted(os.listdir('/sandbox')), open('/sandbox/solution.py').read() == open(__file__).read())
print('uid', os.getuid())
"""


@needs_zygote
def test_a_program_leaves_no_state_for_the_next_one_in_the_same_worker() -> None:
    tag = f"{time.time_ns() % 10**9}.75"
    first = run_program(LEAVE_STATE.replace("{tag}", tag), timeout_s=5)
    assert first.ok, first.stderr
    assert "WROTE" not in first.stdout, first.stdout
    second = run_program(SEE_STATE, timeout_s=5)  # same thread: the same idle judge, hence the same zygote
    assert second.ok, second.stderr
    lines = dict(line.split(" ", 1) for line in second.stdout.splitlines())
    assert lines["tmp"] == "[]"
    assert lines["pi"] == "True 1"
    assert lines["builtin"] == "False False"
    assert lines["procs"] == "[1, 2]"  # a fresh PID namespace: its init and the program, nothing lingering
    assert lines["sandbox"] == "['solution.py'] True"
    assert lines["uid"] != first.stdout.split("uid ")[1].strip()
    assert not _procs_with(tag), "a daemon of the first program survived it"


@needs_zygote
def test_a_lingering_child_dies_with_its_program_and_check_mode_too() -> None:
    tag = f"{time.time_ns() % 10**9}.5"
    daemon = prog(
        f"import os\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{tag}'])\n",
        add="def add(a, b):\n    return a + b\n",
    )
    grades = check_many([ADD, ADD], [daemon, "    return a + b\n"], workers=1)
    assert [g.correct for g in grades] == [True, True]
    assert not _procs_with(tag)


@needs_zygote
def test_a_killed_zygote_is_replaced() -> None:
    assert run_program("pass", timeout_s=5).ok
    zygotes = [pid for pid in _procs_with("_NEWCGROUP") if pid != os.getpid()]
    assert zygotes, "no zygote process found"
    for pid in zygotes:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    assert [g.correct for g in check_many([ADD, ADD], ["    return a + b\n", WRONG], workers=1)] == [
        True,
        False,
    ]
    assert check_many([ADD], ["    return a + b\n"], workers=1)[0].correct


@needs_bwrap
def test_bwrap_per_program_path_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the zygote (non-root, or ILR_SANDBOX_ZYGOTE=0), each program gets its own bwrap as before."""
    monkeypatch.setattr(sandbox_module, "ZYGOTE_ENABLED", False)
    grades = check_many(
        [ADD, ADD, ADD], ["    return a + b\n", WRONG, prog("import os\nos._exit(0)\n", add="")], workers=1
    )
    assert [g.correct for g in grades] == [True, False, False]
    r = run_program("import os\nprint(os.getuid(), sorted(os.listdir('/sandbox')))\n", timeout_s=5)
    assert r.ok and "solution.py" in r.stdout


@needs_zygote
def test_forked_programs_do_not_share_random_state_or_see_pid1_internals() -> None:
    code = (
        "import random, os\nprint(random.getrandbits(64))\n"
        "try:\n    print(os.listdir('/proc/1/fd'))\nexcept OSError:\n    print('denied')\n"
    )
    first, second = run_program(code, timeout_s=5), run_program(code, timeout_s=5)
    assert first.ok and second.ok, (first.stderr, second.stderr)
    assert first.stdout.split()[0] != second.stdout.split()[0]
    assert first.stdout.split()[1] == "denied"
