"""Exceptions: a failed stream as the gRPC code, the server's reason and its message."""

from __future__ import annotations

import re
from typing import Dict, Optional, Type

import pyarrow as pa
import pyarrow.flight as flight

__all__ = [
    "FlightsinkError",
    "InvalidArgumentError",
    "NotFoundError",
    "AbortedError",
    "FailedPreconditionError",
    "ResourceExhaustedError",
    "UnavailableError",
    "CancelledError",
    "DeadlineExceededError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "UnimplementedError",
    "InternalError",
    "ProtocolError",
    "RETRYABLE_REASONS",
]

#: Reasons (the ``flightsink-reason`` trailer) after which resuming the writer may succeed:
#: Kafka or the server was unavailable (a broker restarting included), Kafka refused the server's
#: own credentials (``kafka_auth_failed``: renewed without a restart), a commit's outcome is
#: unknown (``ready`` tells the truth on reconnect), the broker timed the transaction out, every
#: exactly-once producer was busy, or the client itself went idle. Everything else (bad input,
#: ``fenced``, ``stale_checkpoint``, ``checkpoint_gap``, ``writer_topic``, ``forbidden``,
#: ``client_abort``, ``kafka_error``, ...) would fail the same way again. The server's table of
#: reasons (docs/protocol.md) is the source: its tests check this set against it.
RETRYABLE_REASONS = frozenset({"kafka_unavailable", "kafka_auth_failed", "outcome_unknown", "shutdown", "txn_timeout", "too_many_streams", "idle_timeout"})

_DURABLE_RE = re.compile(r"\[durable_checkpoint=(\d+) durable_rows=(\d+)\]\s*$")


class FlightsinkError(Exception):
    """A stream (or call) that failed.

    Attributes:
        code: the gRPC status code name (``"INVALID_ARGUMENT"``, ``"UNAVAILABLE"``, ...); ``None``
            for a :class:`ProtocolError` found by the client itself.
        reason: the server's machine-readable reason from the ``flightsink-reason`` trailer
            (``"bad_row"``, ``"kafka_unavailable"``, ...; see docs/protocol.md), or ``None`` when the
            status carried none (a lost connection, a message gRPC itself refused, ...).
        message: the server's message (it names the key, column or row at fault and ends with
            ``[durable_checkpoint=N durable_rows=R]``).
        durable_checkpoint, durable_rows: parsed from that suffix when present, else ``None``.
    """

    def __init__(self, message: str, *, code: Optional[str] = None, reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        m = _DURABLE_RE.search(message)
        self.durable_checkpoint: Optional[int] = int(m.group(1)) if m else None
        self.durable_rows: Optional[int] = int(m.group(2)) if m else None

    @property
    def retryable(self) -> bool:
        """Whether reconnecting (and, for a named writer, resuming from ``ready``) may succeed:
        the reason is one of :data:`RETRYABLE_REASONS`, or the status has no reason and is
        ``UNAVAILABLE`` (the connection was lost or the server could not be reached)."""
        if self.reason:
            return self.reason in RETRYABLE_REASONS
        return self.code == "UNAVAILABLE"

    def __str__(self) -> str:
        head = self.code or "error"
        if self.reason:
            head += f" ({self.reason})"
        return f"flightsink: {head}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r}, message={self.message!r})"


class InvalidArgumentError(FlightsinkError):
    """``INVALID_ARGUMENT``: a bad descriptor, schema, marker, row or stream. Not retryable."""


class NotFoundError(FlightsinkError):
    """``NOT_FOUND``: e.g. the topic does not exist (reason ``topic_missing``)."""


class AbortedError(FlightsinkError):
    """``ABORTED``: the client aborted (``client_abort``), a newer stream of the writer took over
    (``fenced``), or the broker aborted the transaction (``txn_timeout``, retryable)."""


class FailedPreconditionError(FlightsinkError):
    """``FAILED_PRECONDITION``: ``stale_checkpoint``, ``checkpoint_gap``, ``writer_topic``."""


class ResourceExhaustedError(FlightsinkError):
    """``RESOURCE_EXHAUSTED``: a message over the server's size limit (no reason: gRPC itself
    refused it; send smaller batches), too many streams (``too_many_streams``, retryable), ..."""


class UnavailableError(FlightsinkError):
    """``UNAVAILABLE``: Kafka or the server is unavailable, or the connection was lost. Retryable."""


class CancelledError(FlightsinkError):
    """``CANCELLED``: the call was canceled."""


class DeadlineExceededError(FlightsinkError):
    """``DEADLINE_EXCEEDED``: a deadline passed, or the stream was idle too long (``idle_timeout``)."""


class PermissionDeniedError(FlightsinkError):
    """``PERMISSION_DENIED``: the principal may not write there (``forbidden``)."""


class UnauthenticatedError(FlightsinkError):
    """``UNAUTHENTICATED``: missing or invalid credentials."""


class UnimplementedError(FlightsinkError):
    """``UNIMPLEMENTED``: the server does not do what was asked."""


class InternalError(FlightsinkError):
    """``INTERNAL``, ``UNKNOWN`` and other codes."""


class ProtocolError(FlightsinkError):
    """The server answered something the protocol does not allow (e.g. it ended the stream
    without the expected acknowledgement). ``code`` is ``None``."""


_BY_CODE: Dict[str, Type[FlightsinkError]] = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "OUT_OF_RANGE": InvalidArgumentError,
    "NOT_FOUND": NotFoundError,
    "ABORTED": AbortedError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "UNAVAILABLE": UnavailableError,
    "CANCELLED": CancelledError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "UNIMPLEMENTED": UnimplementedError,
}

# Arrow's own wording ("Flight returned <phrase> error") when the gRPC code is not in the text.
_PHRASES = {
    "invalid argument": "INVALID_ARGUMENT",
    "not found": "NOT_FOUND",
    "already exists": "ALREADY_EXISTS",
    "unauthorized": "PERMISSION_DENIED",
    "unauthenticated": "UNAUTHENTICATED",
    "unavailable": "UNAVAILABLE",
    "timeout": "DEADLINE_EXCEEDED",
    "timed out": "DEADLINE_EXCEEDED",
    "internal": "INTERNAL",
    "unimplemented": "UNIMPLEMENTED",
    "cancelled": "CANCELLED",
}

# pyarrow's text for a gRPC status:
#   "Flight returned unavailable error, with message: MSG. gRPC client debug context: UNAVAILABLE:MSG. Client context: ..."
#   "gRPC returned aborted error, with message: MSG. gRPC client debug context: ABORTED:MSG. Client context: OK"
_STATUS_RE = re.compile(
    r"(?:Flight|gRPC) returned (?P<phrase>[a-z ]+?) error, with message: (?P<msg>.*?)"
    r"(?:\. gRPC client debug context: (?P<code>[A-Z_]+):.*?)?(?:\.? ?Client context: .*)?$",
    re.S,
)


def _code_from_exception(exc: BaseException) -> str:
    if isinstance(exc, flight.FlightUnavailableError):
        return "UNAVAILABLE"
    if isinstance(exc, flight.FlightCancelledError):
        return "CANCELLED"
    if isinstance(exc, flight.FlightTimedOutError):
        return "DEADLINE_EXCEEDED"
    if isinstance(exc, flight.FlightUnauthenticatedError):
        return "UNAUTHENTICATED"
    if isinstance(exc, flight.FlightUnauthorizedError):
        return "PERMISSION_DENIED"
    if isinstance(exc, flight.FlightInternalError):
        return "INTERNAL"
    if isinstance(exc, pa.ArrowKeyError):
        return "NOT_FOUND"
    if isinstance(exc, pa.ArrowNotImplementedError):
        return "UNIMPLEMENTED"
    if isinstance(exc, pa.ArrowInvalid):
        return "INVALID_ARGUMENT"
    if isinstance(exc, (pa.ArrowIOError, OSError)):
        return "UNAVAILABLE"  # the transport failed: the connection was lost
    return "UNKNOWN"


def parse_status(exc: BaseException) -> "tuple[str, str, bool]":
    """(code, message, is_status) of a pyarrow exception: is_status says whether the text is a
    gRPC status from the other side (as opposed to an error the client library raised itself)."""
    text = str(exc)
    m = _STATUS_RE.search(text)
    if m is None:
        return _code_from_exception(exc), text, False
    code = m.group("code")
    if not code:
        phrase = m.group("phrase").strip()
        if phrase == "precondition failed":  # Arrow's name for FAILED_PRECONDITION (a DoAction's status)
            code = "FAILED_PRECONDITION"
        elif text.startswith("gRPC returned") or phrase.upper().replace(" ", "_") in _BY_CODE:
            code = phrase.upper().replace(" ", "_")
        else:
            code = _PHRASES.get(phrase) or _code_from_exception(exc)
    return code, m.group("msg"), True


def make_error(code: Optional[str], message: str, reason: Optional[str]) -> FlightsinkError:
    cls = _BY_CODE.get(code or "", InternalError)
    return cls(message, code=code, reason=reason or None)


def from_exception(exc: BaseException, reason: Optional[str]) -> FlightsinkError:
    """The FlightsinkError for a pyarrow Flight exception and the trailer's reason."""
    code, message, _ = parse_status(exc)
    return make_error(code, message, reason)
