"""Type-check the documentation's framework examples with mypy (run by ``tox -e type``).

The Flask, Django, Celery and Airflow examples cannot run in the suite (the
frameworks are not installed), so ``tests/test_docs.py`` only compiles
them. Here they are extracted into a scratch package and checked with mypy
against cyberun's own types: a renamed function or a wrong argument in an
example fails the build. The frameworks themselves are unknown to mypy
(``--ignore-missing-imports``), so they type as ``Any``.

    python tests/typecheck_docs.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from test_docs import PAGES, page_blocks


def main() -> int:
    blocks = [
        block
        for page in PAGES
        for block in page_blocks(page)
        if block.lang == "python" and block.directive.startswith("compile-only")
    ]
    if not blocks:
        print("no compile-only examples found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        package = Path(scratch) / "docs_examples"
        package.mkdir()
        (package / "__init__.py").write_text("")
        for number, block in enumerate(blocks):
            (package / f"example_{number}.py").write_text(f"# {block.label}\n{block.body}")
        config = Path(scratch) / "mypy.ini"
        config.write_text("[mypy]\n")
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--ignore-missing-imports",
            "--check-untyped-defs",
            "--python-version",
            "3.8",
            str(package),
        ]
        print(f"type-checking {len(blocks)} framework examples from the docs")
        return subprocess.call(command, cwd=scratch)


if __name__ == "__main__":
    sys.exit(main())
