"""Local validation of run parameters against a workflow's parameter definitions.

The API documents each workflow's ``parameters`` (``ParameterDef``): required
keys, number bounds, select options. Checking them before submitting turns a
round trip (or a billed task that fails on the GPU) into one
[`ParameterError`][cyberun.ParameterError] that lists every problem at once.
"""

from __future__ import annotations

import math
from typing import Any, List, Mapping, Sequence, Tuple

from .errors import ParameterError
from .models import ParameterDef, Workflow

__all__ = ["check_parameters", "non_finite_paths", "raise_for_parameters"]


def check_parameters(workflow: Workflow, parameters: Mapping[str, Any]) -> List[str]:
    """Check run parameters against a workflow's definitions; return every problem found.

    Checks that required keys are present, that no unknown key is given,
    that numbers are numbers within ``min``/``max``, booleans are booleans,
    strings and file keys are strings, and select values are among the
    options. An empty list means the parameters look valid. A workflow that
    documents no parameters at all is not checked for unknown keys: an empty
    list says nothing about what it takes.
    """
    problems: List[str] = []
    definitions = {p.key: p for p in workflow.parameters}
    for key in parameters if definitions else ():
        if key not in definitions:
            known = ", ".join(sorted(definitions)) or "none"
            problems.append(f"unknown parameter {key!r} (this workflow takes: {known})")
    for key, definition in definitions.items():
        if key not in parameters:
            if definition.required and definition.default is None:
                problems.append(f"missing required parameter {key!r}")
            continue
        problems.extend(_check_value(definition, parameters[key]))
    return problems


def _check_value(definition: ParameterDef, value: Any) -> List[str]:
    key = definition.key
    kind = str(definition.type) if definition.type is not None else ""
    if value is None:
        return [f"parameter {key!r} is null"] if definition.required else []
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"parameter {key!r} must be a number, got {value!r:.40}"]
        if definition.min is not None and value < definition.min:
            return [f"parameter {key!r} is {value}, below its minimum {definition.min:g}"]
        if definition.max is not None and value > definition.max:
            return [f"parameter {key!r} is {value}, above its maximum {definition.max:g}"]
    elif kind == "boolean":
        if not isinstance(value, bool):
            return [f"parameter {key!r} must be true or false, got {value!r:.40}"]
    elif kind in ("string", "file"):
        if not isinstance(value, str):
            return [f"parameter {key!r} must be a string, got {type(value).__name__}"]
    elif kind == "select":
        allowed = definition.option_values()
        if allowed and value not in allowed:
            shown = ", ".join(repr(v) for v in allowed[:10])
            return [f"parameter {key!r} is {value!r:.40}, not one of its options ({shown})"]
    return []


def raise_for_parameters(
    workflow: Workflow, parameters: Mapping[str, Any], extra: Sequence[str] = ()
) -> None:
    """Raise [`ParameterError`][cyberun.ParameterError] listing every problem, if there is any.

    ``extra`` problems (found by checks of the caller's own) are listed too.
    """
    problems = check_parameters(workflow, parameters) + list(extra)
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        name = workflow.workflow_slug or workflow.id
        raise ParameterError(
            f"parameters for {name!r} have {count}: " + "; ".join(problems),
            problems=problems,
            workflow=name,
        )


def non_finite_paths(value: Any, path: str = "") -> List[Tuple[str, float]]:
    """Every NaN or infinite number in a JSON-able value, as ``(path, number)``.

    JSON has no NaN or infinity (``json.dumps`` would write invalid JSON), so
    such a parameter is refused locally with its path, for example
    ``parameters.cfg``.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return [(path or "the value", value)]
    found: List[Tuple[str, float]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.extend(non_finite_paths(item, f"{path}.{key}" if path else str(key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found.extend(non_finite_paths(item, f"{path}[{index}]"))
    return found
