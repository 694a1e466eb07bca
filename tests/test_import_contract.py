"""The layering of ``../shared/DESIGN.md``, checked on the source: imports point down only.

Every module of the package has a rule: the ``cyberun`` modules it may
import at run time (at module level or inside a function), and, separately,
those it may import under ``if TYPE_CHECKING:`` (for annotations only). A
module without a rule fails the test, so a new module must be placed in the
layering by whoever adds it. Optional third-party libraries may be imported
only where they are used, inside functions.
"""

from __future__ import annotations

import ast
import importlib.util
import sysconfig
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cyberun"

# The lowest layers, which every layer above may use.
LEAVES = ["cyberun.errors", "cyberun._redact", "cyberun._url", "cyberun._version"]
MODELS = ["cyberun.models", "cyberun._convert"]
TRANSPORT_SEAM = ["cyberun.transports._base"]

# module pattern -> (cyberun modules it may import, ... under TYPE_CHECKING).
# The first matching pattern applies; patterns are fnmatch-style.
RULES: Dict[str, Tuple[List[str], List[str]]] = {
    # The package root re-exports the public names, importing them lazily.
    "cyberun": (["cyberun.errors", "cyberun._logging", "cyberun._version"], ["cyberun.*"]),
    "cyberun.__main__": (["cyberun.cli"], []),
    # The top: the command line may use everything but the emulator's
    # internals (its public cyberun.testing serves `cyberun emulator`).
    # (`watch --record-stream` wraps a transport chosen by name.)
    "cyberun.cli": (["cyberun", "cyberun.[!t]*", "cyberun.testing", "cyberun.transports"], []),
    "cyberun._display": (["cyberun._terminal", "cyberun.models"], []),
    "cyberun._logging": (["cyberun._redact", "cyberun._terminal"], []),
    # The facade: chooses strategies and transports; never the CLI or the emulator.
    "cyberun.client": (
        [
            *LEAVES,
            *MODELS,
            "cyberun.api",
            "cyberun._pipeline",
            "cyberun._parameters",
            "cyberun._record",
            "cyberun._uploads",
            "cyberun.retry",
            "cyberun.strategies",
            "cyberun.strategies.*",
            "cyberun.transports",
            "cyberun.transports.*",
        ],
        [],
    ),
    # Strategies: the API layer and the transport seam, never a concrete transport.
    "cyberun.strategies*": (
        [
            *LEAVES,
            *MODELS,
            *TRANSPORT_SEAM,
            "cyberun._names",
            "cyberun._terminal",
            "cyberun.api",
            "cyberun.retry",
            "cyberun.sse",
            "cyberun.strategies.*",
        ],
        [],
    ),
    # The API layer and its request pipeline.
    "cyberun.api": (
        [
            *LEAVES,
            *MODELS,
            *TRANSPORT_SEAM,
            "cyberun._bodies",
            "cyberun._parameters",
            "cyberun._pipeline",
            "cyberun.retry",
        ],
        [],
    ),
    "cyberun._pipeline": (
        [*LEAVES, *MODELS, *TRANSPORT_SEAM, "cyberun._bodies", "cyberun.retry"],
        [],
    ),
    "cyberun._bodies": ([*LEAVES, *TRANSPORT_SEAM, "cyberun._parameters"], []),
    "cyberun._parameters": ([*LEAVES, "cyberun.models"], []),
    "cyberun._uploads": ([*LEAVES, "cyberun.models"], []),
    # The record of submitted runs, kept by the facade and read by the CLI.
    "cyberun._record": ([*LEAVES, "cyberun.models", "cyberun.strategies._destination"], []),
    "cyberun.webhooks": ([*LEAVES, *MODELS], []),
    "cyberun.retry": (LEAVES, TRANSPORT_SEAM),
    # Models and the one converter: no parser, no transport, no API.
    "cyberun._convert": ([*LEAVES, "cyberun.models"], []),
    "cyberun.models": (LEAVES, []),
    # Transports never know about tasks.
    "cyberun.transports*": ([*LEAVES, "cyberun.transports.*"], ["cyberun.transports.*"]),
    # The parser imports nothing but errors; errors import nothing (the
    # types of their attributes only for annotations).
    "cyberun.sse": (["cyberun.errors"], []),
    "cyberun.errors": ([], ["cyberun.models", "cyberun.sse"]),
    "cyberun._names": ([], []),
    "cyberun._redact": ([], []),
    "cyberun._terminal": ([], []),
    "cyberun._url": ([], []),
    "cyberun._version": ([], []),
    # RecordingTransport wraps a transport: the transport seam, nothing else.
    "cyberun.testing._recording": (
        ["cyberun.testing.*", *TRANSPORT_SEAM],
        ["cyberun.testing.*", *TRANSPORT_SEAM],
    ),
    # The emulator writes wire JSON itself: none of the SDK, models least of all.
    "cyberun.testing*": (["cyberun.testing.*"], ["cyberun.testing.*"]),
}

# Third-party libraries that are optional (or needed only on some paths):
# never imported when a module is, only inside the functions that use them.
LAZY_ONLY = {"cattrs", "requests", "urllib3", "typing_extensions", "rich", "tqdm"}
# Modules that may import only the standard library besides their cyberun rule.
STANDARD_LIBRARY_ONLY = {"cyberun.sse", "cyberun.errors"}


class Import(NamedTuple):
    module: str  # the importing module
    target: str  # the imported module, absolute
    line: int
    type_checking: bool  # under `if TYPE_CHECKING:`
    in_function: bool  # inside a function body (imported when called)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool, known: Set[str]) -> Iterator[Import]:
    """Every import in ``source`` (the module ``module``), with where it stands."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]

    def targets(node: ast.AST) -> List[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        assert isinstance(node, ast.ImportFrom)
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            parent = ".".join(base + ([node.module] if node.module else []))
        else:
            parent = node.module or ""
        # `from x import y` imports the module x.y when there is one.
        found = [f"{parent}.{alias.name}" for alias in node.names]
        found = [name for name in found if name in known]
        return found if node.module is None and found else [parent, *found]

    def walk(node: ast.AST, type_checking: bool, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in targets(child):
                    yield Import(module, target, child.lineno, type_checking, in_function)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    yield from walk(_wrap(statement), True, in_function)
                for statement in child.orelse:
                    yield from walk(_wrap(statement), type_checking, in_function)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from walk(child, type_checking, True)
            else:
                yield from walk(child, type_checking, in_function)

    yield from walk(tree, False, False)


def _wrap(statement: ast.stmt) -> ast.Module:
    return ast.Module(body=[statement], type_ignores=[])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def rule_for(module: str) -> Tuple[List[str], List[str]]:
    for pattern, rule in RULES.items():
        if fnmatchcase(module, pattern):
            return rule
    raise LookupError(f"{module} has no rule in the import contract: place it in the layering")


def violations(found: Iterator[Import]) -> List[str]:
    """What breaks the contract among ``found``, one line each."""
    problems = []
    for item in found:
        top = item.target.split(".")[0]
        where = f"{item.module}:{item.line} imports {item.target}"
        if top == "cyberun":
            if item.target == item.module:
                continue
            allowed, for_types = rule_for(item.module)
            patterns = allowed + for_types if item.type_checking else allowed
            if not any(fnmatchcase(item.target, pattern) for pattern in patterns):
                kind = " under TYPE_CHECKING" if item.type_checking else ""
                problems.append(f"{where}{kind}: not allowed by its rule")
        elif top in LAZY_ONLY and not (item.in_function or item.type_checking):
            problems.append(f"{where} at import time: import it inside the function using it")
        elif item.module in STANDARD_LIBRARY_ONLY and not _in_standard_library(top):
            problems.append(f"{where}: only the standard library is allowed there")
    return problems


def _in_standard_library(name: str) -> bool:
    if name == "__future__":
        return True
    spec = importlib.util.find_spec(name)
    if spec is None:
        return False
    if spec.origin in (None, "built-in", "frozen"):
        return True
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    origin = Path(spec.origin).resolve()
    return stdlib in origin.parents and "site-packages" not in origin.parts


def package_modules() -> Dict[str, Path]:
    return {module_name(path, PACKAGE): path for path in sorted(PACKAGE.rglob("*.py"))}


def package_imports() -> Iterator[Import]:
    modules = package_modules()
    known = set(modules)
    for module, path in modules.items():
        yield from imports_of(path.read_text("utf-8"), module, path.name == "__init__.py", known)


# --- the package keeps its layering ----------------------------------------------


def test_every_module_has_a_rule() -> None:
    missing = []
    for module in package_modules():
        try:
            rule_for(module)
        except LookupError as exc:
            missing.append(str(exc))
    assert not missing


def test_the_package_follows_the_import_contract() -> None:
    assert violations(package_imports()) == []


def test_the_walk_sees_the_imports_it_must_judge() -> None:
    # A check that sees nothing passes everything: make sure it sees the
    # package's real imports, at each place they can stand.
    found = list(package_imports())
    at = {(item.module, item.target): item for item in found}
    assert not at["cyberun.sse", "cyberun.errors"].type_checking
    assert at["cyberun.errors", "cyberun.models"].type_checking
    assert at["cyberun.strategies.follow", "cyberun.sse"].in_function is False
    assert any(item.target.startswith("requests") and item.in_function for item in found)
    assert ("cyberun._convert", "cyberun.sse") not in at  # the models do not need the parser


# --- the check itself fails where it must ----------------------------------------------


def _check(source: str, module: str, is_package: bool = False) -> List[str]:
    known = set(package_modules())
    return violations(imports_of(source, module, is_package, known))


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("cyberun._convert", "from .sse import ServerSentEvent"),
        ("cyberun.models", "from . import _convert"),
        ("cyberun.sse", "from .models import Task"),
        ("cyberun.sse", "import attrs"),
        ("cyberun.errors", "from .models import Task"),
        ("cyberun.strategies.follow", "from ..transports.requests import RequestsTransport"),
        ("cyberun.strategies.driver", "from ..transports import urllib3"),
        ("cyberun.transports.urllib", "from ..models import Task"),
        ("cyberun.api", "from .client import Client"),
        ("cyberun.client", "from .cli import main"),
        ("cyberun.testing._world", "from ..models import Task"),
        ("cyberun.transports.requests", "import requests"),
        ("cyberun.client", "def f():\n    import cyberun.cli"),
    ],
)
def test_an_import_against_the_layering_is_reported(module: str, source: str) -> None:
    assert _check(source, module)


def test_type_checking_imports_have_their_own_rule() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .models import Task\n"
    assert _check(source, "cyberun.errors") == []  # allowed for annotations there
    assert _check(source.replace("if TYPE_CHECKING:\n    ", ""), "cyberun.errors") != []
    assert _check(source, "cyberun.sse") != []  # not even for annotations in the parser
    lazy = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import requests\n"
    assert _check(lazy, "cyberun.transports.requests") == []


def test_allowed_imports_pass() -> None:
    assert _check("from .errors import StreamError", "cyberun.sse") == []
    assert _check("from itertools import repeat", "cyberun.sse") == []
    assert _check("def f():\n    import requests", "cyberun.transports.requests") == []
    assert _check("from . import _base", "cyberun.transports", is_package=True) == []


def test_a_module_without_a_rule_fails() -> None:
    with pytest.raises(LookupError, match="no rule"):
        _check("from .errors import CyberunError", "cyberun.brand_new")
