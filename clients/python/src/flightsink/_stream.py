"""write_stream: a whole upload with periodic checkpoints and, for a named writer, resume."""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Union

import pyarrow as pa

from ._acks import Done
from ._errors import FlightsinkError
from ._writer import Location, Writer, _is_dataframe, to_record_batches

__all__ = ["write_stream"]

log = logging.getLogger("flightsink")

Source = Union[Iterable[Any], Callable[[], Iterable[Any]], pa.Table, pa.RecordBatch]
ProgressCallback = Callable[[int, Optional[int]], None]


def _default_backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): 1, 2, 4, 8, 16, then 30. Five retries wait
    31 s in all, enough for a Kafka broker to restart (the server answers ``kafka_unavailable``
    meanwhile); ten wait about three minutes."""
    return min(2.0 ** (attempt - 1), 30.0)


def _rows_of(item: Any) -> int:
    if isinstance(item, (pa.Table, pa.RecordBatch)):
        return int(item.num_rows)
    if _is_dataframe(item):
        return len(item)
    raise TypeError


def _source_factory(batches: Source, retries: int) -> "tuple[Callable[[], Iterable[Any]], Optional[int]]":
    """(a zero-argument callable giving a fresh iterable of the source, its row count if known)."""
    if isinstance(batches, (pa.Table, pa.RecordBatch)) or _is_dataframe(batches):
        return (lambda: [batches]), _rows_of(batches)
    if callable(batches):
        return batches, None
    if iter(batches) is batches:  # an iterator or generator: it can be read once
        if retries > 0:
            raise ValueError(
                "retries need a replayable source, and an iterator can be read only once: pass a zero-argument "
                "callable that returns a fresh iterable of the same rows (e.g. lambda: read_batches(path)), "
                "or a list"
            )
        return (lambda: batches), None
    total: Optional[int] = None
    if isinstance(batches, (list, tuple)):
        try:
            total = sum(_rows_of(item) for item in batches)
        except TypeError:
            total = None
    return (lambda: batches), total


class _Progress:
    def __init__(self, progress: Union[bool, ProgressCallback, None], total: Optional[int]) -> None:
        self.total = total
        self.callback: Optional[ProgressCallback] = None
        self.bar: Any = None
        self.last: Optional[int] = None
        if callable(progress):
            self.callback = progress
        elif progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                warnings.warn("progress=True shows a bar only when tqdm is installed (pip install tqdm)", stacklevel=3)
            else:
                self.bar = tqdm(total=total, unit="rows", unit_scale=True, desc="committed")

    def update(self, committed: int) -> None:
        if committed == self.last:
            return
        self.last = committed
        if self.callback is not None:
            self.callback(committed, self.total)
        if self.bar is not None:
            self.bar.n = committed
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def write_stream(
    location: Location,
    topic: str,
    batches: Source,
    *,
    checkpoint_every_rows: int = 100_000,
    writer_id: Optional[str] = None,
    retries: int = 0,
    backoff: Union[float, Callable[[int], float], None] = None,
    progress: Union[bool, ProgressCallback, None] = None,
    total_rows: Optional[int] = None,
    **writer_kwargs: Any,
) -> Done:
    """Stream every row of ``batches`` to ``topic``, checkpointing at least every
    ``checkpoint_every_rows`` rows, and return the server's ``done``.

    ``batches`` is a Table, RecordBatch or DataFrame, an iterable of them, or a zero-argument
    callable returning a fresh such iterable. **With retries the source must be replayable**:
    each call of the callable (or each iteration of a list) must yield the same rows in the same
    order; how they are cut into batches may differ, because resuming counts rows, not batches.
    A generator function that reads a file or a query with a stable order is a good source::

        def source():
            return pyarrow.parquet.ParquetFile("orders.parquet").iter_batches(65536)

        flightsink.write_stream(loc, "orders", source, writer_id="orders-2026-11-25", retries=5)

    With ``writer_id`` (a resumable exactly-once writer), every attempt, the first included,
    starts where the writer's committed progress says: the server's ``ready.committed_rows``
    rows of the source are skipped (batches are sliced as needed) and checkpoints are numbered on
    from ``ready.last_checkpoint``. So a ``writer_id`` names one upload of one source: running
    the same upload again after it finished writes nothing. After a retryable failure
    (:attr:`FlightsinkError.retryable`: Kafka unavailable, a broker restarting included, outcome
    unknown, server shutdown, transaction timeout, lost connection, ...) it waits ``backoff`` and
    reconnects, at most
    ``retries`` times; other errors (a bad row, fencing, a stale checkpoint, ...) are raised at
    once. ``retries`` without ``writer_id`` is refused: an anonymous stream cannot tell what an
    earlier attempt committed, so a blind retry would write committed rows twice.

    Args:
        checkpoint_every_rows: checkpoint once this many rows were sent since the last one
            (after the batch that crosses it). Checkpoints must come more often than the
            server's ``kafka.transaction_timeout`` (60 s by default).
        backoff: seconds to wait before retry n (1, 2, ...): a number is the first wait,
            doubled each time (at most 30 s); a callable gets n. Default 1 s doubling to 30 s:
            ``retries=5`` rides out 31 s of Kafka or server outage (a broker restart),
            ``retries=10`` about three minutes.
        progress: a callback ``(rows_committed, rows_total_or_None)`` called when the stream
            opens, after each checkpoint and at the end; or ``True`` for a tqdm bar (when tqdm is
            installed). ``rows_committed`` counts a named writer's rows from its first stream.
        total_rows: the source's row count for progress (found by itself for a Table or a
            list of tables, batches or DataFrames).
        writer_kwargs: passed to :class:`Writer` (``key_field``, ``timestamp_field``,
            ``delivery``, ``schema``, ``max_batch_bytes``, TLS and auth options, ...).
    """
    if checkpoint_every_rows < 1:
        raise ValueError("checkpoint_every_rows must be at least 1")
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if retries > 0 and writer_id is None:
        raise ValueError(
            "retries need a writer_id: an anonymous stream cannot tell which rows an earlier attempt already "
            "committed, so a blind retry would write committed checkpoints again. Pass writer_id=... (a resumable "
            "exactly-once writer) or retries=0"
        )
    factory, known_total = _source_factory(batches, retries)
    reporter = _Progress(progress, total_rows if total_rows is not None else known_total)
    attempt = 0
    try:
        while True:
            try:
                return _attempt(location, topic, factory, checkpoint_every_rows, writer_id, reporter, writer_kwargs)
            except FlightsinkError as e:
                if not e.retryable or attempt >= retries:
                    raise
                attempt += 1
                if callable(backoff):
                    delay = float(backoff(attempt))
                elif backoff is not None:
                    delay = min(float(backoff) * 2.0 ** (attempt - 1), 30.0)
                else:
                    delay = _default_backoff(attempt)
                log.warning("%s; resuming writer %s in %.2fs (retry %d of %d)", e, writer_id, delay,
                            attempt, retries)
                time.sleep(delay)
    finally:
        reporter.close()


def _attempt(
    location: Location,
    topic: str,
    factory: Callable[[], Iterable[Any]],
    checkpoint_every_rows: int,
    writer_id: Optional[str],
    reporter: _Progress,
    writer_kwargs: Dict[str, Any],
) -> Done:
    source: Iterator[Any] = iter(factory())
    try:
        schema = writer_kwargs.get("schema")
        first: Any = None
        if schema is None:
            first = next(source, None)
            if first is None:
                return Writer(location, topic, writer_id=writer_id, **writer_kwargs).close()  # nothing to send
            schema, _ = to_record_batches(first)
        kwargs = dict(writer_kwargs, schema=schema)
        with Writer(location, topic, writer_id=writer_id, **kwargs) as w:
            base = w.ready.committed_rows
            skip = base
            reporter.update(w.committed_rows)
            since = 0

            def items() -> Iterator[Any]:
                if first is not None:
                    yield first
                yield from source

            for item in items():
                _, item_batches = to_record_batches(item, w.schema)
                for batch in item_batches:
                    if skip:
                        if batch.num_rows <= skip:
                            skip -= batch.num_rows
                            continue
                        batch = batch.slice(skip)
                        skip = 0
                    since += w.write(batch)
                    if since >= checkpoint_every_rows:
                        w.checkpoint()
                        since = 0
                        reporter.update(w.committed_rows)
            if skip:
                raise ValueError(
                    f"the source ended {skip} rows short of the {base} rows writer {writer_id!r} has already "
                    "committed: is it the same source (same rows, same order)?"
                )
            done = w.close()
        reporter.update(done.committed_rows if done.committed_rows is not None else base + done.total_rows)
        return done
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
