"""Deterministic policies for tests and demos: no model, same answer every time, calls counted."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ilr_agents.policies.base import Chat, Completion, SamplingParams, check_chats


class ScriptedPolicy:
    """Answers from ``script(chat) -> str`` or by cycling through a list of strings.

    ``calls`` counts ``generate`` calls and ``chats_seen`` records every batch, so tests can check how a
    caller batches. With a list, the k-th completion overall gets ``responses[k % len]``; with a callable
    the completion index within the chat is not passed, so n samples of one chat are identical.
    """

    def __init__(self, script: Callable[[Chat], str] | Sequence[str], name: str = "scripted") -> None:
        if isinstance(script, str):
            raise TypeError("script must be a callable or a list of strings, not one string: wrap it in [..]")
        if not callable(script):
            script = list(script)
            if not script or not all(isinstance(s, str) for s in script):
                raise TypeError(f"script list must hold at least one string, got {script!r:.80}")
        self._script = script
        self.name = name
        self.calls = 0
        self.chats_seen: list[list[Chat]] = []
        self._cursor = 0

    def _next(self, chat: Chat) -> str:
        if callable(self._script):
            text = self._script(chat)
            if not isinstance(text, str):
                raise TypeError(f"script returned {type(text).__name__}, must return str")
            return text
        text = self._script[self._cursor % len(self._script)]
        self._cursor += 1
        return text

    def generate(self, chats: list[Chat], params: SamplingParams) -> list[list[Completion]]:
        check_chats(chats)
        self.calls += 1
        self.chats_seen.append(chats)
        return [[Completion(text=self._next(chat)) for _ in range(params.n)] for chat in chats]
