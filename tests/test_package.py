"""The package's public surface and import-time promises."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

import pytest

import cyberun

OPTIONAL_LIBRARIES = ("requests", "urllib3", "tqdm", "rich", "httpx")


def _modules_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


def test_import_loads_no_http_or_display_library() -> None:
    loaded = _modules_after("import cyberun")
    for name in OPTIONAL_LIBRARIES:
        assert name not in loaded, f"import cyberun imported {name}"


def test_import_defers_everything_but_errors_and_logging_setup() -> None:
    loaded = {m for m in _modules_after("import cyberun") if m.startswith("cyberun")}
    assert loaded == {"cyberun", "cyberun._logging", "cyberun._version", "cyberun.errors"}


def test_all_matches_public_names() -> None:
    # As httpx does: every public object defined by the package is exported,
    # and everything exported exists.
    defined_here = {
        name
        for name, value in vars(cyberun).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("cyberun")
    }
    exported = set(cyberun.__all__) - {"__version__"}
    assert defined_here <= exported
    assert all(hasattr(cyberun, name) for name in cyberun.__all__)
    assert len(cyberun.__all__) == len(set(cyberun.__all__))


@pytest.mark.parametrize("name", [n for n in cyberun.__all__ if n != "__version__"])
def test_every_public_name_resolves_and_is_documented(name: str) -> None:
    value = getattr(cyberun, name)
    assert value.__doc__, f"{name} has no docstring"


def test_all_lists_every_lazy_name() -> None:
    from cyberun import _LAZY

    assert set(_LAZY) <= set(cyberun.__all__)


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        cyberun.Nope  # noqa: B018


def test_version_has_a_single_source() -> None:
    assert metadata.version("cyberun") == cyberun.__version__


HTTP_LIBRARIES = ("requests", "urllib3", "http.client", "httpx")


@pytest.mark.parametrize("transport", ["auto", "requests", "urllib3", "urllib"])
def test_constructing_a_client_imports_no_http_library(transport: str) -> None:
    if transport in ("requests", "urllib3") and importlib.util.find_spec(transport) is None:
        pytest.skip(f"{transport} is not installed here")
    loaded = _modules_after(
        f"import cyberun; client = cyberun.Client('sk-x', transport={transport!r}); repr(client)"
    )
    assert not [name for name in HTTP_LIBRARIES if name in loaded]
    # The first use creates the transport, and only then its library is imported.
    expected = {"requests": "requests", "urllib3": "urllib3", "urllib": "http.client"}
    loaded = _modules_after(
        f"import cyberun; cyberun.Client('sk-x', transport={transport!r}).transport"
    )
    if transport != "auto":
        assert expected[transport] in loaded


def test_importing_the_client_defers_cattrs_and_every_transport() -> None:
    loaded = _modules_after("from cyberun import Client")
    assert "cattrs" not in loaded  # the converter is built at the first decode
    assert not [name for name in HTTP_LIBRARIES if name in loaded]


def test_a_transport_whose_library_is_missing_is_refused_at_construction() -> None:
    code = (
        "import sys; sys.modules['requests'] = None\n"
        "import cyberun\n"
        "try:\n"
        "    cyberun.Client('sk-x', transport='requests')\n"
        "except cyberun.ConfigurationError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert "pip install 'cyberun[requests]'" in out
    with pytest.raises(ValueError, match="unknown transport 'curl'"):
        cyberun.Client("sk-x", transport="curl")


ROOT = Path(__file__).resolve().parents[1]


def _backend() -> None:
    setuptools = pytest.importorskip("setuptools", reason="the build backend (setuptools>=77)")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("setuptools>=77 (Python 3.9+, in the test extra) builds the package")


def _build(kind: str, out: Path) -> Path:
    code = f"import sys; from setuptools import build_meta as b; print(b.{kind}(sys.argv[1]))"
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out / result.stdout.strip().splitlines()[-1]


def test_the_metadata_has_an_spdx_license_urls_author_and_real_floors(tmp_path: Path) -> None:
    _backend()
    info = _build("prepare_metadata_for_build_wheel", tmp_path)
    metadata = (info / "METADATA").read_text(encoding="utf-8")
    assert "License-Expression: MIT" in metadata
    assert "License :: " not in metadata  # the legacy classifier is gone with the expression
    assert "Author: The cyberun authors" in metadata
    assert "Project-URL: Documentation, https://" in metadata
    assert "Project-URL: Source, https://" in metadata
    assert "Requires-Dist: attrs>=23.1" in metadata
    assert "Requires-Dist: cattrs>=24.1" in metadata


def test_the_sdist_holds_every_tracked_test_doc_and_benchmark_file(tmp_path: Path) -> None:
    _backend()
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to compare with")
    sdist = _build("build_sdist", tmp_path)
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    tracked = subprocess.run(
        ["git", "ls-files", "tests", "docs", "benchmarks", "cyberun", ".ci"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    missing = sorted(set(tracked) - members)
    assert not missing, f"the sdist lacks {missing[:20]}"
    top = {"README.md", "CHANGELOG.md", "LICENSE", "tox.ini", "pyproject.toml", "setup.cfg"}
    assert top <= members
    assert ".ci/run" in members
    assert not [m for m in members if "__pycache__" in m or m.endswith(".pyc")]


def test_the_readme_works_where_pypi_shows_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert targets and all(t.startswith(("https://", "#")) for t in targets), [
        t for t in targets if not t.startswith(("https://", "#"))
    ]
    assert "python -m pip install cyberun\n" in readme
    first = readme.split("\n## ", 1)[0]
    assert 'python -m pip install -e ".[cli]" && python -m cyberun demo' in first
