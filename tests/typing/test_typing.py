"""The public API as type checkers see it: mypy --strict and pyright strict on user code.

Run by ``tox -e type`` (which installs mypy and pyright); elsewhere these
tests are skipped when the checkers are not installed.

- ``user_script.py`` touches every public name and must be clean;
- every line of ``mistakes.py`` marked ``# error`` must be an error for both
  checkers, and no other line may be;
- ``pyright --verifytypes cyberun --ignoreexternal`` must score 100%.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import pytest

import cyberun

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
USER_SCRIPT = HERE / "user_script.py"
MISTAKES = HERE / "mistakes.py"


def marked_lines(path: Path) -> Set[int]:
    return {
        number
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.rstrip().endswith("# error")
    }


def _pyright() -> List[str]:
    pytest.importorskip("pyright", reason="pyright is installed by tox -e type")
    return [sys.executable, "-m", "pyright"]


def _env() -> Dict[str, str]:
    # pyright asks the `python` on PATH for its search paths: make it this one.
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run_pyright(tmp_path: Path, files: List[Path]) -> Dict[int, List[str]]:
    """pyright strict's errors in ``files`` (copied into ``tmp_path``), by line."""
    for file in files:
        shutil.copy(file, tmp_path / file.name)
    (tmp_path / "pyrightconfig.json").write_text(
        json.dumps(
            {
                "typeCheckingMode": "strict",
                "pythonVersion": "3.8",
                "extraPaths": [str(ROOT)],
                "include": [file.name for file in files],
            }
        )
    )
    completed = subprocess.run(
        [*_pyright(), "--outputjson", "-p", str(tmp_path / "pyrightconfig.json")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    report = json.loads(completed.stdout)
    assert report["summary"]["filesAnalyzed"] == len(files), completed.stdout + completed.stderr
    errors: Dict[int, List[str]] = {}
    for diagnostic in report["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            line = diagnostic["range"]["start"]["line"] + 1
            errors.setdefault(line, []).append(f"{line}: {diagnostic['message']}")
    return errors


def run_mypy(files: List[Path]) -> str:
    pytest.importorskip("mypy", reason="mypy is installed by tox -e type")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",  # the package's own checks are `mypy` in tox -e type
            "--no-incremental",
            "--config-file",
            os.devnull,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        timeout=600,
    )
    return completed.stdout


def test_a_script_touching_every_public_name_is_clean_under_pyright_strict(
    tmp_path: Path,
) -> None:
    text = USER_SCRIPT.read_text(encoding="utf-8")
    untouched = [name for name in cyberun.__all__ if not re.search(rf"\b{name}\b", text)]
    assert not untouched, f"user_script.py does not use {untouched}"
    errors = run_pyright(tmp_path, [USER_SCRIPT])
    assert errors == {}, "\n".join(m for ms in errors.values() for m in ms)


def test_the_script_is_clean_under_mypy_strict() -> None:
    out = run_mypy([USER_SCRIPT])
    assert out.startswith("Success"), out


def test_every_mistake_is_an_error_for_pyright(tmp_path: Path) -> None:
    errors = run_pyright(tmp_path, [MISTAKES])
    expected = marked_lines(MISTAKES)
    assert len(expected) >= 14
    assert set(errors) == expected, "\n".join(m for ms in errors.values() for m in ms)


def test_every_mistake_is_an_error_for_mypy() -> None:
    out = run_mypy([MISTAKES])
    lines = {int(m.group(1)) for m in re.finditer(r"^\S*mistakes\.py:(\d+): error", out, re.M)}
    assert lines == marked_lines(MISTAKES), out


def _installed_from_source_tree(tmp_path: Path) -> bool:
    """Whether an interpreter started outside the repository imports cyberun from it."""
    where = subprocess.run(
        [sys.executable, "-c", "import cyberun; print(cyberun.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    return Path(where).resolve().parent == ROOT / "cyberun"


def test_verifytypes_scores_100_percent(tmp_path: Path) -> None:
    if _installed_from_source_tree(tmp_path):
        pytest.skip("verifytypes reads an installed package (tox -e type installs the wheel)")
    completed = subprocess.run(
        [*_pyright(), "--verifytypes", "cyberun", "--ignoreexternal", "--outputjson"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=600,
    )
    report = json.loads(completed.stdout)
    completeness = report["typeCompleteness"]
    problems = [d["message"] for d in report["generalDiagnostics"] if d["severity"] == "error"]
    assert completeness["completenessScore"] == 1.0, problems[:20]
    assert completeness["exportedSymbolCounts"]["withUnknownType"] == 0
    assert completeness["exportedSymbolCounts"]["withAmbiguousType"] == 0
