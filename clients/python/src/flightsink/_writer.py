"""Writer: one flightsink DoPut stream over pyarrow.flight."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import pyarrow as pa
import pyarrow.flight as flight

from ._acks import Ack, Done, Ready, WriterStatus
from ._errors import FlightsinkError, ProtocolError, from_exception, parse_status

__all__ = [
    "DESCRIPTOR_OPTIONS",
    "Writer",
    "writer_status",
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_BATCH_ROWS",
    "to_record_batches",
    "split_batch",
]

#: Default upper bound for one record batch on the wire (its Arrow IPC size). The server refuses
#: gRPC messages over ``flight.max_message_bytes`` (64 MiB by default); 16 MiB leaves room and
#: keeps the server's memory per stream modest.
DEFAULT_MAX_BATCH_BYTES = 16 << 20
# Rows per message: far under the server's flight.max_batch_rows (50M by default), whatever the
# batch's encoding (a run-end encoded or dictionary column is small in bytes but not in rows).
DEFAULT_MAX_BATCH_ROWS = 1 << 20

#: Every descriptor key the server takes (docs/protocol.md), by the :class:`Writer` keyword that
#: sets it: the keyword is the key with ``.`` as ``_`` (``json.decimal`` is ``json_decimal``).
#: ``tests/python/test_client_options.py`` checks this list against a running server's.
DESCRIPTOR_OPTIONS: Dict[str, str] = {
    "key_field": "key_field",
    "timestamp_field": "timestamp_field",
    "delivery": "delivery",
    "writer_id": "writer_id",
    "commit_on_close": "commit_on_close",
    "format": "format",
    "json_timestamp_format": "json.timestamp_format",
    "json_decimal": "json.decimal",
    "json_include_schema": "json.include_schema",
    "value_fields": "value_fields",
    "exclude_fields": "exclude_fields",
    "value_field": "value_field",
    "subject": "subject",
    "tombstone_field": "tombstone_field",
    "headers_field": "headers_field",
    "headers": "headers",
    "provenance_headers": "provenance_headers",
    "partition_field": "partition_field",
    "topic_field": "topic_field",
    "subject_name_strategy": "subject_name_strategy",
    "key_format": "key_format",
    "key_fields": "key_fields",
    "on_bad_row": "on_bad_row",
    "dead_letter_topic": "dead_letter_topic",
    "max_bad_rows": "max_bad_rows",
    "report_offsets": "report_offsets",
}


def descriptor_command(topic: str, options: Optional[Mapping[str, Any]] = None, **typed: Any) -> Dict[str, Any]:
    """The CMD descriptor object for ``topic``: the typed options (keywords of
    :data:`DESCRIPTOR_OPTIONS`, ``None`` meaning the server's default) plus ``options``, a
    pass-through of descriptor keys by their server names (for keys this client version does not
    know yet). A key given both ways is a ValueError."""
    cmd: Dict[str, Any] = {"topic": topic}
    for kw, value in typed.items():
        if kw not in DESCRIPTOR_OPTIONS:
            raise TypeError(f"unknown descriptor option {kw!r} (known: {', '.join(DESCRIPTOR_OPTIONS)})")
        if value is None:
            continue
        if kw in ("value_fields", "exclude_fields", "key_fields"):
            value = list(value)
        elif kw == "headers":
            value = {str(k): str(v) for k, v in dict(value).items()}
        cmd[DESCRIPTOR_OPTIONS[kw]] = value
    for key, value in (options or {}).items():
        if key == "topic":
            raise ValueError("options: give the topic as the topic argument")
        if key in cmd:
            raise ValueError(f"options: descriptor key {key!r} is also given as a keyword")
        cmd[key] = value
    return cmd


Location = Union[str, "flight.Location", Tuple[str, int]]
Headers = Union[Mapping[Any, Any], Sequence[Tuple[Any, Any]], None]
Data = Any  # pa.Table | pa.RecordBatch | pa.RecordBatchReader | pandas.DataFrame


def _b(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


def _is_dataframe(obj: Any) -> bool:
    t = type(obj)
    return t.__name__ == "DataFrame" and t.__module__.split(".")[0] == "pandas"


def to_record_batches(data: Data, schema: Optional[pa.Schema] = None) -> Tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """(schema, batches) of a Table, RecordBatch, RecordBatchReader or pandas DataFrame.

    A DataFrame is converted with ``pa.Table.from_pandas(df, preserve_index=False)``; when
    ``schema`` is given and the DataFrame converts to other types (pandas infers them anew for
    each frame, e.g. an all-null column), it is cast to ``schema``.
    """
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    if _is_dataframe(data):
        table = pa.Table.from_pandas(data, preserve_index=False)
        if schema is not None and not table.schema.equals(schema, check_metadata=False):
            try:
                table = table.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as e:
                raise ValueError(
                    f"the DataFrame converts to schema\n{table.schema}\nwhich cannot be cast to the stream's "
                    f"schema\n{schema}\n({e})"
                ) from e
        return table.schema, iter(table.to_batches())
    raise TypeError(
        f"cannot write a {type(data).__name__}: pass a pyarrow Table, RecordBatch, RecordBatchReader "
        "or a pandas DataFrame"
    )


def split_batch(
    batch: pa.RecordBatch, max_bytes: int, max_rows: int = DEFAULT_MAX_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Slices of batch of at most max_rows rows whose Arrow IPC size (``pa.ipc.get_record_batch_size``:
    body and metadata, dictionaries excluded as they travel in their own messages) is at most max_bytes.
    A single row larger than that is yielded as it is (the server will refuse it)."""
    if batch.num_rows > max_rows:
        for off in range(0, batch.num_rows, max_rows):
            yield from split_batch(batch.slice(off, max_rows), max_bytes, max_rows)
        return
    size = pa.ipc.get_record_batch_size(batch)
    n = batch.num_rows
    if size <= max_bytes or n <= 1:
        yield batch
        return
    step = max(1, int(n * (max_bytes / size) * 0.9))
    for off in range(0, n, step):
        yield from split_batch(batch.slice(off, step), max_bytes, max_rows)


class _ReasonRecorder(flight.ClientMiddlewareFactory):  # type: ignore[misc]
    """Records the flightsink-reason trailer of the client's calls (pyarrow's exceptions do not
    carry trailers; middleware sees them)."""

    def __init__(self) -> None:
        self.reason: Optional[str] = None

    def start_call(self, info: Any) -> "flight.ClientMiddleware":
        return _ReasonMiddleware(self)


class _ReasonMiddleware(flight.ClientMiddleware):  # type: ignore[misc]
    def __init__(self, factory: _ReasonRecorder) -> None:
        self.factory = factory

    def received_headers(self, headers: Dict[str, List[Any]]) -> None:
        for value in headers.get("flightsink-reason", []):
            self.factory.reason = value.decode() if isinstance(value, bytes) else str(value)


def _connect(
    location: Location,
    *,
    call_headers: Headers,
    tls_root_certs: Optional[bytes],
    cert_chain: Optional[bytes],
    private_key: Optional[bytes],
    override_hostname: Optional[str],
    disable_server_verification: bool,
    token: Optional[str],
    username: Optional[str],
    password: Optional[str],
) -> Tuple["flight.FlightClient", _ReasonRecorder, List[Tuple[bytes, bytes]]]:
    if token is not None and username is not None:
        raise ValueError("give either token= or username=/password=, not both")
    if (username is None) != (password is None):
        raise ValueError("basic auth needs both username= and password=")
    headers: List[Tuple[bytes, bytes]] = []
    if call_headers:
        items = call_headers.items() if isinstance(call_headers, Mapping) else call_headers
        headers = [(_b(k).lower(), _b(v)) for k, v in items]
    recorder = _ReasonRecorder()
    kwargs: Dict[str, Any] = {"middleware": [recorder]}
    if tls_root_certs is not None:
        kwargs["tls_root_certs"] = tls_root_certs
    if cert_chain is not None:
        kwargs["cert_chain"] = cert_chain
    if private_key is not None:
        kwargs["private_key"] = private_key
    if override_hostname is not None:
        kwargs["override_hostname"] = override_hostname
    if disable_server_verification:
        kwargs["disable_server_verification"] = True
    try:
        client = flight.connect(location, **kwargs)
    except pa.ArrowException as e:
        raise from_exception(e, None) from None
    if token is not None:
        headers.append((b"authorization", b"Bearer " + _b(token)))
    elif username is not None:
        try:
            key, value = client.authenticate_basic_token(
                username, password, options=flight.FlightCallOptions(headers=headers or None)
            )
        except pa.ArrowException as e:
            reason = recorder.reason
            client.close()
            raise from_exception(e, reason) from None
        headers.append((_b(key), _b(value)))
    return client, recorder, headers


class Writer:
    """One stream to a topic: ``write`` tables, ``checkpoint`` to make everything so far
    durable, ``close`` for a clean end (which commits the tail), ``abort`` to end it without.

    Use it as a context manager: an exception inside the ``with`` block sends the
    ``{"abort": ...}`` marker, so nothing after the last checkpoint is committed (a plain
    pyarrow ``close()`` after an exception looks like a clean end and would commit the tail)::

        with flightsink.Writer("grpc://127.0.0.1:8815", "orders", writer_id="orders-loader",
                               schema=table.schema) as w:
            rows = table.slice(w.ready.committed_rows)   # skip what an earlier run committed
            w.write(rows)
            w.checkpoint()                               # durable when it returns
        print(w.done)

    The stream opens (and ``ready`` is known) in the constructor when ``schema`` is given, else
    with the first ``write``. Every error is raised as a :class:`FlightsinkError` subclass with
    ``code``, ``reason`` and ``message``; after one, the stream is over. A Writer is not safe for
    use from several threads at once.

    Args:
        location: ``"grpc://host:port"`` (``"grpc+tls://..."`` for TLS), a ``flight.Location``
            or ``(host, port)``.
        topic: the Kafka topic.
        schema: the Arrow schema of every batch; opens the stream at once.
        key_field, timestamp_field: columns for the record key and timestamp.
        delivery: ``"exactly_once"`` or ``"at_least_once"``; ``None`` for the server's default.
        writer_id: names a resumable exactly-once writer (see ``ready``).
        commit_on_close: ``False`` makes a clean close abort the tail after the last checkpoint;
            ``None`` for the server's default (``True``).
        format, json_timestamp_format, json_decimal, json_include_schema, value_fields,
            exclude_fields, value_field, subject, tombstone_field, headers_field, headers,
            provenance_headers, partition_field, topic_field: the descriptor keys of the same
            name (``json_decimal`` is ``json.decimal``; see the README's "Record formats and
            shape"), e.g. ``format="raw_string", value_field="line"``; ``None`` for the server's
            default.
        options: other descriptor keys by their server names, passed through as they are (for
            keys newer than this client).
        max_batch_bytes: largest record batch sent in one message (its Arrow IPC size);
            bigger ones are sliced. Keep it under the server's ``flight.max_message_bytes``.
        max_batch_rows: most rows sent in one message; longer batches are sliced. Keep it under
            the server's ``flight.max_batch_rows``.
        compression: ``"lz4"`` or ``"zstd"`` to compress IPC bodies; ``None`` for none.
        call_headers: extra gRPC headers for the call (a mapping or pairs).
        tls_root_certs, cert_chain, private_key, override_hostname, disable_server_verification:
            TLS settings, passed to ``pyarrow.flight.connect`` (PEM bytes).
        token: a bearer token (``authorization: Bearer <token>``).
        username, password: log in with the Flight basic-auth handshake first.
    """

    def __init__(
        self,
        location: Location,
        topic: str,
        *,
        schema: Optional[pa.Schema] = None,
        key_field: Optional[str] = None,
        timestamp_field: Optional[str] = None,
        delivery: Optional[str] = None,
        writer_id: Optional[str] = None,
        commit_on_close: Optional[bool] = None,
        format: Optional[str] = None,
        json_timestamp_format: Optional[str] = None,
        json_decimal: Optional[str] = None,
        json_include_schema: Optional[bool] = None,
        value_fields: Optional[Sequence[str]] = None,
        exclude_fields: Optional[Sequence[str]] = None,
        value_field: Optional[str] = None,
        subject: Optional[str] = None,
        tombstone_field: Optional[str] = None,
        headers_field: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        provenance_headers: Optional[bool] = None,
        partition_field: Optional[str] = None,
        topic_field: Optional[str] = None,
        subject_name_strategy: Optional[str] = None,
        key_format: Optional[str] = None,
        key_fields: Optional[Sequence[str]] = None,
        on_bad_row: Optional[str] = None,
        dead_letter_topic: Optional[str] = None,
        max_bad_rows: Optional[float] = None,
        report_offsets: Optional[bool] = None,
        options: Optional[Mapping[str, Any]] = None,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        compression: Optional[str] = None,
        call_headers: Headers = None,
        tls_root_certs: Optional[bytes] = None,
        cert_chain: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        override_hostname: Optional[str] = None,
        disable_server_verification: bool = False,
        token: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        if not isinstance(topic, str) or not topic:
            raise ValueError("topic must be a non-empty string")
        if max_batch_bytes < 1:
            raise ValueError("max_batch_bytes must be positive")
        if max_batch_rows < 1:
            raise ValueError("max_batch_rows must be positive")
        cmd = descriptor_command(
            topic,
            options,
            key_field=key_field,
            timestamp_field=timestamp_field,
            delivery=delivery,
            writer_id=writer_id,
            commit_on_close=commit_on_close,
            format=format,
            json_timestamp_format=json_timestamp_format,
            json_decimal=json_decimal,
            json_include_schema=json_include_schema,
            value_fields=value_fields,
            exclude_fields=exclude_fields,
            value_field=value_field,
            subject=subject,
            tombstone_field=tombstone_field,
            headers_field=headers_field,
            headers=headers,
            provenance_headers=provenance_headers,
            partition_field=partition_field,
            topic_field=topic_field,
            subject_name_strategy=subject_name_strategy,
            key_format=key_format,
            key_fields=key_fields,
            on_bad_row=on_bad_row,
            dead_letter_topic=dead_letter_topic,
            max_bad_rows=max_bad_rows,
            report_offsets=report_offsets,
        )
        self._descriptor = flight.FlightDescriptor.for_command(json.dumps(cmd))
        self._topic = topic
        self._max_batch_bytes = int(max_batch_bytes)
        self._max_batch_rows = int(max_batch_rows)
        self._compression = compression
        self._state = "new"  # new -> open -> closed
        self._schema: Optional[pa.Schema] = None
        self._writer: Any = None
        self._reader: Any = None
        self._ready: Optional[Ready] = None
        self._done: Optional[Done] = None
        self._next_checkpoint = 1
        self._last_checkpoint: Optional[int] = None
        self._durable_rows = 0  # this stream's rows known durable (the last ack's total_rows)
        self._last_ack: Optional[Ack] = None
        self._rows_written = 0
        self._client, self._recorder, self._headers = _connect(
            location,
            call_headers=call_headers,
            tls_root_certs=tls_root_certs,
            cert_chain=cert_chain,
            private_key=private_key,
            override_hostname=override_hostname,
            disable_server_verification=disable_server_verification,
            token=token,
            username=username,
            password=password,
        )
        if schema is not None:
            try:
                self.open(schema)
            except BaseException:
                self._cleanup()
                raise

    # --- state ----------------------------------------------------------------------------

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def schema(self) -> Optional[pa.Schema]:
        """The stream's schema, once it is open."""
        return self._schema

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    @property
    def ready(self) -> Ready:
        """The server's ``ready`` message (raises RuntimeError before the stream is open)."""
        if self._ready is None:
            raise RuntimeError("the stream is not open yet: pass schema= to Writer or write() first")
        return self._ready

    @property
    def last_checkpoint(self) -> Optional[int]:
        """The newest durable checkpoint: ``ready.last_checkpoint`` at first, then each ack's."""
        return self._last_checkpoint

    @property
    def committed_rows(self) -> int:
        """Rows known durable: ``ready.committed_rows`` (a named writer's earlier streams) plus
        this stream's rows acknowledged so far."""
        base = self._ready.committed_rows if self._ready is not None else 0
        return base + self._durable_rows

    @property
    def rows_written(self) -> int:
        """Rows this stream has sent (durable or not)."""
        return self._rows_written

    @property
    def done(self) -> Optional[Done]:
        """The ``done`` message once ``close()`` succeeded."""
        return self._done

    # --- the stream -----------------------------------------------------------------------

    def open(self, schema: pa.Schema) -> Ready:
        """Open the stream with ``schema`` and wait for ``ready``. Called by the constructor when
        it has a schema, else by the first ``write``."""
        if self._state != "new":
            raise RuntimeError(f"the stream is already {self._state}")
        options: Dict[str, Any] = {}
        if self._headers:
            options["headers"] = self._headers
        if self._compression:
            options["write_options"] = pa.ipc.IpcWriteOptions(compression=self._compression)
        self._recorder.reason = None
        try:
            self._writer, self._reader = self._client.do_put(
                self._descriptor, schema, options=flight.FlightCallOptions(**options)
            )
        except pa.ArrowException as e:
            raise self._fail(e) from None
        self._state = "open"
        self._schema = schema
        msg = self._next_message("ready")
        if msg.get("type") != "ready":
            self.abort("protocol error: expected ready")
            raise ProtocolError(f"the server's first message is not ready: {msg}")
        self._ready = Ready.from_json(msg)
        self._last_checkpoint = self._ready.last_checkpoint
        self._next_checkpoint = (self._ready.last_checkpoint or 0) + 1
        return self._ready

    def write(self, data: Data) -> int:
        """Send a Table, RecordBatch, RecordBatchReader or pandas DataFrame; returns the rows
        sent. Batches over ``max_batch_bytes`` or ``max_batch_rows`` are sliced. Nothing is durable before the next
        ``checkpoint()`` or ``close()``; a failure the server reported may surface here or in a
        later call."""
        self._check_usable()
        schema, batches = to_record_batches(data, self._schema)
        if self._state == "new":
            self.open(schema)
        elif not schema.equals(self._schema, check_metadata=False):
            raise ValueError(f"schema differs from the stream's:\n{schema}\nvs. the stream's\n{self._schema}")
        sent = 0
        for batch in batches:
            for part in split_batch(batch, self._max_batch_bytes, self._max_batch_rows):
                if part.num_rows == 0:
                    continue
                try:
                    self._writer.write_batch(part)
                except pa.ArrowException as e:
                    raise self._fail(e) from None
                sent += part.num_rows
                self._rows_written += part.num_rows
        return sent

    def checkpoint(self) -> Ack:
        """Mark everything written so far as one unit and block until the server acknowledges
        that it is durable (exactly-once: committed). Checkpoints are numbered on from
        ``ready.last_checkpoint``. Same as ``wait_checkpoint(mark_checkpoint())``."""
        return self._await_ack(self.mark_checkpoint())

    def mark_checkpoint(self) -> int:
        """Mark everything written so far as the next checkpoint and return its number without
        waiting: the server commits it while later batches stream in (pipelining). Keep what it
        covers until ``wait_checkpoint(n)`` returns or ``last_checkpoint`` reaches it; after a
        failure, resume from ``committed_rows``. Acks are read while waiting (``wait_checkpoint``,
        ``checkpoint``, ``close``): to bound how far a loader runs ahead, wait for an older
        checkpoint, e.g. ``wait_checkpoint(n - 2)``."""
        self._check_usable()
        if self._state == "new":
            raise RuntimeError("nothing to checkpoint: the stream is not open (pass schema= or write() first)")
        n = self._next_checkpoint
        self._send_metadata({"checkpoint": n})
        self._next_checkpoint = n + 1
        return n

    def wait_checkpoint(self, n: int) -> Ack:
        """Block until checkpoint ``n`` (and every earlier one) is durable; returns the ack that
        says so (acks may be coalesced: one for a later checkpoint covers ``n``). A checkpoint not
        marked yet is an error."""
        if n >= self._next_checkpoint:
            raise ValueError(f"checkpoint {n} has not been marked (the next is {self._next_checkpoint})")
        if self._last_ack is not None and self._last_ack.checkpoint >= n:
            return self._last_ack
        if self._ready is not None and n <= (self._ready.last_checkpoint or 0):
            # durable before this stream opened (a resumed named writer)
            return Ack(checkpoint=self._ready.last_checkpoint, rows=0, total_rows=0)
        return self._await_ack(n)

    def _await_ack(self, n: int) -> Ack:
        """Read the server's messages until an ack of this stream covers checkpoint n."""
        if self._last_ack is not None and self._last_ack.checkpoint >= n:
            return self._last_ack
        self._check_usable()
        while True:
            msg = self._next_message(f"the ack of checkpoint {n}")
            if msg.get("type") == "checkpoint":
                ack = self._took_ack(msg)
                if ack.checkpoint >= n:
                    return ack

    def _took_ack(self, msg: Dict[str, Any]) -> Ack:
        ack = Ack.from_json(msg)
        self._last_ack = ack
        self._last_checkpoint = ack.checkpoint
        self._durable_rows = ack.total_rows
        return ack

    def close(self) -> Done:
        """End the stream cleanly and wait for ``done``: the tail after the last checkpoint is
        committed (or discarded with ``commit_on_close=False``). A Writer that never opened
        returns a Done of zero rows."""
        if self._state == "closed":
            if self._done is not None:
                return self._done
            raise RuntimeError("the stream has already ended")
        if self._state == "new":
            self._cleanup()
            self._done = Done(total_rows=0, last_checkpoint=None)
            return self._done
        try:
            self._writer.done_writing()
        except pa.ArrowException as e:
            raise self._fail(e) from None
        while True:
            msg = self._next_message("done")
            if msg.get("type") == "done":
                break
            if msg.get("type") == "checkpoint":
                self._took_ack(msg)
        done = Done.from_json(msg)
        if done.last_checkpoint is None and self._last_checkpoint is not None:
            # Nothing new to commit (a re-run of an upload that is all committed): the writer's
            # last durable checkpoint is still the one ready or an ack reported.
            done = dataclasses.replace(done, last_checkpoint=self._last_checkpoint)
        try:
            self._writer.close()
        except pa.ArrowException as e:
            raise self._fail(e) from None
        self._cleanup()
        self._done = done
        self._last_checkpoint = done.last_checkpoint
        self._durable_rows = done.total_rows
        return done

    def abort(self, reason: str = "aborted by the client") -> None:
        """End the stream without a clean end: the server aborts the open transaction
        (exactly-once) or stops producing (at-least-once), so nothing after the last
        acknowledged checkpoint is committed. A stream that has already ended is left as it
        is. Raises ProtocolError only if the server nevertheless ended the stream cleanly."""
        if self._state != "open":
            self._cleanup()
            return
        clean = False
        try:
            self._writer.write_metadata(pa.py_buffer(json.dumps({"abort": str(reason)}).encode()))
            self._writer.done_writing()
        except pa.ArrowException:
            pass  # the stream has already ended; its status comes with close()
        try:
            while self._reader.read() is not None:
                pass
        except pa.ArrowException:
            pass
        try:
            self._writer.close()
            clean = True
        except pa.ArrowException:
            pass  # client_abort, or the error that had already ended the stream
        self._cleanup()
        if clean:
            raise ProtocolError("the server ended the stream cleanly after the abort marker: its tail may be committed")

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.abort(f"{exc_type.__name__}: {exc}"[:1000])
        except Exception as e:  # noqa: BLE001 - the block's own exception goes on
            note = getattr(exc, "add_note", None)
            if note is not None:
                note(f"flightsink: aborting the stream failed: {e}")

    # --- internals ------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._state == "closed":
            raise RuntimeError("the stream has ended (closed, aborted or failed)")

    def _send_metadata(self, obj: Dict[str, Any]) -> None:
        try:
            self._writer.write_metadata(pa.py_buffer(json.dumps(obj).encode()))
        except pa.ArrowException as e:
            raise self._fail(e) from None

    def _next_message(self, expected: str) -> Dict[str, Any]:
        """The next message from the server; when the stream ended instead, its error."""
        try:
            buf = self._reader.read()
        except pa.ArrowException as e:
            raise self._fail(e) from None
        if buf is None:
            try:
                self._writer.close()
            except pa.ArrowException as e:
                raise self._fail(e) from None
            self._cleanup()
            raise ProtocolError(f"the server ended the stream without sending {expected}")
        try:
            msg = json.loads(buf.to_pybytes())
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self.abort("protocol error: a server message is not a JSON object")
            raise ProtocolError(f"the server sent a message that is not a JSON object: {buf.to_pybytes()!r}")
        return msg

    def _fail(self, exc: BaseException) -> FlightsinkError:
        """The stream failed with exc: end it and return the error to raise."""
        _, _, is_status = parse_status(exc)
        if not is_status and self._state == "open":
            # A client-side error: the call may still be live, and a plain close would look
            # like a clean end. Abort explicitly.
            try:
                self._writer.write_metadata(pa.py_buffer(json.dumps({"abort": f"client error: {exc}"[:1000]}).encode()))
            except pa.ArrowException:
                pass
        if self._writer is not None:
            try:
                self._writer.close()  # collects the call's status (and so its trailers)
            except pa.ArrowException:
                pass
        reason = self._recorder.reason
        self._cleanup()
        return from_exception(exc, reason)

    def _cleanup(self) -> None:
        self._state = "closed"
        self._writer = self._reader = None
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing twice or after a failure
                pass


def writer_status(
    location: Location,
    writer_id: str,
    *,
    call_headers: Headers = None,
    tls_root_certs: Optional[bytes] = None,
    cert_chain: Optional[bytes] = None,
    private_key: Optional[bytes] = None,
    override_hostname: Optional[str] = None,
    disable_server_verification: bool = False,
    token: Optional[str] = None,
    username: Optional[str] = None,
    password: Optional[str] = None,
) -> WriterStatus:
    """What the named writer has committed, without opening a stream (and without fencing it)."""
    client, recorder, headers = _connect(
        location,
        call_headers=call_headers,
        tls_root_certs=tls_root_certs,
        cert_chain=cert_chain,
        private_key=private_key,
        override_hostname=override_hostname,
        disable_server_verification=disable_server_verification,
        token=token,
        username=username,
        password=password,
    )
    try:
        action = flight.Action("writer-status", json.dumps({"writer_id": writer_id}).encode())
        options = flight.FlightCallOptions(headers=headers or None)
        try:
            results = list(client.do_action(action, options=options))
        except pa.ArrowException as e:
            raise from_exception(e, recorder.reason) from None
        if not results:
            raise ProtocolError("writer-status returned no result")
        return WriterStatus.from_json(json.loads(results[0].body.to_pybytes()))
    finally:
        client.close()

