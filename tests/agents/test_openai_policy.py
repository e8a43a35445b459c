"""OpenAIPolicy against a real HTTP server on 127.0.0.1: success, retried errors, timeouts, clear failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ilr_agents.policies import OpenAIPolicy, PolicyError, SamplingParams

CHAT = [{"role": "user", "content": "What is 2+3?"}]


class FakeServer:
    """A chat-completions server with scripted replies: "ok", "500", "429", "401", "hang", "short".

    "hang" waits on ``release`` (set at teardown) instead of sleeping, so no thread outlives the test.
    """

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.crowd = threading.Condition(self.lock)
        self.hold_for: int | None = None  # hold each request until this many are in flight (or 0.5 s)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    action = server.script.pop(0) if server.script else "ok"
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                    server.crowd.notify_all()
                    if server.hold_for is not None:  # makes concurrency observable with instant replies
                        server.crowd.wait_for(lambda: server.inflight >= server.hold_for, timeout=0.5)
                try:
                    reply = server.respond(action, body)
                finally:  # out of flight before the client can read the answer and send its next request
                    with server.lock:
                        server.inflight -= 1
                if reply is None:
                    return
                status, payload = reply
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def respond(self, action: str, body: dict) -> tuple[int, bytes] | None:
        """The scripted reply (status, JSON body), or None for a request left hanging until released."""
        if action == "hang":
            self.release.wait(10)
            return None
        if action in ("500", "429", "401"):
            return int(action), b'{"error": "scripted failure"}'
        n = 1 if action == "short" else body["n"]
        last = body["messages"][-1]["content"]
        choices = [
            {
                "index": k,
                "message": {"role": "assistant", "content": f"echo {last} #{k} seed={body.get('seed')}"},
                "finish_reason": "length" if k == 1 else "stop",
                "logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.5}]},
            }
            for k in range(n)
        ]
        return 200, json.dumps({"id": "x", "object": "chat.completion", "choices": choices}).encode()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer([])
    srv.thread.start()
    yield srv
    srv.release.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()


def make_policy(srv: FakeServer, **kw: object) -> OpenAIPolicy:
    defaults: dict[str, object] = {"timeout": 2.0, "max_retries": 2, "backoff": 0.001}
    return OpenAIPolicy(srv.url, "test-model", **{**defaults, **kw})


def test_success_returns_n_completions_per_chat_in_order(server: FakeServer, monkeypatch) -> None:
    monkeypatch.setenv("ILR_TEST_KEY", "sk-test")
    policy = make_policy(server, api_key_env="ILR_TEST_KEY", request_logprobs=True)
    chats = [CHAT, [{"role": "user", "content": "second"}]]
    out = policy.generate(chats, SamplingParams(n=3, max_new_tokens=7, temperature=0.5, seed=11))
    assert [len(group) for group in out] == [3, 3]
    assert out[0][0].text.startswith("echo What is 2+3? #0") and out[1][2].text.startswith("echo second #2")
    assert out[0][1].finish_reason == "length" and out[0][0].finish_reason == "stop"
    assert out[0][0].logprobs == [-0.5, -1.5]
    body = server.requests[0]
    assert body["model"] == "test-model" and body["n"] == 3 and body["max_tokens"] == 7
    assert body["temperature"] == 0.5 and "top_k" not in body
    assert sorted(r["seed"] for r in server.requests) == [11, 12]  # one seed per chat
    assert all(h["Authorization"] == "Bearer sk-test" for h in server.headers)


def test_no_key_means_no_authorization_header(server: FakeServer, monkeypatch) -> None:
    monkeypatch.delenv("ILR_TEST_KEY", raising=False)
    make_policy(server, api_key_env="ILR_TEST_KEY").generate([CHAT], SamplingParams())
    assert "Authorization" not in server.headers[0]


def test_server_error_is_retried_then_succeeds(server: FakeServer) -> None:
    server.script[:] = ["500", "429", "ok"]
    out = make_policy(server).generate([CHAT], SamplingParams())
    assert out[0][0].text.startswith("echo")
    assert len(server.requests) == 3


def test_timeout_is_retried_then_succeeds(server: FakeServer) -> None:
    server.script[:] = ["hang", "ok"]
    out = make_policy(server, timeout=0.3).generate([CHAT], SamplingParams())
    assert out[0][0].text.startswith("echo")
    assert len(server.requests) == 2


def test_persistent_timeout_gives_clear_error_after_retries(server: FakeServer) -> None:
    server.script[:] = ["hang"] * 3
    policy = make_policy(server, timeout=0.2, max_retries=2)
    with pytest.raises(PolicyError) as err:
        policy.generate([CHAT], SamplingParams())
    message = str(err.value)
    assert (
        server.url in message and "3 attempts" in message and "timed out" in message and "timeout=" in message
    )
    assert len(server.requests) == 3


def test_persistent_server_error_names_status(server: FakeServer) -> None:
    server.script[:] = ["500"] * 2
    with pytest.raises(PolicyError, match="HTTP 500"):
        make_policy(server, max_retries=1).generate([CHAT], SamplingParams())


def test_client_error_is_not_retried_and_names_the_fix(server: FakeServer) -> None:
    server.script[:] = ["401"]
    with pytest.raises(PolicyError, match=r"HTTP 401.*OPENAI_API_KEY"):
        make_policy(server).generate([CHAT], SamplingParams())
    assert len(server.requests) == 1


def test_fewer_choices_than_n_are_topped_up(server: FakeServer) -> None:
    server.script[:] = ["short", "ok"]
    out = make_policy(server).generate([CHAT], SamplingParams(n=3))
    assert len(out[0]) == 3
    assert [r["n"] for r in server.requests] == [3, 2]


def test_concurrency_limit_is_respected(server: FakeServer) -> None:
    server.hold_for = 3  # a client that keeps its limit of 2 never gets there; one that does not, at once
    chats = [[{"role": "user", "content": f"q{i}"}] for i in range(12)]
    out = make_policy(server, max_concurrency=2).generate(chats, SamplingParams())
    assert [g[0].text.split()[1] for g in out] == [f"q{i}" for i in range(12)]
    assert server.max_inflight <= 2


def test_unreachable_server_gives_clear_error() -> None:
    policy = OpenAIPolicy("http://127.0.0.1:9/v1", "m", max_retries=1, backoff=0.001, timeout=1.0)
    with pytest.raises(PolicyError, match=r"127\.0\.0\.1:9/v1/chat/completions.*cannot connect"):
        policy.generate([CHAT], SamplingParams())


@pytest.mark.parametrize("bad", [{"base_url": "localhost:8000"}, {"max_concurrency": 0}, {"timeout": 0}])
def test_bad_construction_arguments_are_rejected(bad: dict) -> None:
    kwargs = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **bad}
    with pytest.raises(ValueError):
        OpenAIPolicy(**kwargs)
