"""Any OpenAI-compatible ``/v1/chat/completions`` server (vLLM serve, TGI, llama.cpp, OpenAI, ...).

Standard library only (urllib + a thread pool), so inference-only users need no extra dependency.
Transient failures (HTTP 429 and 5xx, timeouts, refused connections) are retried with exponential backoff
and jitter drawn from the policy's own RNG; anything else, or running out of retries, raises PolicyError
naming the URL, the status and what to change. Token ids are not available over this API; per-token
log-probs are, when ``request_logprobs=True`` and the server supports them.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ilr_agents.policies.base import Chat, Completion, PolicyError, SamplingParams, check_chats

_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class _Transient(Exception):
    """A failure worth retrying; carries what the final error message should say."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


class OpenAIPolicy:
    """Chat completions over HTTP, ``max_concurrency`` requests in flight, one request per chat.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (one ending in ``/chat/completions`` is used as is).
        model: the server's model name.
        api_key_env: environment variable holding the key; unset = no Authorization header (local servers).
        timeout: seconds per HTTP request. max_retries: retries after the first attempt.
        backoff: base delay in seconds; attempt k waits ``backoff * 2**k`` times a jitter in [0.5, 1.5),
            capped at ``max_backoff`` (a server's Retry-After is honoured up to the same cap).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        request_logprobs: bool = False,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url={base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)"
            )
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError(
                "need max_concurrency >= 1, max_retries >= 0, timeout > 0, backoff >= 0; got "
                f"{max_concurrency}, {max_retries}, {timeout}, {backoff}"
            )
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model = model
        self.name = name or model
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.request_logprobs = request_logprobs
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def generate(self, chats: list[Chat], params: SamplingParams) -> list[list[Completion]]:
        check_chats(chats)
        if not chats:
            return []
        # one seed per chat, fixed up front, so results do not depend on which thread ran first
        seeds = [params.seed + i if params.seed is not None else None for i in range(len(chats))]
        workers = min(self.max_concurrency, len(chats))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ilr-openai") as pool:
            return list(pool.map(lambda cs: self._complete(cs[0], params, cs[1]), zip(chats, seeds)))

    def _complete(self, chat: Chat, params: SamplingParams, seed: int | None) -> list[Completion]:
        """n completions for one chat; asks again for the rest if a server returns fewer than n choices."""
        out: list[Completion] = []
        while len(out) < params.n:
            body: dict[str, Any] = {
                "model": self.model,
                "messages": chat,
                "n": params.n - len(out),
                "max_tokens": params.max_new_tokens,
                "temperature": params.temperature,
                "top_p": params.top_p,
            }
            if params.top_k > 0:
                body["top_k"] = params.top_k  # a vLLM/TGI extension; OpenAI itself rejects it
            if seed is not None:
                body["seed"] = seed + len(out)
            if self.request_logprobs:
                body["logprobs"] = True
            choices = self._post(body).get("choices")
            if not isinstance(choices, list) or not choices:
                raise PolicyError(
                    f"{self.url} answered without 'choices'; is this an OpenAI-compatible chat endpoint?"
                )
            out.extend(self._parse_choice(c) for c in choices[: params.n - len(out)])
        return out

    def _parse_choice(self, choice: dict[str, Any]) -> Completion:
        message = choice.get("message") or {}
        text = message.get("content")
        if not isinstance(text, str):
            text = ""  # e.g. a refusal or tool call: an empty answer, graded as wrong
        logps = None
        content = (choice.get("logprobs") or {}).get("content")
        if isinstance(content, list):
            logps = [float(item["logprob"]) for item in content]
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(text=text, logprobs=logps, finish_reason=finish)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                return self._post_once(data)
            except _Transient as err:
                last = err.what
                if attempt == self.max_retries:
                    break
                time.sleep(self._delay(attempt, err.retry_after))
        raise PolicyError(
            f"POST {self.url} failed after {self.max_retries + 1} attempts; last error: {last}. Fix: check "
            f"that the server is up and serves model {self.model!r}, or raise timeout= / max_retries= (now "
            f"{self.timeout} s, {self.max_retries})."
        )

    def _post_once(self, data: bytes) -> dict[str, Any]:
        request = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = err.read()[:300].decode(errors="replace")
            if err.code in _RETRYABLE_STATUS:
                raise _Transient(
                    f"HTTP {err.code} {detail}", _retry_after(err.headers.get("Retry-After"))
                ) from err
            hint = {
                401: f"set ${self.api_key_env}",
                403: f"check ${self.api_key_env}",
                404: "check base_url (it should end in /v1) and the model name",
            }.get(err.code, "check the request")
            raise PolicyError(f"POST {self.url} -> HTTP {err.code}: {detail}. Fix: {hint}.") from err
        except TimeoutError as err:
            raise _Transient(f"timed out after {self.timeout} s") from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, TimeoutError):
                raise _Transient(f"timed out after {self.timeout} s") from err
            raise _Transient(f"cannot connect ({err.reason})") from err
        except (ConnectionError, OSError) as err:  # reset mid-response, remote closed, ...
            raise _Transient(f"connection error ({err})") from err
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as err:
            raise PolicyError(
                f"{self.url} returned non-JSON ({raw[:120]!r}); is base_url an OpenAI-compatible API?"
            ) from err
        if not isinstance(parsed, dict):
            raise PolicyError(f"{self.url} returned {type(parsed).__name__}, expected a JSON object")
        return parsed

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        with self._rng_lock:
            jitter = 0.5 + self._rng.random()
        delay = self.backoff * (2**attempt) * jitter
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare for APIs, fall back to our own backoff
