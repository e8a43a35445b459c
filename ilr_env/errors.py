"""The env's error types, apart from the env so that protocols and config validation can raise them too."""

from __future__ import annotations


class ILREnvError(ValueError):
    """A misuse of the environment (bad action dict, step after the end), naming the agent and the fix."""


class ILRActionTypeError(ILREnvError, TypeError):
    """An action that is not a string (decode token ids to text before stepping)."""


class ILRConfigError(ILREnvError):
    """An invalid ``make``/constructor argument; the message names the value and the accepted ones."""


__all__ = ["ILRActionTypeError", "ILRConfigError", "ILREnvError"]
