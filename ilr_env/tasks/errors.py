"""Typed errors of the task layer, so callers can tell a typo from missing data from a broken file."""

from __future__ import annotations


class TaskNotFoundError(LookupError):
    """An unknown task name; the message lists the known tasks and the closest match."""


class UnknownSplitError(ValueError):
    """A split the task does not have; the message names the valid splits."""


class TaskArgumentError(TypeError):
    """A task keyword argument the task does not accept; the message names the accepted ones."""


class DataFormatError(ValueError):
    """A data file exists but cannot be read (bad JSON line, missing field); the message gives file:line."""


class DataSourceError(LookupError):
    """No source could supply the data; the message names every way tried and why each failed."""
