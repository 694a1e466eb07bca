"""The one cattrs converter: wire JSON to models and back, and SSE events to typed events.

Everything that knows the wire format lives here: timestamp parsing, strict
primitive checks, ``null`` handling, the ``raw`` copy of each object, and
the mapping from an SSE event to a [`TaskEvent`][cyberun.TaskEvent].
Every failure becomes a [`DecodeError`][cyberun.DecodeError].
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Type,
    TypeVar,
    Union,
    get_args,
    get_origin,
)

import attrs

from .errors import DecodeError
from .models import (
    CancelledEvent,
    CompletedEvent,
    ErrorEvent,
    FailedEvent,
    OpenEnum,
    ParameterDef,
    ProgressEvent,
    StatusEvent,
    Task,
    TaskEvent,
    TaskResult,
    TaskStatus,
    UnknownEvent,
    UploadTarget,
    Webhook,
    WebhookDelivery,
    Workflow,
)

if TYPE_CHECKING:  # pragma: no cover - cattrs itself is imported when first needed
    import cattrs

__all__ = [
    "decode_event",
    "format_timestamp",
    "get_converter",
    "loads",
    "parse_timestamp",
    "structure",
    "unstructure",
]

T = TypeVar("T")

# --- timestamps ------------------------------------------------------------------

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO 8601 / RFC 3339 timestamp into a timezone-aware ``datetime``.

    Accepts ``Z`` or a numeric offset, any number of fraction digits (Go
    sends nanoseconds; only microseconds are kept), a space instead of ``T``,
    and a date alone. A timestamp without an offset is taken as UTC.

    Raises:
        ValueError: ``value`` is not such a timestamp.
    """
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value[:40]!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    seconds = int(second or 0)
    if seconds == 60:  # a leap second: datetime cannot hold it
        seconds, micro = 59, 999_999
    tz = timezone.utc
    if offset and offset not in ("Z", "z", "UTC"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        if delta >= timedelta(hours=24):
            raise ValueError(f"timezone offset out of range: {value[:40]!r}")
        tz = timezone(sign * delta)
    return datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), seconds, micro, tz
    )


def format_timestamp(value: datetime) -> str:
    """Format a ``datetime`` as RFC 3339, with ``Z`` for UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# --- strict hooks ------------------------------------------------------------------


def _structure_str(value: Any, cls: Type[str]) -> str:
    # Registered for str, so cattrs also routes str subclasses here: the open
    # enumerations, which keep any string (known or not) as their own type.
    if isinstance(value, str):
        return value if cls is str else cls(value)
    raise TypeError(f"expected a string for {cls.__name__}, got {type(value).__name__}")


def _structure_int(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"expected an integer, got {value!r:.40}")


def _structure_float(value: Any, _: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {value!r:.40}")


def _structure_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {value!r:.40}")


def _structure_datetime(value: Any, _: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        return parse_timestamp(value)
    raise TypeError(f"expected a timestamp string, got {type(value).__name__}")


def _structure_lenient_datetime(value: Any, _: Any) -> Optional[datetime]:
    # In events, a timestamp only informs; the docs' own examples say "...".
    try:
        return _structure_datetime(value, None) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _is_list(tp: Any) -> bool:
    return get_origin(tp) in (list, List)


def _list_hook_factory(tp: Any, conv: cattrs.Converter) -> Callable[[Any, Any], List[Any]]:
    # cattrs would turn any iterable into a list ("gpu" -> ["g", "p", "u"]):
    # the wire must really hold an array.
    args = get_args(tp)
    item_type = args[0] if args else Any
    structure_item = conv.get_structure_hook(item_type) if item_type is not Any else None

    def structure_list(value: Any, _: Any) -> List[Any]:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        if structure_item is None:
            return list(value)
        return [structure_item(item, item_type) for item in value]

    return structure_list


def _structure_mapping(value: Any, _: Any) -> Dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"expected an object, got {type(value).__name__}")


# --- models ------------------------------------------------------------------------

_MODELS = (Task, TaskResult, ParameterDef, Workflow, UploadTarget, Webhook, WebhookDelivery)


def _is_nullable(tp: Any) -> bool:
    if tp is Any:
        return True
    return get_origin(tp) is Union and type(None) in get_args(tp)


def _model_structure_hook(conv: cattrs.Converter, cls: Type[Any]) -> Callable[[Any, Any], Any]:
    from cattrs.gen import make_dict_structure_fn, override

    attrs.resolve_types(cls)
    structure_fields = make_dict_structure_fn(cls, conv, raw=override(omit=True))
    # A null for a field that is not optional but has a default means "the
    # default" (a server that sends task_error: null still means no error).
    null_means_default = {
        field.name
        for field in attrs.fields(cls)
        if field.default is not attrs.NOTHING and not _is_nullable(field.type)
    }

    def structure_model(value: Any, _: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected an object for {cls.__name__}, got {type(value).__name__}")
        data = value
        if any(data.get(name, 0) is None for name in null_means_default):
            data = {k: v for k, v in value.items() if not (v is None and k in null_means_default)}
        obj = structure_fields(data, cls)
        object.__setattr__(obj, "raw", MappingProxyType(dict(value)))
        return obj

    return structure_model


def _model_unstructure_hook(conv: cattrs.Converter, cls: Type[Any]) -> Callable[[Any], Any]:
    from cattrs.gen import make_dict_unstructure_fn, override

    unstructure_fields = make_dict_unstructure_fn(cls, conv, raw=override(omit=True))

    def unstructure_model(obj: Any) -> Dict[str, Any]:
        # Unknown server fields survive a round trip; known fields win.
        result = dict(obj.raw)
        result.update(unstructure_fields(obj))
        return result

    return unstructure_model


# --- events ---------------------------------------------------------------------------

_EVENT_CLASSES: Dict[str, Type[TaskEvent]] = {
    cls.type: cls
    for cls in (
        StatusEvent,
        ProgressEvent,
        CompletedEvent,
        FailedEvent,
        CancelledEvent,
        ErrorEvent,
    )
}


def _event_structure_hook(conv: cattrs.Converter, cls: Type[Any]) -> Callable[[Any, Any], Any]:
    from cattrs.gen import make_dict_structure_fn, override

    attrs.resolve_types(cls)
    lenient = override(struct_hook=_structure_lenient_datetime)
    overrides: Dict[str, Any] = {"raw": override(omit=True), "event_id": override(omit=True)}
    for field in attrs.fields(cls):
        if field.type in (Optional[datetime], datetime):
            overrides[field.name] = lenient
    return make_dict_structure_fn(cls, conv, **overrides)


def _event_unstructure_hook(conv: cattrs.Converter, cls: Type[Any]) -> Callable[[Any], Any]:
    from cattrs.gen import make_dict_unstructure_fn, override

    return make_dict_unstructure_fn(cls, conv, raw=override(omit=True))


def _make_converter() -> cattrs.Converter:
    import cattrs

    conv = cattrs.Converter()
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_unstructure_hook(datetime, format_timestamp)
    conv.register_unstructure_hook(OpenEnum, str)
    conv.register_structure_hook_func(lambda t: t == Dict[str, Any], _structure_mapping)
    conv.register_structure_hook_factory(_is_list, _list_hook_factory)
    # Hooks are generated on the first use of each class (cattrs caches them),
    # not here: generating all of them made `from cyberun import Client` cost
    # several times `import cattrs`.
    models = frozenset(_MODELS)
    events = frozenset((*_EVENT_CLASSES.values(), UnknownEvent))
    conv.register_structure_hook_factory(
        models.__contains__, lambda cls: _model_structure_hook(conv, cls)
    )
    conv.register_unstructure_hook_factory(
        models.__contains__, lambda cls: _model_unstructure_hook(conv, cls)
    )
    conv.register_structure_hook_factory(
        events.__contains__, lambda cls: _event_structure_hook(conv, cls)
    )
    conv.register_unstructure_hook_factory(
        events.__contains__, lambda cls: _event_unstructure_hook(conv, cls)
    )
    return conv


# The converter, configured once, here; every layer uses this one. It is built
# (and cattrs imported) on first use, so that importing the SDK stays cheap.
_converter: Optional[cattrs.Converter] = None
_converter_lock = threading.Lock()
# What decoding raises for data that does not fit; cattrs' own error group joins
# once cattrs is imported.
_DECODE_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, TypeError, KeyError, AttributeError)


def get_converter() -> cattrs.Converter:
    """The one converter, built on first use."""
    global _converter, _DECODE_ERRORS
    conv = _converter
    if conv is None:
        with _converter_lock:
            if _converter is None:
                import cattrs

                _DECODE_ERRORS = (cattrs.BaseValidationError, *_DECODE_ERRORS)
                _converter = _make_converter()
            conv = _converter
    return conv


def _describe(exc: BaseException) -> str:
    import cattrs

    try:
        messages = cattrs.transform_error(exc)
    except Exception:  # pragma: no cover - transform_error understands cattrs errors
        messages = [str(exc)]
    shown = "; ".join(messages[:5])
    more = f" (and {len(messages) - 5} more)" if len(messages) > 5 else ""
    return shown + more


def structure(data: Any, cls: Type[T]) -> T:
    """Decode a wire object (already parsed from JSON) into ``cls``.

    Raises:
        DecodeError: the object does not match the contract.
    """
    try:
        return (_converter or get_converter()).structure(data, cls)
    except _DECODE_ERRORS as exc:
        raise DecodeError(
            f"the server's answer does not match the {cls.__name__} contract: {_describe(exc)}",
            what=cls.__name__,
            snippet=repr(data)[:200],
        ) from exc


def unstructure(obj: Any) -> Any:
    """Encode a model or event into JSON-ready data (timestamps as RFC 3339 strings)."""
    data = (_converter or get_converter()).unstructure(obj)
    if isinstance(obj, TaskEvent):
        data = {"type": obj.type, **data}
        if isinstance(obj, UnknownEvent) or obj.event_id:
            data["event_id"] = obj.event_id
    return data


_scan_json: Callable[[str, int], Tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(body: Union[bytes, str], what: str) -> Any:
    """Parse a JSON body.

    Raises:
        DecodeError: the body is not JSON; the message says what was expected.
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise DecodeError(
            f"expected JSON for {what}, got something else: {exc}",
            what=what,
            snippet=text[:200],
        ) from exc


class _RawEvent(Protocol):
    """What [`decode_event`][cyberun.decode_event] reads of a parsed event.

    [`ServerSentEvent`][cyberun.ServerSentEvent] has it; so may any other
    parser's events. (A protocol, so that the models layer does not import
    the parser.)
    """

    @property
    def event(self) -> str: ...
    @property
    def data(self) -> str: ...
    @property
    def id(self) -> str: ...


def decode_event(
    sse: _RawEvent, stamps: Optional[Dict[str, Optional[datetime]]] = None
) -> TaskEvent:
    """Turn one parsed Server-Sent Event into a typed task event.

    Known types (``status``, ``progress``, ``completed``, ``failed``,
    ``cancelled``, ``error``) become their classes; anything else becomes an
    [`UnknownEvent`][cyberun.UnknownEvent] that keeps the type and data.

    Args:
        sse: the parsed event, for example a
            [`ServerSentEvent`][cyberun.ServerSentEvent] (any object with
            ``event``, ``data`` and ``id`` strings will do).
        stamps: a cache of parsed timestamps that the caller keeps for one
            stream (its ticks mostly share their second); None parses each.

    Raises:
        DecodeError: a known event whose data is not the documented JSON.
    """
    fast = _FAST_DECODERS.get(sse.event)
    if fast is not None:
        text = sse.data
        try:
            # json's own C scanner, without json.loads' two whitespace scans:
            # a live stream's data is one compact object. Anything else
            # (spaces around it, not JSON, not an object) takes the general
            # path below, which says what is wrong.
            payload, end = _scan_json(text, 0)
        except (StopIteration, ValueError, RecursionError):
            end = -1
        if end == len(text) and type(payload) is dict:
            decoded = fast(payload, sse.id, stamps)
            if decoded is not None:
                return decoded
    cls = _EVENT_CLASSES.get(sse.event)
    if cls is None:
        data = _try_json_object(sse.data)
        return UnknownEvent(
            event=sse.event,
            data=sse.data,
            event_id=sse.id,
            task_id=str(data.get("task_id", "")) if data else "",
            raw=MappingProxyType(data or {}),
        )
    payload = loads(sse.data, f"a {sse.event!r} event")
    if not isinstance(payload, dict):
        raise DecodeError(
            f"a {sse.event!r} event's data is not a JSON object",
            what=cls.__name__,
            snippet=sse.data[:200],
        )
    if cls is FailedEvent and "error" not in payload and "task_error" in payload:
        payload = {**payload, "error": payload["task_error"]}
    event = structure(payload, cls)
    object.__setattr__(event, "event_id", sse.id)
    object.__setattr__(event, "raw", MappingProxyType(payload))
    return event


# --- per-type event decoders ----------------------------------------------------------
#
# The two events a live stream is made of (progress ticks and statuses) are
# decoded here directly, with the same checks the converter's hooks make; an
# event they cannot vouch for (a wrong type anywhere) returns None and goes
# through the converter, which raises the precise DecodeError.


_NONE = type(None)
_NUMBER = frozenset({float, int, _NONE})
_INTEGER = frozenset({int, _NONE})
_STRING = frozenset({str, _NONE})

#: Timestamps a cache keeps at most before it starts again.
_STAMPS = 64


def _event_time(value: Any, stamps: Optional[Dict[str, Optional[datetime]]]) -> Optional[datetime]:
    if value is None:
        return None
    if stamps is None or type(value) is not str:
        return _structure_lenient_datetime(value, None)
    try:
        return stamps[value]
    except KeyError:
        pass
    if len(stamps) >= _STAMPS:
        stamps.clear()
    parsed = stamps[value] = _structure_lenient_datetime(value, None)
    return parsed


def _fast_progress(
    payload: Dict[str, Any], event_id: str, stamps: Optional[Dict[str, Optional[datetime]]]
) -> Optional[TaskEvent]:
    get = payload.get
    task_id = get("task_id", "")
    progress = get("progress")
    current = get("step_current")
    total = get("step_total")
    node = get("current_node")
    stage = get("stage")
    message = get("message")
    if not (
        type(task_id) is str
        and type(progress) in _NUMBER
        and type(current) in _INTEGER
        and type(total) in _INTEGER
        and type(node) in _STRING
        and type(stage) in _STRING
        and type(message) in _STRING
    ):
        return None
    return ProgressEvent(
        task_id=task_id,
        event_id=event_id,
        timestamp=_event_time(get("timestamp"), stamps),
        raw=MappingProxyType(payload),
        progress=float(progress) if type(progress) is int else progress,
        step_current=current,
        step_total=total,
        current_node=node,
        stage=stage,
        message=message,
    )


def _fast_status(
    payload: Dict[str, Any], event_id: str, stamps: Optional[Dict[str, Optional[datetime]]]
) -> Optional[TaskEvent]:
    get = payload.get
    task_id = get("task_id", "")
    status = get("status")
    if type(task_id) is not str or type(status) is not str:
        return None
    return StatusEvent(
        task_id=task_id,
        event_id=event_id,
        timestamp=_event_time(get("timestamp"), stamps),
        raw=MappingProxyType(payload),
        status=TaskStatus(status),
    )


_Decoder = Callable[
    [Dict[str, Any], str, Optional[Dict[str, Optional[datetime]]]], Optional[TaskEvent]
]
_FAST_DECODERS: Dict[str, _Decoder] = {"progress": _fast_progress, "status": _fast_status}


def _try_json_object(text: str) -> Optional[Dict[str, Any]]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
