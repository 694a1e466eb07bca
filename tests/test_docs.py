"""Every code example in the documentation runs, against the emulator.

The pages under ``docs/content``, the README, and the docstrings rendered into the API
reference are scanned for fenced code blocks:

- ``python`` blocks run in order, one namespace per page (so a page can
  build on its earlier blocks), in a fresh folder, with ``CYBERUN_API_KEY``
  and ``CYBERUN_BASE_URL`` pointing at an emulator started for the page;
- ``console`` blocks run each ``$ cyberun ...`` line through the CLI and
  check its exit status;
- a comment ``<!-- docs-test: ... -->`` just before a block changes that:
  ``compile-only (why)`` only compiles it (it needs Flask, Celery...),
  ``requires MODULE`` runs it only where MODULE is installed, ``pytest``
  runs it as a test file with pytest, ``exit N`` expects that exit status,
  ``demo-output`` compares the block with a real run of ``cyberun demo``.

``--8<-- "path"`` lines are expanded as the docs build expands them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import re
import shlex
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import attrs
import pytest

import cyberun
import cyberun.sse
import cyberun.testing
import cyberun.webhooks
from cyberun import cli
from cyberun.testing import CyberunEmulator

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "content"
PAGES = sorted(DOCS.rglob("*.md"))
README = ROOT / "README.md"
FENCE = re.compile(
    r"(?:<!-- docs-test: (?P<directive>[^>]*?) -->\n)?"
    r"(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```",
    re.DOTALL | re.MULTILINE,
)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$', re.MULTILINE)


@attrs.frozen
class Block:
    """One fenced code block of a page or a docstring."""

    source: str
    line: int
    lang: str
    body: str
    directive: str = ""

    @property
    def label(self) -> str:
        return f"{self.source}:{self.line}"


def expand_snippets(body: str) -> str:
    def include(match: re.Match) -> str:  # type: ignore[type-arg]
        for base in (DOCS, ROOT):
            path = base / match.group("path")
            if path.exists():
                return path.read_text(encoding="utf-8")
        raise AssertionError(f"snippet {match.group('path')} not found")

    return SNIPPET.sub(include, body)


def blocks_in(text: str, source: str) -> List[Block]:
    found = []
    for match in FENCE.finditer(text):
        body = textwrap.dedent(match.group("body"))
        found.append(
            Block(
                source=source,
                line=text.count("\n", 0, match.start("lang")) + 1,
                lang=match.group("lang"),
                body=expand_snippets(body),
                directive=(match.group("directive") or "").strip(),
            )
        )
    return found


def page_blocks(page: Path) -> List[Block]:
    return blocks_in(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))


def docstring_blocks() -> List[Block]:
    """Examples in the docstrings the API reference renders."""
    objects: List[Any] = [cyberun, cyberun.sse, cyberun.webhooks, cyberun.testing]
    objects += [getattr(cyberun, name) for name in cyberun.__all__]
    objects += [getattr(cyberun.testing, name) for name in cyberun.testing.__all__]
    found = []
    for obj in objects:
        doc = inspect.getdoc(obj) if inspect.ismodule(obj) or callable(obj) else None
        if doc:
            name = getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))
            found += blocks_in(doc, f"docstring of {name}")
    return found


# -- running ------------------------------------------------------------------------


@pytest.fixture
def docs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CyberunEmulator]:
    """An emulator for one page, its credentials in the environment, a fresh folder."""
    with CyberunEmulator(time_scale=0.02) as server:
        monkeypatch.chdir(tmp_path)
        for name in ("CYBERUN_API_KEY", "CYBERUN_BASE_URL", "CYBERUN_TEAM_ID"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CYBERUN_API_KEY", server.api_key)
        monkeypatch.setenv("CYBERUN_BASE_URL", server.base_url)
        monkeypatch.setenv("CYBERUN_DEVICE_KEY", server.device_key)
        monkeypatch.setenv("CYBERUN_SESSION_JWT", server.jwt)
        monkeypatch.setenv("CYBERUN_TEAM_ID", server.team_id)
        yield server


def run_python(block: Block, namespace: Dict[str, Any]) -> None:
    code = compile(block.body, block.label, "exec")
    if block.directive.startswith("compile-only"):
        return
    exec(code, namespace)


def run_console(block: Block, task_id: str) -> None:
    expected = 0
    if block.directive.startswith("exit "):
        expected = int(block.directive.split()[1])
    for line in block.body.splitlines():
        if not line.startswith("$ cyberun "):
            continue
        argv = shlex.split(line[len("$ cyberun ") :].replace('"$TASK_ID"', task_id))
        out, err = io.StringIO(), io.StringIO()
        code = cli.main(argv, stdout=out, stderr=err)
        assert code == expected, f"{block.label}: `{line}` exited {code}\n{err.getvalue()}"


def run_pytest(block: Block, folder: Path) -> None:
    test_file = folder / "test_from_docs.py"
    test_file.write_text(block.body, encoding="utf-8")
    expected = len(re.findall(r"^def test_", block.body, re.MULTILINE))
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"{expected} passed" in completed.stdout, completed.stdout


def missing_requirement(block: Block) -> Optional[str]:
    if block.directive.startswith("requires "):
        module = block.directive.split()[1]
        if importlib.util.find_spec(module) is None:
            return module
    return None


def run_page(blocks: List[Block], server: CyberunEmulator, folder: Path) -> int:
    """Run a page's blocks in order; return how many ran (not only compiled)."""
    namespace: Dict[str, Any] = {"__name__": "docs_example"}
    task_id = ""
    ran = 0
    for block in blocks:
        if missing_requirement(block):
            continue  # the zero-dependency environment: checked where it is installed
        if block.lang == "python" and block.directive == "pytest":
            run_pytest(block, folder)
        elif block.lang == "python":
            with contextlib.redirect_stdout(io.StringIO()):
                run_python(block, namespace)
        elif block.lang == "console":
            if not task_id:
                task_id = server.create_task("text-to-image", {"prompt": "docs"})
            run_console(block, task_id)
        else:
            continue
        ran += not block.directive.startswith("compile-only")
    return ran


@pytest.mark.parametrize(
    "page", [*PAGES, README], ids=[str(p.relative_to(ROOT)) for p in [*PAGES, README]]
)
def test_every_example_on_the_page_runs(
    page: Path, docs_env: CyberunEmulator, tmp_path: Path
) -> None:
    blocks = page_blocks(page)
    run_page(blocks, docs_env, tmp_path)


def test_every_docstring_example_runs(docs_env: CyberunEmulator, tmp_path: Path) -> None:
    blocks = [b for b in docstring_blocks() if b.lang == "python"]
    assert len(blocks) >= 5
    for block in blocks:
        optional = ("responses", "requests", "urllib3", "tqdm")
        if any(f"import {name}" in block.body and not find_spec(name) for name in optional):
            continue  # an example of an optional library's use, where it is not installed
        run_page([block], docs_env, tmp_path)  # each docstring example stands alone


# -- the harness itself ------------------------------------------------------------------


def test_the_harness_finds_the_examples() -> None:
    blocks = [b for page in PAGES for b in page_blocks(page)]
    python = [b for b in blocks if b.lang == "python"]
    assert len(python) >= 40
    assert {b.directive.split(" ")[0] for b in blocks} >= {
        "",
        "compile-only",
        "requires",
        "pytest",
        "exit",
        "demo-output",
    }
    assert any("def app(environ, start_response)" in b.body for b in python)  # a snippet


def test_a_failing_example_fails_the_page(docs_env: CyberunEmulator, tmp_path: Path) -> None:
    text = "```python\nimport cyberun\nwith cyberun.Client() as c:\n    c.get_task('nope')\n```\n"
    with pytest.raises(cyberun.NotFound):
        run_page(blocks_in(text, "inline"), docs_env, tmp_path)
    text = "<!-- docs-test: exit 0 -->\n```console\n$ cyberun run always-fails --wait\n```\n"
    with pytest.raises(AssertionError, match="exited 1"):
        run_page(blocks_in(text, "inline"), docs_env, tmp_path)


def test_compile_only_blocks_still_compile() -> None:
    text = "<!-- docs-test: compile-only (demo) -->\n```python\ndef broken(:\n```\n"
    with pytest.raises(SyntaxError):
        run_python(blocks_in(text, "inline")[0], {})


# -- facts the docs state ------------------------------------------------------------------

DEMO_NOISE = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"127\.0\.0\.\d+:\d+"), "<host>"),
    (re.compile(r"localhost:\d+"), "<host>"),
    (re.compile(r"^\[\d\d:\d\d\.\d\]", re.MULTILINE), "[<time>]"),
    (re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(\+00:00|Z)"), "<date>"),
    (re.compile(r"in /\S+"), "in <dir>"),
    (re.compile(r"saved /\S+/"), "saved <dir>/"),
]


def normalise(text: str) -> List[str]:
    for pattern, replacement in DEMO_NOISE:
        text = pattern.sub(replacement, text)
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def test_the_documented_demo_output_matches_a_real_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documented = [
        block
        for page in PAGES
        for block in page_blocks(page)
        if block.directive == "demo-output"
        or (block.lang == "text" and "Starting the local Cyberun emulator" in block.body)
    ]
    assert len(documented) >= 2  # the quickstart and the CLI guide
    out = io.StringIO()
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(out):
        # Real time, as documented: faster, a loaded machine may connect after "pending".
        code = cli.main(["demo"], stdout=out, stderr=out)
    assert code == 0, out.getvalue()
    real = normalise(out.getvalue())
    for block in documented:
        position = 0
        for line in normalise(block.body):
            if line == "...":
                continue
            assert line in real[position:], f"{block.label}: {line!r} not in the demo's output"
            position = real.index(line, position) + 1


def test_the_fault_table_lists_every_fault() -> None:
    text = (DOCS / "guides" / "testing.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \| [a-z, ]+ \|", text, re.MULTILINE))
    assert documented == set(cyberun.testing.FAULTS)
    for route in cyberun.testing.ROUTES:
        assert f"`{route}`" in text


def test_every_public_name_is_in_the_api_reference() -> None:
    reference = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"^::: ([\w.]+)", reference, re.MULTILINE))
    documented |= set(re.findall(r"^        - (\w+)$", reference, re.MULTILINE))  # members lists
    for name in cyberun.__all__:
        if name == "__version__":
            continue
        module = getattr(cyberun, name).__module__ if hasattr(cyberun, name) else ""
        assert f"cyberun.{name}" in documented or (
            module == "cyberun.sse" and name in documented
        ), f"cyberun.{name} is not in the API reference"
    for name in cyberun.testing.__all__:
        assert f"cyberun.testing.{name}" in documented, name


def test_every_page_is_in_the_navigation() -> None:
    config = (ROOT / "docs" / "mkdocs.yml").read_text(encoding="utf-8")
    for page in PAGES:
        assert str(page.relative_to(DOCS)) in config, f"{page} is not in mkdocs.yml's nav"
