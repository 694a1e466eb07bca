"""The package's public surface and import-time promises."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib import metadata

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
