"""The server's acknowledgements (docs/protocol.md, section 3) as small immutable records.
Keys the client does not know are kept in ``raw``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

__all__ = ["Ready", "Ack", "Done", "WriterStatus"]


def _opt_int(v: Any) -> Optional[int]:
    return None if v is None else int(v)


@dataclass(frozen=True)
class Ready:
    """The first message of a stream. For a named writer, ``last_checkpoint`` and
    ``committed_rows`` are its stored progress (``None`` and ``0`` when none): resume by
    skipping exactly ``committed_rows`` rows of the source."""

    protocol: int
    delivery: str
    writer_id: Optional[str]
    last_checkpoint: Optional[int]
    committed_rows: int
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, m: Dict[str, Any]) -> "Ready":
        return cls(
            protocol=int(m.get("protocol") or 0),
            delivery=str(m.get("delivery") or ""),
            writer_id=m.get("writer_id"),
            last_checkpoint=_opt_int(m.get("last_checkpoint")),
            committed_rows=int(m.get("committed_rows") or 0),
            raw=m,
        )


@dataclass(frozen=True)
class Ack:
    """Checkpoint ``checkpoint`` (and every earlier one) is durable. ``rows`` counts rows made
    durable since the previous acknowledgement, ``total_rows`` those of this stream."""

    checkpoint: int
    rows: int
    total_rows: int
    skipped_rows: int = 0  # with on_bad_row "skip": rows among ``rows`` left out
    dead_lettered_rows: int = 0  # with on_bad_row "dead_letter": rows among ``rows`` sent there
    # with report_offsets: {topic: {partition: [first, last]}} of the records written since the
    # previous ack
    offsets: Optional[Dict[str, Dict[str, Any]]] = field(default=None, compare=False)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, m: Dict[str, Any]) -> "Ack":
        return cls(
            checkpoint=int(m["checkpoint"]),
            rows=int(m.get("rows") or 0),
            total_rows=int(m.get("total_rows") or 0),
            skipped_rows=int(m.get("skipped_rows") or 0),
            dead_lettered_rows=int(m.get("dead_lettered_rows") or 0),
            offsets=m.get("offsets"),
            raw=m,
        )


@dataclass(frozen=True)
class Done:
    """A clean end: the tail is durable (or, with ``commit_on_close=False``, aborted:
    ``discarded_rows`` says how many). ``committed_rows`` is a named writer's cumulative count;
    ``discarded_rows`` is given in exactly-once mode only."""

    total_rows: int
    last_checkpoint: Optional[int]
    committed_rows: Optional[int] = None
    discarded_rows: Optional[int] = None
    skipped_rows: int = 0
    dead_lettered_rows: int = 0
    offsets: Optional[Dict[str, Dict[str, Any]]] = field(default=None, compare=False)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, m: Dict[str, Any]) -> "Done":
        return cls(
            total_rows=int(m.get("total_rows") or 0),
            last_checkpoint=_opt_int(m.get("last_checkpoint")),
            committed_rows=_opt_int(m.get("committed_rows")),
            discarded_rows=_opt_int(m.get("discarded_rows")),
            skipped_rows=int(m.get("skipped_rows") or 0),
            dead_lettered_rows=int(m.get("dead_lettered_rows") or 0),
            offsets=m.get("offsets"),
            raw=m,
        )


@dataclass(frozen=True)
class WriterStatus:
    """What a named writer has committed (the ``writer-status`` action); reading it does not
    fence the writer."""

    writer_id: str
    found: bool
    topic: Optional[str]
    last_checkpoint: Optional[int]
    committed_rows: int
    committed_at: Optional[str]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, m: Dict[str, Any]) -> "WriterStatus":
        return cls(
            writer_id=str(m.get("writer_id") or ""),
            found=bool(m.get("found")),
            topic=m.get("topic"),
            last_checkpoint=_opt_int(m.get("last_checkpoint")),
            committed_rows=int(m.get("committed_rows") or 0),
            committed_at=m.get("committed_at"),
            raw=m,
        )
