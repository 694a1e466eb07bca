"""Running the cyberun command in process, for the CLI tests."""

from __future__ import annotations

import io
from typing import Tuple

from cyberun.cli import main


def cli(*args: str) -> Tuple[int, str, str]:
    """Run ``cyberun ARGS...`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()
