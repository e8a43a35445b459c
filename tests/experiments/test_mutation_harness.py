"""`make mutation`'s bookkeeping: what counts as killed, how a module's mutmut config is made, and that
every written reason for an equivalent mutant belongs to a module the harness runs. No mutmut run here."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from experiments.scripts import mutation as harness


def test_score_counts_explained_survivors_out_and_everything_else_against():
    statuses = {
        "m.x_f__mutmut_1": "killed",
        "m.x_f__mutmut_2": "timeout",
        "m.x_f__mutmut_3": "survived",
        "m.x_f__mutmut_4": "survived",
        "m.x_f__mutmut_5": "no tests",
        "m.x_f__mutmut_6": "not checked",
        "m.x_f__mutmut_7": "killed",
    }
    reasons = {"m.x_f__mutmut_3": "same draws", "m.x_f__mutmut_1": "a reason for a killed mutant is ignored"}
    row = harness.score(statuses, reasons)
    assert (row["mutants"], row["killed"], row["equivalent"]) == (7, 3, 1)
    assert (row["survived"], row["no_tests"], row["not_checked"]) == (1, 1, 1)
    assert row["score"] == pytest.approx(3 / 6)
    assert row["open"] == {
        "m.x_f__mutmut_4": "survived",
        "m.x_f__mutmut_5": "no tests",
        "m.x_f__mutmut_6": "not checked",
    }
    assert row["explained"] == {"m.x_f__mutmut_3": "same draws"}
    assert harness.score({}, {})["score"] is None


def test_module_config_replaces_only_the_mutmut_table():
    module = harness.MODULES["report"]
    text = harness._pyproject_for(module)
    data = tomllib.loads(text)
    repo = tomllib.loads((harness.ROOT / "pyproject.toml").read_text())
    assert data["project"] == repo["project"] and data["tool"]["pytest"] == repo["tool"]["pytest"]
    mutmut = data["tool"]["mutmut"]
    assert mutmut["only_mutate"] == ["experiments/reports/report.py"]
    assert mutmut["pytest_add_cli_args_test_selection"] == list(module.tests)
    assert mutmut["source_paths"] == list(harness.PACKAGES)
    assert {k: mutmut[k] for k in repo["tool"]["mutmut"]} == repo["tool"]["mutmut"]
    assert text.count("[tool.mutmut]") == 1


def test_every_module_and_test_file_exists():
    for key, module in harness.MODULES.items():
        assert (harness.ROOT / module.path).is_file(), key
        for test in module.tests:
            if not test.startswith("-"):
                assert (harness.ROOT / test.split("::")[0]).is_file(), (key, test)


def test_every_reason_names_a_mutant_of_its_module_and_says_something():
    data = tomllib.loads((harness.DOCS / "equivalent.toml").read_text())
    assert set(data) <= set(harness.MODULES)
    for key, reasons in data.items():
        dotted = harness.MODULES[key].path.removesuffix(".py").replace("/", ".")
        for name, reason in reasons.items():
            assert name.startswith(dotted + ".x") and "__mutmut_" in name, (key, name)
            assert len(reason.split()) >= 4, (key, name)


def test_results_are_read_from_mutmuts_meta_file_and_filtered_to_the_modules_functions(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "SCRATCH", tmp_path)
    module = harness.Module("pkg/mod.py", ("t.py",), 10, only=("pkg.mod.x_keep*",))
    meta = tmp_path / "k" / "mutants" / "pkg" / "mod.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"pkg.mod.x_keep__mutmut_1": 1, "pkg.mod.x_keep__mutmut_2": 0, "pkg.mod.x_plot__mutmut_1": 0}
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    assert harness.read_results("k", module) == {
        "pkg.mod.x_keep__mutmut_1": "killed",
        "pkg.mod.x_keep__mutmut_2": "survived",
    }
    assert harness.read_results("missing", module) == {}


def test_report_lists_open_mutants_and_flags_modules_below_target(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "DOCS", Path(tmp_path))
    good = harness.score({"a.x_f__mutmut_1": "killed"}, {}) | {"path": "a.py", "settled": True, "seconds": 3}
    bad = harness.score({"b.x_g__mutmut_1": "survived"}, {}) | {"path": "b.py", "settled": False}
    harness.write_report({"a": good, "b": bad})
    md = (tmp_path / "report.md").read_text()
    assert "| a | `a.py` | 1 | 1 | 0 | 0 | 0 | 0 | 100.0% | 3 s |" in md
    assert "0.0% (below target)" in md and "re-run after merge" in md
    assert "- `b.x_g__mutmut_1`: survived" in md and "a.x_f__mutmut_1" not in md
    assert json.loads((tmp_path / "report.json").read_text())["a"]["score"] == 1.0
