"""The parser's shape: one interpreter builds the events and moves the last event id.

A reader checks a rule of the standard in one place only if the code keeps
it in one place: these tests read ``cyberun/sse.py`` and fail when events
start being built, or the last event id moved, anywhere else.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import cyberun.sse

SOURCE = Path(cyberun.sse.__file__).read_text("utf-8")
INTERPRETER = "SSEParser._interpret"
# Names through which an event is built: the class, and tuple.__new__ bound to it.
BUILDERS = {"ServerSentEvent", "_new_event"}


def functions(tree: ast.AST) -> Iterator[Tuple[str, ast.AST]]:
    """Every function with its qualified name (``Class.method``)."""

    def walk(node: ast.AST, prefix: str) -> Iterator[Tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def annotation_nodes(tree: ast.AST) -> Set[int]:
    """The ids of every node inside an annotation (types are not builds)."""
    inside: Set[int] = set()
    for node in ast.walk(tree):
        annotations: List[ast.AST] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
            every += [a for a in (arguments.vararg, arguments.kwarg) if a]
            annotations += [a.annotation for a in every if a.annotation]
            annotations += [node.returns] if node.returns else []
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            inside.update(id(n) for n in ast.walk(annotation))
    return inside


def own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``function``'s body, not those of functions nested in it."""
    for child in ast.iter_child_nodes(function):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield child
        yield from own_nodes(child)


def builds_by_function(source: str) -> Dict[str, int]:
    """How many references to an event builder each function of ``source`` makes."""
    tree = ast.parse(source)
    skip = annotation_nodes(tree)
    found: Dict[str, int] = {}
    for name, function in functions(tree):
        count = sum(
            1
            for node in own_nodes(function)
            if isinstance(node, ast.Name)
            and node.id in BUILDERS
            and isinstance(node.ctx, ast.Load)
            and id(node) not in skip
        )
        if count:
            found[name] = count
    return found


def assignments_by_function(source: str, attribute: str) -> Set[str]:
    """The functions of ``source`` that assign ``<something>.attribute``."""
    found = set()
    for name, function in functions(ast.parse(source)):
        for node in own_nodes(function):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == attribute
                and isinstance(node.ctx, ast.Store)
            ):
                found.add(name)
    return found


def module_level_builds(source: str) -> List[int]:
    """Lines outside every function that build an event (the class itself aside)."""
    tree = ast.parse(source)
    skip = annotation_nodes(tree)
    inside = {id(n) for _, f in functions(tree) for n in ast.walk(f)}
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Name)
        and node.id in BUILDERS
        and isinstance(node.ctx, ast.Load)
        and id(node) not in skip | inside
    ]


def test_events_are_built_in_the_interpreter_only() -> None:
    assert set(builds_by_function(SOURCE)) == {INTERPRETER}
    assert module_level_builds(SOURCE) == []


def test_the_last_event_id_moves_in_the_interpreter_only() -> None:
    # __init__ sets the initial values; nothing but the interpreter changes them.
    for attribute in ("last_event_id", "retry"):
        assert assignments_by_function(SOURCE, attribute) == {"SSEParser.__init__", INTERPRETER}
    # The interpretation state (the buffers of 9.2.6, the last event ID
    # buffer among them): close() only discards the pending event (9.2.5,
    # "pending data must be discarded"), keeping the buffer's value.
    assert assignments_by_function(SOURCE, "_event") == {
        "SSEParser.__init__",
        INTERPRETER,
        "SSEParser.close",
    }


def test_iter_events_uses_only_the_parsers_public_methods() -> None:
    tree = ast.parse(SOURCE)
    (iter_events,) = [f for name, f in functions(tree) if name == "iter_events"]
    private = sorted(
        node.attr
        for node in ast.walk(iter_events)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "parser"
        and node.attr.startswith("_")
    )
    assert private == []


def test_the_structure_checks_fail_where_they_must() -> None:
    # The same checks on code that breaks the rule: a second builder, a
    # stray assignment, a build at module level, each found.
    stray = (
        "class SSEParser:\n"
        "    def _interpret(self):\n"
        "        self.last_event_id = ''\n"
        "        return _new_event(ServerSentEvent, ())\n"
        "    def feed(self, data: ServerSentEvent) -> ServerSentEvent:\n"
        "        self.last_event_id = 'x'\n"
        "        return [ServerSentEvent('message', 'x')]\n"
        "EMPTY = ServerSentEvent()\n"
    )
    assert builds_by_function(stray) == {INTERPRETER: 2, "SSEParser.feed": 1}
    assert assignments_by_function(stray, "last_event_id") == {INTERPRETER, "SSEParser.feed"}
    assert module_level_builds(stray) == [8]
