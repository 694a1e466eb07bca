"""The ``cyberun`` command: run workflows, follow tasks and fetch results from a shell.

Built on [`cyberun.Client`][cyberun.Client] only. Exit codes:

====  ==========================================================
0     success (the task completed)
1     the task failed
2     usage or configuration error (bad arguments, no API key)
3     the task was cancelled
4     the wait timed out (the task keeps running on the server)
5     API or network error
130   interrupted (Ctrl-C); the task keeps running unless
      ``--cancel-on-interrupt``
143   terminated (SIGTERM), handled as Ctrl-C is: partial files removed
141   the reader of the output went away (``cyberun tasks | head -1``)
====  ==========================================================
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence

from ._version import __version__
from .errors import (
    ConfigurationError,
    CyberunError,
    ParameterError,
    TaskCancelled,
    TaskFailed,
    WaitStopped,
    WaitTimeout,
)

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

# Only what `cyberun --help` needs is imported at the top; the rest is imported
# where it is used, so that the help appears fast (benchmarks/import_time.py).

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_TIMEOUT = 4
EXIT_ERROR = 5
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader left

EPILOG = """\
exit codes: 0 completed, 1 task failed, 2 usage/configuration error,
3 cancelled, 4 wait timed out, 5 API/network error, 130 interrupted,
141 output pipe closed

credentials: CYBERUN_API_KEY (sk-, dk- or a session JWT), CYBERUN_TEAM_ID
(required with a JWT), CYBERUN_BASE_URL; or --api-key/--team-id/--base-url.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors exit with 2, on stderr
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


#: The options every command accepts, before or after its name, and their defaults.
#: argparse gives a subcommand's own defaults priority over the values parsed
#: before it, so each is declared with a suppressed default on the root parser
#: and on every subcommand, and the defaults are filled in once after parsing.
GLOBAL_DEFAULTS: Dict[str, Any] = {
    "api_key": None,
    "team_id": None,
    "base_url": None,
    "transport": "auto",
    "allow_insecure_http": False,
    "json": False,
    "debug": False,
}


def _global_options() -> _Parser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="API key (default: $CYBERUN_API_KEY); never echoed",
    )
    group.add_argument(
        "--team-id",
        default=argparse.SUPPRESS,
        help="team UUID, needed with a JWT (default: $CYBERUN_TEAM_ID)",
    )
    group.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        help="API host (default: $CYBERUN_BASE_URL or https://core.cyberun.cloud)",
    )
    group.add_argument(
        "--transport",
        choices=["auto", "requests", "urllib3", "urllib"],
        default=argparse.SUPPRESS,
        help="HTTP library (default: auto: requests, else urllib3, else the standard library)",
    )
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=argparse.SUPPRESS,
        help="allow a plain http:// base URL on a host that is not this machine "
        "(the key travels in clear)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="machine-readable output: one JSON object per line",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="debug logging (credentials redacted) and tracebacks on stderr",
    )
    return common


def _task_status(value: str) -> str:
    """An argparse type: a documented task status, or a usage error listing them."""
    from .models import TaskStatus

    if value not in TaskStatus._values:
        raise argparse.ArgumentTypeError(
            f"unknown status {value!r}; choose from {', '.join(TaskStatus._values)}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    common = _global_options()
    parser = _Parser(
        prog="cyberun",
        description="Run Cyberun Cloud workflows, follow tasks live, fetch their results.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"cyberun {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    follow = _Parser(add_help=False)
    follow.add_argument(
        "--no-stream", action="store_true", help="poll instead of streaming events"
    )
    follow.add_argument(
        "--timeout", type=float, help="give up waiting after this many seconds (exit 4)"
    )
    follow.add_argument(
        "--cancel-on-interrupt", action="store_true", help="cancel the task on Ctrl-C"
    )
    follow.add_argument(
        "--cancel-on-timeout", action="store_true", help="cancel the task when --timeout passes"
    )
    follow.add_argument(
        "--download", metavar="DIR", help="download the outputs into DIR when done"
    )
    follow.add_argument(
        "--overwrite", action="store_true", help="replace existing files when downloading"
    )
    follow.add_argument(
        "--no-run-record",
        dest="run_record",
        action="store_false",
        help="with --download, do not write cyberun-task.json beside the files",
    )
    follow.add_argument(
        "--show-urls",
        action="store_true",
        help="print presigned download URLs (also in --json output)",
    )

    def command(
        name: str, help: str, examples: str, follows: bool = False
    ) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            parents=[common, follow] if follows else [common],
            help=help,
            description=help,
            epilog="examples:\n" + examples + "\n\n" + EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    run = command(
        "run",
        "start a task; with --wait, follow it live",
        "  cyberun run text-to-image -p prompt='a lighthouse at dusk' -p steps=30 --wait\n"
        "  cyberun run text-to-image@2 --params-file params.json --wait --download out/\n"
        "  cyberun run gaussian-splat --file images=photos.zip --wait --json",
        follows=True,
    )
    run.add_argument("workflow", metavar="WORKFLOW", help="workflow id, slug, or slug@version")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='a parameter; VALUE is JSON if it parses (20, true, "20"), else text',
    )
    run.add_argument("--params-file", metavar="FILE", help="a JSON object of parameters")
    run.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="upload PATH for parameter KEY (a folder is sent as a zip)",
    )
    run.add_argument("--wait", action="store_true", help="follow the task until it ends")
    run.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="skip checking the parameters against the workflow's definitions "
        "(checked by default, before anything is uploaded or started)",
    )

    watch = command(
        "watch",
        "follow a task live until it ends",
        "  cyberun watch 019abc12-...\n  cyberun watch 019abc12-... --json",
        follows=True,
    )
    watch.add_argument("task_id", metavar="TASK_ID")
    watch.add_argument(
        "--record-stream",
        metavar="FILE",
        help="also record what the server sends (event stream bytes with their timing, "
        "task and result JSON; credentials and signatures removed) to FILE, for "
        "CyberunEmulator.add_recording",
    )

    status = command(
        "status", "show a task's status and metadata", "  cyberun status 019abc12-..."
    )
    status.add_argument("task_id", metavar="TASK_ID")

    result = command(
        "result",
        "show a task's result; optionally download its files",
        "  cyberun result 019abc12-... --download out/",
    )
    result.add_argument("task_id", metavar="TASK_ID")
    result.add_argument("--download", metavar="DIR", help="download the outputs into DIR")
    result.add_argument("--overwrite", action="store_true", help="replace existing files")
    result.add_argument(
        "--no-run-record",
        dest="run_record",
        action="store_false",
        help="with --download, do not write cyberun-task.json beside the files",
    )
    result.add_argument(
        "--show-urls", action="store_true", help="print presigned download URLs (also in --json)"
    )

    cancel = command(
        "cancel", "cancel a task (a no-op once it has ended)", "  cyberun cancel 019abc12-..."
    )
    cancel.add_argument("task_id", metavar="TASK_ID")

    tasks = command(
        "tasks",
        "list tasks, newest first",
        "  cyberun tasks --status running\n  cyberun tasks --limit 5 --json",
    )
    tasks.add_argument(
        "--status", type=_task_status, help="only tasks in this status (pending, running, ...)"
    )
    tasks.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")

    workflows = command(
        "workflows",
        "list workflows, or show one's parameters",
        "  cyberun workflows\n  cyberun workflows text-to-image",
    )
    workflows.add_argument(
        "slug", nargs="?", metavar="SLUG", help="a workflow id, slug or slug@version"
    )

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run the whole job on the built-in local emulator (no account, no network)",
        description="Start the local emulator, run a sample workflow, show live progress, "
        "download the result, print where it is, stop the emulator.",
        epilog="examples:\n  cyberun demo\n  cyberun demo --dir out --workflow gaussian-splat",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--dir",
        default="cyberun-demo-output",
        help="where to save the result (default ./cyberun-demo-output)",
    )
    demo.add_argument(
        "--workflow",
        default="text-to-image",
        help="text-to-image, gaussian-splat, multi-output ...",
    )
    demo.add_argument(
        "--time-scale", type=float, default=1.0, help="emulated speed (0.1 = ten times faster)"
    )
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse a command line; global options may come before or after the command.

    Returns:
        The options, with every global option present (its default if not given)
        and ``command`` None when no command was given.
    """
    args = build_parser().parse_args(argv)
    for name, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


# --- output -------------------------------------------------------------------------------


class Output:
    """Writes either human text or JSON lines; errors go to stderr.

    Every line passes through ``visible`` (or, for JSON, ``visible_json``):
    server-provided text never reaches the terminal with its escape
    sequences live.
    """

    def __init__(self, as_json: bool, stdout: IO[str], stderr: IO[str]) -> None:
        self.as_json = as_json
        self.stdout = stdout
        self.stderr = stderr

    def json(self, payload: Any) -> None:
        import json

        from ._terminal import visible_json

        encoded = json.dumps(payload, default=str, ensure_ascii=False)
        self.stdout.write(visible_json(encoded) + "\n")
        self.stdout.flush()

    def text(self, line: str = "") -> None:
        from ._terminal import visible

        if not self.as_json:
            self.stdout.write(visible(line) + "\n")
            self.stdout.flush()

    def error(self, line: str) -> None:
        from ._terminal import visible

        self.stderr.write(f"cyberun: {visible(line)}\n")
        self.stderr.flush()


def _data(obj: Any) -> Any:
    from ._convert import unstructure

    return unstructure(obj)


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def typed_value(definition: Any, text: str) -> Any:
    """A ``-p`` value as the parameter's definition types it; the text itself otherwise.

    A number parameter gets an int or a float, a boolean one ``true``/``false``
    (also yes/no, on/off, 1/0), a select one the option whose text matches.
    Text that does not fit stays text, for validation to report (or, with
    ``--no-validate``, for the server to judge).
    """
    kind = str(definition.type) if definition is not None and definition.type else ""
    if kind == "number" and _NUMBER.match(text.strip()):
        number = float(text)
        if number.is_integer() and not any(c in text for c in ".eE"):
            return int(text)
        return number
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    if kind == "select":
        for option in definition.option_values():
            if str(option) == text:
                return option
    return text


def _parameters(args: argparse.Namespace, workflow: Any = None) -> Dict[str, Any]:
    """The run parameters from --params-file (JSON), -p (typed by ``workflow``) and --file."""
    import json
    from pathlib import Path

    params: Dict[str, Any] = {}
    if args.params_file:
        try:
            loaded = json.loads(Path(args.params_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read --params-file {args.params_file}: {exc}"
            ) from exc
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"--params-file {args.params_file} must hold a JSON object")
        params.update(loaded)
    definitions = {} if workflow is None else {p.key: p for p in workflow.parameters}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigurationError(f"-p expects KEY=VALUE, got {item!r}")
        definition = definitions.get(key)
        if definition is not None and definition.type == "file" and Path(value).is_file():
            raise ConfigurationError(
                f"-p {key}={value}: {key!r} is a file parameter; upload the local file with "
                f"--file {key}={value} (-p takes the file key of an earlier upload)"
            )
        params[key] = typed_value(definition, value)
    for item in args.file:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise ConfigurationError(f"--file expects KEY=PATH, got {item!r}")
        if not Path(path).exists():
            raise ConfigurationError(f"--file {key}: no such file or folder: {path}")
        params[key] = Path(path)
    return params


# --- commands -------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    import cyberun

    key = args.api_key or os.environ.get("CYBERUN_API_KEY")
    if not key:
        raise ConfigurationError(
            "no API key: set the CYBERUN_API_KEY environment variable (or pass --api-key)"
        )
    return cyberun.Client(
        key,
        team_id=args.team_id,
        base_url=args.base_url,
        transport=args.transport,
        allow_insecure_http=args.allow_insecure_http,
    )


def _follow(client: Any, task_id: str, args: argparse.Namespace, out: Output) -> int:
    from ._display import Progress

    # The id comes first, before any live bar: a user who closes the terminal
    # can re-attach with it.
    out.text(
        f"following task {task_id} (Ctrl-C stops following and the task keeps running; "
        f"re-attach with: cyberun watch {task_id})"
    )
    progress = None if out.as_json else Progress(out.stdout)

    from ._record import EventLog

    args.log = EventLog()  # the stage/message lines, for the run record

    def on_event(event: Any) -> None:
        args.log(event)
        if out.as_json:
            out.json(_data(event))
        elif progress is not None:
            progress.update(event)

    mode = "poll" if args.no_stream else "auto"
    try:
        try:
            result = client.wait(
                task_id,
                timeout=args.timeout,
                on_event=on_event,
                mode=mode,
                cancel_on_timeout=args.cancel_on_timeout,
            )
        finally:
            if progress is not None:
                progress.close()
    except KeyboardInterrupt as exc:
        if args.cancel_on_interrupt:
            client.cancel(task_id)
            out.error(f"interrupted; {_after_cancel(client, task_id)}")
        else:
            out.error(
                f"interrupted; task {task_id} keeps running on the server "
                f"(follow it again: cyberun watch {task_id}; stop it: cyberun cancel {task_id})"
            )
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    _show_result(client, result, args, out)
    return EXIT_OK


def _after_cancel(client: Any, task_id: str) -> str:
    """What a cancel did: the API answers success on a task that had already ended."""
    try:
        status = client.get_task(task_id).task_status
    except CyberunError:
        status = None
    if status == "cancelled":
        return f"task {task_id} was cancelled"
    if status in ("completed", "failed"):
        return (
            f"task {task_id} had already {status}, so nothing was cancelled "
            f"(its result: cyberun result {task_id})"
        )
    return f"cancel of task {task_id} requested (its status: cyberun status {task_id})"


def _show_result(client: Any, result: Any, args: argparse.Namespace, out: Output) -> None:
    from ._redact import redact_url

    files: List[Path] = []
    if getattr(args, "download", None):
        from ._record import RECORD_NAME

        record = getattr(args, "run_record", True)
        files = client.download(
            result,
            args.download,
            overwrite=getattr(args, "overwrite", False),
            reserve=[RECORD_NAME] if record else [],
        )
        if record:
            keys = [key for key, _ in result.urls()]
            log = getattr(args, "log", None)
            client.write_run_record(
                getattr(args, "handle", None) or client.task(result.id),
                args.download,
                list(zip(keys, files)),
                [] if log is None else log.lines,
                workflow=getattr(args, "workflow", None),
            )
    show_urls = getattr(args, "show_urls", False)
    if out.as_json:
        payload = {"type": "result", **_data(result)}
        if not show_urls:  # the signature is a bearer credential for the file
            if payload.get("download_url"):
                payload["download_url"] = redact_url(payload["download_url"])
            if payload.get("download_urls"):
                payload["download_urls"] = {
                    key: redact_url(url) for key, url in payload["download_urls"].items()
                }
        if files:
            payload["files"] = [str(p) for p in files]
        out.json(payload)
        return
    out.text(f"task {result.id}: {result.task_status or 'completed'}")
    for key, url in result.urls():
        where = url if show_urls else "(presigned link hidden; --show-urls)"
        out.text(f"  output {key or 'primary'}: {where}")
    if result.expires_at is not None and result.urls():
        out.text(f"  links expire at {result.expires_at.isoformat()}")
    for path in files:
        out.text(f"  saved {path}")


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    # Options that only mean something while following imply --wait.
    args.wait = args.wait or bool(args.download) or args.timeout is not None
    if args.download:  # before a billed task starts, not after it ran
        from .strategies._destination import check_destination

        check_destination(args.download, overwrite=args.overwrite)
    client = _client(args)
    with client:
        workflow = None
        if args.param:  # -p values are typed by the definitions, even with --no-validate
            try:
                workflow = client._workflow_definition(args.workflow)
            except CyberunError as exc:
                from .client import _with_message

                raise _with_message(
                    exc,
                    f"{exc} (while fetching the parameter definitions of {args.workflow!r} to "
                    "type the -p values; give typed JSON values with --params-file instead)",
                ) from exc
        task = client.run(args.workflow, _parameters(args, workflow), validate=args.validate)
        args.handle = task  # it knows the inputs it uploaded, for the run record
        if not args.wait:
            if out.as_json:
                out.json({"task_id": task.id})
            else:
                out.text(task.id)
            return EXIT_OK
        return _follow(client, task.id, args, out)


def cmd_watch(args: argparse.Namespace, out: Output) -> int:
    if args.record_stream:
        from .testing import RecordingTransport
        from .transports import transport_by_name

        args.transport = RecordingTransport(transport_by_name(args.transport), args.record_stream)
    with _client(args) as client:
        return _follow(client, args.task_id, args, out)


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        task = client.get_task(args.task_id)
    if out.as_json:
        out.json(_data(task))
        return EXIT_OK
    out.text(f"task      {task.id}")
    out.text(f"status    {task.task_status}")
    for label, value in (
        ("workflow", task.workflow_id),
        ("created", task.created_at),
        ("started", task.started_at),
        ("ended", task.completed_at),
        ("gpu", task.gpu_type),
        ("agent", task.agent_id),
        ("error", task.task_error),
    ):
        if value:
            out.text(f"{label:<9} {value}")
    return EXIT_OK


def cmd_result(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        result = client.get_result(args.task_id)
        if result.task_status == "failed":
            raise TaskFailed(
                f"task {result.id} failed: {result.task_error}",
                task_id=result.id,
                error=result.task_error,
            )
        if result.task_status == "cancelled":
            raise TaskCancelled(f"task {result.id} was cancelled", task_id=result.id)
        _show_result(client, result, args, out)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        client.cancel(args.task_id)
        task = client.get_task(args.task_id)
    if out.as_json:
        out.json(_data(task))
    else:
        out.text(f"task {task.id}: {task.task_status}")
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace, out: Output) -> int:
    if args.limit < 1:
        raise ConfigurationError("--limit must be at least 1")
    with _client(args) as client:
        for task in client.list_tasks(
            args.status, per_page=min(args.limit, 100), limit=args.limit
        ):
            if out.as_json:
                out.json(_data(task))
            else:
                created = task.created_at.strftime("%Y-%m-%d %H:%M") if task.created_at else ""
                out.text(f"{task.id}  {task.task_status or ''!s:<12} {created}")
    return EXIT_OK


def cmd_workflows(args: argparse.Namespace, out: Output) -> int:
    with _client(args) as client:
        if args.slug:
            workflow = client.get_workflow(args.slug)
            if out.as_json:
                out.json(_data(workflow))
                return EXIT_OK
            out.text(
                f"{workflow.workflow_slug}@{workflow.version}  {workflow.display_name}  "
                f"({workflow.workflow_status}, {workflow.tool_type})"
            )
            if workflow.description:
                out.text(f"  {workflow.description}")
            out.text("parameters:")
            for p in workflow.parameters:
                flags = ["required"] if p.required else []
                if p.default is not None:
                    flags.append(f"default {p.default!r}")
                if p.min is not None or p.max is not None:
                    flags.append(
                        f"range {'' if p.min is None else p.min}..{'' if p.max is None else p.max}"
                    )
                if p.option_values():
                    flags.append("one of " + ", ".join(map(str, p.option_values())))
                out.text(f"  {p.key:<12} {p.type or ''!s:<8} {'; '.join(flags)}")
            return EXIT_OK
        for workflow in client.list_workflows():
            if out.as_json:
                out.json(_data(workflow))
            else:
                out.text(
                    f"{workflow.workflow_slug or workflow.id:<20} v{workflow.version}  "
                    f"{workflow.display_name}"
                )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    import tempfile
    from pathlib import Path

    import cyberun
    from cyberun.testing import CyberunEmulator

    inputs: Dict[str, Any] = {
        "text-to-image": {"prompt": "a lighthouse at dusk, oil painting"},
        "multi-output": {"prompt": "three foxes"},
    }
    unused = [
        flag
        for flag, value in (
            ("--api-key", args.api_key),
            ("--team-id", args.team_id),
            ("--base-url", args.base_url),
        )
        if value is not None
    ]
    if unused:
        raise ConfigurationError(
            f"demo runs on its own local emulator and does not use {', '.join(unused)}"
        )
    folder = Path(args.dir).resolve()  # every path printed below is this absolute one
    out.text("Starting the local Cyberun emulator (no account, no network)...")
    with CyberunEmulator(time_scale=args.time_scale) as server:
        out.text(f"  emulator at {server.base_url}, storage at {server.storage_url}")
        with cyberun.Client(
            server.api_key, base_url=server.base_url, transport=args.transport
        ) as client:
            parameters = dict(inputs.get(args.workflow, {}))
            if args.workflow == "gaussian-splat":
                with tempfile.TemporaryDirectory() as scratch:
                    photos = Path(scratch) / "photos.zip"
                    photos.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip archive
                    parameters["images"] = photos
                    task = client.run(args.workflow, parameters)
            else:
                task = client.run(args.workflow, parameters)
            out.text(f"Running {args.workflow}: task {task.id}")
            follow_args = argparse.Namespace(
                no_stream=False,
                timeout=None,
                cancel_on_interrupt=True,
                cancel_on_timeout=False,
                download=str(folder),
                overwrite=True,
                show_urls=False,
            )
            code = _follow(client, task.id, follow_args, out)
    if code == EXIT_OK:
        out.text(f"Done. The result is in {folder}")
    return code


COMMANDS: Dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "run": cmd_run,
    "watch": cmd_watch,
    "status": cmd_status,
    "result": cmd_result,
    "cancel": cmd_cancel,
    "tasks": cmd_tasks,
    "workflows": cmd_workflows,
    "demo": cmd_demo,
}


#: Python keywords in the SDK's messages -> what the command line says instead.
CLI_TERMS: Dict[str, str] = {
    "overwrite=True": "--overwrite",
    "api_key=...": "--api-key (or the CYBERUN_API_KEY environment variable)",
    "team_id=...": "--team-id",
    "allow_insecure_http=True": "--allow-insecure-http",
    "validate=False": "--no-validate",
}
_PYTHON_TERM = re.compile("|".join(re.escape(term) for term in CLI_TERMS))


def cli_terms(message: str) -> str:
    """An SDK message with its Python keywords replaced by the flags that mean the same."""
    return _PYTHON_TERM.sub(lambda match: CLI_TERMS[match.group(0)], message)


def _base_url(args: argparse.Namespace) -> str:
    from .client import DEFAULT_BASE_URL

    return args.base_url or os.environ.get("CYBERUN_BASE_URL") or DEFAULT_BASE_URL


def _message(error: CyberunError, args: argparse.Namespace) -> str:
    """What the command prints for an SDK error: in CLI terms, with a next step."""
    from .errors import ConnectError, NotFound

    message = cli_terms(str(error))
    if isinstance(error, NotFound) and "/workflows/" in (error.url or ""):
        message += "; list the workflows you can run with: cyberun workflows"
    elif isinstance(error, ConnectError):
        message += (
            f"; is the API at {_base_url(args)}? Set CYBERUN_BASE_URL (or pass --base-url) "
            "to use another host"
        )
    return message


def exit_code_for(error: BaseException) -> int:
    """The exit code for an exception (see the module docstring)."""
    if isinstance(error, TaskFailed):
        return EXIT_FAILED
    if isinstance(error, TaskCancelled):
        return EXIT_CANCELLED
    if isinstance(error, WaitTimeout):
        return EXIT_TIMEOUT
    if isinstance(error, (ConfigurationError, ParameterError)):
        return EXIT_USAGE
    if isinstance(error, WaitStopped):
        return EXIT_INTERRUPTED
    return EXIT_ERROR


#: Optional dependency (the module that failed to import) -> the extra that installs it.
EXTRAS: Dict[str, str] = {"requests": "requests", "urllib3": "urllib3", "tqdm": "cli"}


def _missing_dependency(error: ImportError) -> Optional[str]:
    """One line naming the extra to install, for an optional dependency; else None."""
    module = (error.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    return f"the optional {module!r} package is not installed: pip install 'cyberun[{extra}]'"


def main(
    argv: Optional[Sequence[str]] = None,
    *,
    stdout: Optional[IO[str]] = None,
    stderr: Optional[IO[str]] = None,
) -> int:
    """Run the command line; returns the exit code.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        stdout: where output goes (default ``sys.stdout``).
        stderr: where errors go (default ``sys.stderr``).

    Returns:
        The exit status (see the module docstring).
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        return _main(argv, stdout, stderr)
    except BrokenPipeError:
        # The reader went away (`cyberun tasks --json | head -1`): end quietly,
        # as a command killed by SIGPIPE would. Point stdout at /dev/null so the
        # interpreter's final flush does not report the same broken pipe.
        if stdout is sys.stdout:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError):  # pragma: no cover - no file descriptor
                pass
        return EXIT_BROKEN_PIPE


def _print_traceback(stderr: IO[str]) -> None:
    """The current exception's traceback, secrets redacted and server text made visible."""
    import traceback

    from ._redact import redact_text
    from ._terminal import visible_lines

    stderr.write(visible_lines(redact_text(traceback.format_exc())))


def _main(argv: Optional[Sequence[str]], stdout: IO[str], stderr: IO[str]) -> int:
    args = parse_args(argv)
    if args.command is None:  # plain `cyberun`: say what it can do
        build_parser().print_help(stdout)
        return EXIT_OK
    out = Output(args.json, stdout, stderr)
    with _terminate_as_interrupt():
        return _run_command(args, out, stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (partial downloads removed, the task id printed)."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises `Terminated` in the main thread."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_command(args: argparse.Namespace, out: Output, stderr: IO[str]) -> int:
    if args.debug:
        import logging

        from ._logging import enable

        enable(logging.DEBUG, stderr)
    try:
        return COMMANDS[args.command](args, out)
    except Terminated:
        out.error("terminated")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except CyberunError as exc:
        if args.debug:
            _print_traceback(stderr)
        code = exit_code_for(exc)
        if args.json and isinstance(exc, (TaskFailed, TaskCancelled, WaitTimeout)):
            out.json(
                {
                    "type": "error",
                    "error": type(exc).__name__,
                    "message": str(exc),
                    "task_id": getattr(exc, "task_id", None),
                }
            )
        out.error(_message(exc, args))
        return code
    except ImportError as exc:
        line = _missing_dependency(exc)
        if line is None:
            raise
        if args.debug:
            _print_traceback(stderr)
        out.error(line)
        return EXIT_USAGE
    except ValueError as exc:  # an invalid id and the like
        out.error(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        out.error(f"{type(exc).__name__}: {exc}")
        return EXIT_ERROR
