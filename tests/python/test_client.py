"""The Python client package (clients/python, `import flightsink`) against the real server
binary and a real Kafka broker: Writer acks and values, checkpoint numbering across resumes,
abort on an exception, write_stream resuming after the server is SIGKILLed, retry rules,
batch splitting under a small server message limit, pandas input, errors as documented.
Everything is verified with an independent read_committed consumer."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest

import flightsink
from conftest import Record

MiB = 1 << 20


def wid(prefix: str = "py") -> str:
    """A fresh writer id: a named writer's progress outlives its topic."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def ids(records) -> list[int]:
    return [json.loads(r.value)["id"] for r in records]


def id_table(start: int, stop: int, pad: int = 0) -> pa.Table:
    """Rows id=start..stop-1 with a string column (pad characters long when pad > 0)."""
    n = stop - start
    return pa.table(
        {
            "id": pa.array(range(start, stop), pa.int64()),
            "s": pa.array([f"{i:08d}" + "x" * pad for i in range(start, stop)], pa.string()),
        }
    )


# --- Writer ----------------------------------------------------------------------------------


def test_writer_round_trip(server, topic, read_committed):
    loc = server()
    schema = pa.schema([("id", pa.int64()), ("user", pa.string()), ("ts", pa.timestamp("ms", tz="UTC"))])
    first = pa.table({"id": [1, 2], "user": ["ann", "bob"], "ts": [1767322800000, 1767322801000]}, schema=schema)
    second = pa.record_batch(
        [pa.array([3], pa.int64()), pa.array([None], pa.string()), pa.array([1767322802500], schema.field("ts").type)],
        schema=schema,
    )
    with flightsink.Writer(loc, topic, key_field="user", timestamp_field="ts", delivery="exactly_once") as w:
        assert w.write(first) == 2
        assert w.ready == flightsink.Ready(
            protocol=1, delivery="exactly_once", writer_id=None, last_checkpoint=None, committed_rows=0
        )
        assert w.checkpoint() == flightsink.Ack(checkpoint=1, rows=2, total_rows=2)
        assert (w.last_checkpoint, w.committed_rows) == (1, 2)
        assert w.write(second) == 1
        assert w.rows_written == 3
    assert w.done == flightsink.Done(total_rows=3, last_checkpoint=1, committed_rows=None, discarded_rows=0)
    assert w.done.raw["type"] == "done"

    assert read_committed(topic) == [
        Record(b"ann", b'{"id":1,"user":"ann","ts":"2026-01-02T03:00:00.000Z"}', 1767322800000, 0),
        Record(b"bob", b'{"id":2,"user":"bob","ts":"2026-01-02T03:00:01.000Z"}', 1767322801000, 0),
        Record(None, b'{"id":3,"user":null,"ts":"2026-01-02T03:00:02.500Z"}', 1767322802500, 0),
    ]


def test_named_writer_checkpoints_continue_after_resume(server, topic, read_committed):
    loc = server()
    name = wid()
    table = id_table(0, 11)
    with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as w:
        assert (w.ready.writer_id, w.ready.last_checkpoint, w.ready.committed_rows) == (name, None, 0)
        w.write(table.slice(0, 5))
        assert w.checkpoint() == flightsink.Ack(checkpoint=1, rows=5, total_rows=5)
        w.write(table.slice(5, 3))
        assert w.checkpoint() == flightsink.Ack(checkpoint=2, rows=3, total_rows=8)
    assert w.done == flightsink.Done(total_rows=8, last_checkpoint=2, committed_rows=8, discarded_rows=0)

    with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as w:
        assert (w.ready.last_checkpoint, w.ready.committed_rows) == (2, 8)
        assert (w.last_checkpoint, w.committed_rows) == (2, 8)
        w.write(table.slice(w.ready.committed_rows, 2))
        assert w.checkpoint() == flightsink.Ack(checkpoint=3, rows=2, total_rows=2)
        assert (w.last_checkpoint, w.committed_rows) == (3, 10)
        w.write(table.slice(10))  # the tail: the clean end commits it as checkpoint 4
    assert w.done == flightsink.Done(total_rows=3, last_checkpoint=4, committed_rows=11, discarded_rows=0)

    status = flightsink.writer_status(loc, name)
    assert (status.found, status.topic, status.last_checkpoint, status.committed_rows) == (True, topic, 4, 11)
    assert flightsink.writer_status(loc, wid()).found is False
    assert ids(read_committed(topic)) == list(range(11))


def test_pipelined_checkpoints(server, topic, read_committed):
    """mark_checkpoint does not wait: 30 checkpoints go out back to back while the server
    commits; wait_checkpoint then returns a (possibly coalesced) ack covering them, and every
    row is in Kafka once, in order. A resumed named writer's stored checkpoint counts as acked."""
    loc = server()
    name = wid()
    table = id_table(0, 3000)
    with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as w:
        marks = []
        for i in range(30):
            w.write(table.slice(i * 100, 100))
            marks.append(w.mark_checkpoint())
        assert marks == list(range(1, 31))
        with pytest.raises(ValueError, match="checkpoint 31 has not been marked"):
            w.wait_checkpoint(31)
        ack = w.wait_checkpoint(15)
        assert ack.checkpoint >= 15 and ack.total_rows == ack.checkpoint * 100
        ack = w.wait_checkpoint(30)
        assert (ack.checkpoint, ack.total_rows) == (30, 3000)
        assert w.wait_checkpoint(10) == ack  # already durable: no wait
        assert (w.last_checkpoint, w.committed_rows) == (30, 3000)
    assert w.done == flightsink.Done(total_rows=3000, last_checkpoint=30, committed_rows=3000, discarded_rows=0)
    with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as w:
        assert w.wait_checkpoint(30) == flightsink.Ack(checkpoint=30, rows=0, total_rows=0)
    assert ids(read_committed(topic)) == list(range(3000))


def test_exception_inside_with_aborts_the_tail(server, topic, read_committed):
    loc = server()
    name = wid()
    table = id_table(0, 5)
    with pytest.raises(RuntimeError, match="source broke"):
        with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as w:
            w.write(table.slice(0, 3))
            w.checkpoint()
            w.write(table.slice(3))  # sent, not checkpointed
            raise RuntimeError("source broke")
    assert not w.is_open

    # The checkpointed rows are visible, the tail is not; the writer's progress agrees.
    assert ids(read_committed(topic)) == [0, 1, 2]
    status = flightsink.writer_status(loc, name)
    assert (status.last_checkpoint, status.committed_rows) == (1, 3)
    assert "client aborted" in loc.log() or "client_abort" in loc.log()


def test_explicit_abort_and_commit_on_close_false(server, topic, read_committed):
    loc = server()
    table = id_table(0, 4)
    w = flightsink.Writer(loc, topic, schema=table.schema)
    w.write(table.slice(0, 2))
    w.checkpoint()
    w.write(table.slice(2))
    w.abort("changed my mind")
    assert not w.is_open
    w.abort()  # ending an ended stream is a no-op

    with flightsink.Writer(loc, topic, commit_on_close=False, schema=table.schema) as w:
        w.write(table.slice(2, 1))
        w.checkpoint()
        w.write(table.slice(3))
    assert w.done == flightsink.Done(total_rows=1, last_checkpoint=1, committed_rows=None, discarded_rows=1)
    assert ids(read_committed(topic)) == [0, 1, 2]


def test_errors_carry_code_reason_and_message(server, topic, brokers):
    loc = server()
    table = id_table(0, 3)

    with pytest.raises(flightsink.NotFoundError) as missing:
        flightsink.Writer(loc, f"no-such-topic-{uuid.uuid4().hex[:8]}", schema=table.schema)
    e = missing.value
    assert (e.code, e.reason, e.retryable) == ("NOT_FOUND", "topic_missing", False)
    assert "does not exist" in e.message and (e.durable_checkpoint, e.durable_rows) == (0, 0)

    with pytest.raises(flightsink.InvalidArgumentError) as bad_key:
        with flightsink.Writer(loc, topic, key_field="nope") as w:
            w.write(table)
    e = bad_key.value
    assert (e.code, e.reason, e.retryable) == ("INVALID_ARGUMENT", "bad_schema", False)
    assert '"nope"' in e.message and "key_field" in e.message

    # A second stream of the same writer fences the first: its next checkpoint fails.
    name = wid()
    older = flightsink.Writer(loc, topic, writer_id=name, schema=table.schema)
    older.write(table)
    with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as newer:
        with pytest.raises(flightsink.AbortedError) as fenced:
            older.checkpoint()
        newer.write(table)
    e = fenced.value
    assert (e.code, e.reason, e.retryable) == ("ABORTED", "fenced", False)
    assert not older.is_open

    # A checkpoint the writer has already committed is FailedPrecondition (stale_checkpoint). The
    # Writer numbers checkpoints from ready and cannot send one; a buggy client is forced here.
    name = wid()
    with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as w:
        w.write(table)
        w.checkpoint()
    w = flightsink.Writer(loc, topic, writer_id=name, schema=table.schema)
    assert w.ready.last_checkpoint == 1
    w._next_checkpoint = 1
    with pytest.raises(flightsink.FailedPreconditionError) as stale:
        w.checkpoint()
    e = stale.value
    assert (e.code, e.reason, e.retryable) == ("FAILED_PRECONDITION", "stale_checkpoint", False)
    assert not w.is_open

    with pytest.raises(flightsink.UnavailableError) as down:
        flightsink.Writer(f"grpc://127.0.0.1:{_closed_port()}", topic, schema=table.schema)
    assert (down.value.code, down.value.reason, down.value.retryable) == ("UNAVAILABLE", None, True)


def test_bearer_token_and_permissions(server, topic, read_committed, tmp_path):
    token = "py-client-token-0123456789"
    config = tmp_path / "auth.yaml"
    config.write_text(
        "auth:\n"
        "  tokens:\n"
        f"    - {{principal: loader, token: {{value: {token}}}}}\n"
        "  principals:\n"
        f"    - {{name: loader, topics: [{topic}]}}\n"
    )
    loc = server("--config", str(config))
    table = id_table(0, 2)
    with pytest.raises(flightsink.UnauthenticatedError) as anonymous:
        flightsink.Writer(loc, topic, schema=table.schema)
    assert anonymous.value.code == "UNAUTHENTICATED" and not anonymous.value.retryable
    with pytest.raises(flightsink.PermissionDeniedError) as denied:
        flightsink.Writer(loc, f"{topic}-other", token=token, schema=table.schema)
    assert (denied.value.code, denied.value.reason) == ("PERMISSION_DENIED", "forbidden")
    with flightsink.Writer(loc, topic, token=token) as w:
        w.write(table)
    assert ids(read_committed(topic)) == [0, 1]


def _closed_port() -> int:
    from conftest import free_port

    return free_port()  # nothing listens there


def test_retryable_classification():
    mk = flightsink.FlightsinkError
    for reason in ("kafka_unavailable", "outcome_unknown", "shutdown", "txn_timeout", "too_many_streams"):
        assert mk("m", code="UNAVAILABLE", reason=reason).retryable, reason
    for reason in ("bad_row", "bad_schema", "bad_descriptor", "bad_metadata", "bad_stream", "fenced",
                   "stale_checkpoint", "checkpoint_gap", "writer_topic", "client_abort", "topic_missing"):
        assert not mk("m", code="INVALID_ARGUMENT", reason=reason).retryable, reason
    assert mk("connection lost", code="UNAVAILABLE").retryable
    assert not mk("too big", code="RESOURCE_EXHAUSTED").retryable
    assert not flightsink.ProtocolError("no ack").retryable


def test_pyarrow_status_text_is_parsed():
    import pyarrow.flight as flight

    from flightsink._errors import from_exception

    e = from_exception(
        pa.ArrowInvalid(
            "gRPC returned failed precondition error, with message: checkpoint 3 is already committed "
            "[durable_checkpoint=0 durable_rows=0]. gRPC client debug context: FAILED_PRECONDITION:checkpoint 3 "
            "is already committed [durable_checkpoint=0 durable_rows=0]. Client context: OK"
        ),
        "stale_checkpoint",
    )
    assert isinstance(e, flightsink.FailedPreconditionError)
    assert (e.code, e.reason, e.message) == (
        "FAILED_PRECONDITION", "stale_checkpoint", "checkpoint 3 is already committed [durable_checkpoint=0 durable_rows=0]"
    )
    assert (e.durable_checkpoint, e.durable_rows) == (0, 0)
    e = from_exception(flight.FlightUnavailableError("Flight returned unavailable error, with message: Socket closed"), None)
    assert (type(e), e.code, e.message, e.retryable) == (flightsink.UnavailableError, "UNAVAILABLE", "Socket closed", True)
    e = from_exception(flight.FlightInternalError("something odd"), None)
    assert (type(e), e.code, e.message, e.retryable) == (flightsink.InternalError, "INTERNAL", "something odd", False)


# --- batch splitting -------------------------------------------------------------------------


def test_split_batch_respects_the_limit():
    batch = id_table(0, 5000, pad=300).combine_chunks().to_batches()[0]
    parts = list(flightsink.split_batch(batch, 64 * 1024))
    assert len(parts) > 1
    assert all(pa.ipc.get_record_batch_size(p) <= 64 * 1024 for p in parts)
    assert pa.Table.from_batches(parts).equals(pa.Table.from_batches([batch]))
    assert list(flightsink.split_batch(batch, 1 << 30)) == [batch]
    one = batch.slice(0, 1)
    assert list(flightsink.split_batch(one, 10)) == [one]  # a row over the limit goes as it is


def test_split_batch_by_rows():
    batch = id_table(0, 2500).combine_chunks().to_batches()[0]
    parts = list(flightsink.split_batch(batch, 1 << 30, max_rows=1000))
    assert [p.num_rows for p in parts] == [1000, 1000, 500]
    assert pa.Table.from_batches(parts).equals(pa.Table.from_batches([batch]))


def test_run_end_encoded_batch_split_under_server_row_limit(server, make_topic, read_committed):
    """A run-end encoded column is a few bytes for any number of rows: the client slices by rows too,
    so a batch over the server's flight.max_batch_rows goes through; without slicing it is refused."""
    loc = server(env={"FLIGHTSINK_FLIGHT_MAX_BATCH_ROWS": "1000"})
    values = pa.RunEndEncodedArray.from_arrays(pa.array([3000, 6000], pa.int32()), pa.array(["a", "b"]))
    table = pa.table({"id": pa.array(range(6000), pa.int64()), "v": values})
    assert pa.ipc.get_record_batch_size(table.combine_chunks().to_batches()[0]) < 64 * 1024
    topic = make_topic()
    with flightsink.Writer(loc, topic, max_batch_rows=1000) as w:
        assert w.write(table) == 6000
    got = read_committed(topic)
    assert sorted(json.loads(r.value)["id"] for r in got) == list(range(6000))
    assert {json.loads(r.value)["v"] for r in got} == {"a", "b"}
    with pytest.raises(flightsink.FlightsinkError) as info:
        with flightsink.Writer(loc, topic, max_batch_rows=10_000) as w:
            w.write(table)
    assert info.value.reason == "batch_too_large"
    assert "flight.max_batch_rows (1000)" in info.value.message
    assert len(read_committed(topic)) == 6000


def test_large_table_split_under_small_server_message_limit(server, make_topic, read_committed):
    loc = server(env={"FLIGHTSINK_FLIGHT_MAX_MESSAGE_BYTES": str(1 * MiB)})
    table = id_table(0, 20_000, pad=300)  # about 6 MiB in one record batch
    assert table.num_rows == 20_000 and pa.ipc.get_record_batch_size(table.combine_chunks().to_batches()[0]) > 5 * MiB

    # Sent whole, the batch is over the server's limit: gRPC refuses it.
    refused = make_topic()
    with pytest.raises(flightsink.ResourceExhaustedError) as too_big:
        with flightsink.Writer(loc, refused, max_batch_bytes=64 * MiB) as w:
            w.write(table.combine_chunks())
            w.checkpoint()
    assert too_big.value.code == "RESOURCE_EXHAUSTED" and not too_big.value.retryable
    assert "larger than max" in too_big.value.message
    assert read_committed(refused) == []

    topic = make_topic()
    with flightsink.Writer(loc, topic, max_batch_bytes=768 * 1024) as w:
        assert w.write(table.combine_chunks()) == 20_000
        assert w.checkpoint().total_rows == 20_000
    assert w.done.total_rows == 20_000
    assert ids(read_committed(topic)) == list(range(20_000))


# --- pandas ----------------------------------------------------------------------------------


def test_pandas_dataframes(server, topic, read_committed):
    pd = pytest.importorskip("pandas")
    loc = server()
    df = pd.DataFrame(
        {
            "id": pd.array([1, 2, None], dtype="Int64"),
            "user": pd.Categorical(["ann", "bøb 😀", None]),
            "amount": [9.5, float("nan"), -0.25],
            "price": [Decimal("12.30"), None, Decimal("-0.05")],
            "ts": pd.to_datetime(
                ["2026-01-02T03:04:05.678901Z", "2026-01-02T03:04:06.000000Z", None], utc=True, format="ISO8601"
            ).tz_convert("Europe/Berlin"),
            "tags": [[1, 2], [], None],
            "addr": [{"city": "Zürich", "zip": 8001}, {"city": None, "zip": None}, None],
            "blob": [b"\x00\x01\x02", b"", None],
            "ok": pd.array([True, None, False], dtype="boolean"),
            "note": ['say "hi"\n', None, "x"],
        }
    )
    # pandas infers types per frame: this one's all-null columns convert to `null` and are cast
    # to the stream's schema; its categorical has other categories (a new dictionary).
    df2 = pd.DataFrame(
        {
            "id": pd.array([3], dtype="Int64"),
            "user": pd.Categorical(["cy"]),
            "amount": [1.0],
            "price": [None],
            "ts": pd.to_datetime([None], utc=True),
            "tags": [None],
            "addr": [None],
            "blob": [None],
            "ok": pd.array([None], dtype="boolean"),
            "note": [None],
        }
    )
    with flightsink.Writer(loc, topic, key_field="user", timestamp_field="ts") as w:
        assert w.write(df) == 3
        assert w.write(df2) == 1
        assert w.checkpoint().total_rows == 4
    assert w.schema.field("user").type == pa.dictionary(pa.int8(), pa.large_string())

    got = read_committed(topic)
    assert [r.key for r in got] == ["ann".encode(), "bøb 😀".encode(), None, b"cy"]
    assert [r.timestamp for r in got[:2]] == [1767323045678, 1767323046000]
    assert [r.value.decode() for r in got] == [
        '{"id":1,"user":"ann","amount":9.5,"price":"12.30","ts":"2026-01-02T03:04:05.678901Z","tags":[1,2],'
        '"addr":{"city":"Zürich","zip":8001},"blob":"AAEC","ok":true,"note":"say \\"hi\\"\\n"}',
        '{"id":2,"user":"bøb 😀","amount":null,"price":null,"ts":"2026-01-02T03:04:06.000000Z","tags":[],'
        '"addr":{"city":null,"zip":null},"blob":"","ok":null,"note":null}',
        '{"id":null,"user":null,"amount":-0.25,"price":"-0.05","ts":null,"tags":null,"addr":null,"blob":null,'
        '"ok":false,"note":"x"}',
        '{"id":3,"user":"cy","amount":1,"price":null,"ts":null,"tags":null,"addr":null,"blob":null,"ok":null,'
        '"note":null}',
    ]


# --- write_stream ----------------------------------------------------------------------------


def test_write_stream_resumes_exactly_once_after_sigkill(restartable_server, topic, read_committed):
    """The server is SIGKILLed mid-stream (1400 rows sent after the last acknowledged
    checkpoint) and restarted on the same port; write_stream reconnects, skips exactly the
    committed rows although the replayed source is cut into other batches, and finishes."""
    srv = restartable_server()
    rows = 10_000
    table = id_table(0, rows)
    calls = []

    def source():
        attempt = len(calls)
        calls.append(attempt)
        size = 700 if attempt == 0 else 1000  # resuming must not depend on the batching
        for off in range(0, rows, size):
            if attempt == 0 and off == 5600:  # checkpoints were acked at 2100 and 4200 rows
                srv.restart()
            yield table.slice(off, size)

    progress = []
    name = wid()
    done = flightsink.write_stream(
        srv.location, topic, source, writer_id=name, checkpoint_every_rows=2000, retries=3, backoff=0.05,
        progress=lambda committed, total: progress.append((committed, total)),
    )
    assert srv.kills == 1 and calls == [0, 1]
    # The resumed stream started at 4200 rows and checkpoint 2; it committed the rest.
    assert done.total_rows == rows - 4200
    assert done.committed_rows == rows
    assert done.last_checkpoint == 2 + len(range(4200 + 2000, rows + 1, 2000)) + 1  # acked, then the tail
    assert progress[0] == (0, None) and progress[-1] == (rows, None)
    assert (4200, None) in progress
    assert [c for c, _ in progress] == sorted(c for c, _ in progress)

    got = ids(read_committed(topic))
    assert len(got) == rows and got == list(range(rows))  # every row exactly once, in order
    status = flightsink.writer_status(srv.location, name)
    assert (status.committed_rows, status.last_checkpoint) == (rows, done.last_checkpoint)

    # Running the finished upload again writes nothing: the writer is past the whole source.
    again = flightsink.write_stream(srv.location, topic, source, writer_id=name, retries=1)
    assert (again.total_rows, again.committed_rows) == (0, rows)
    assert len(read_committed(topic)) == rows


def test_write_stream_refuses_retries_without_writer_id():
    table = id_table(0, 3)
    with pytest.raises(ValueError, match="retries need a writer_id"):
        flightsink.write_stream("grpc://127.0.0.1:1", "t", [table], retries=2)
    with pytest.raises(ValueError, match="replayable"):
        flightsink.write_stream("grpc://127.0.0.1:1", "t", iter([table]), writer_id="w", retries=2)


def test_write_stream_retries_unreachable_server_then_gives_up():
    port = _closed_port()
    calls = []

    def source():
        calls.append(1)
        return [id_table(0, 3)]

    with pytest.raises(flightsink.UnavailableError) as exc:
        flightsink.write_stream(f"grpc://127.0.0.1:{port}", "t", source, writer_id=wid(), retries=2, backoff=0.01)
    assert exc.value.retryable
    assert len(calls) == 3  # the first attempt and two retries


def test_write_stream_does_not_retry_a_bad_row(server, make_topic, read_committed):
    loc = server()
    topic = make_topic(1, {"max.message.bytes": "1024"})
    calls = []

    def source():
        calls.append(1)
        yield id_table(0, 10)
        bad = id_table(10, 20)
        yield bad.set_column(1, "s", pa.array(["x" * 5000 if i == 13 else "ok" for i in range(10, 20)]))

    with pytest.raises(flightsink.InvalidArgumentError) as exc:
        flightsink.write_stream(loc, topic, source, writer_id=wid(), checkpoint_every_rows=10, retries=3, backoff=0)
    e = exc.value
    assert (e.reason, e.retryable) == ("bad_row", False)
    assert "row 13" in e.message
    assert len(calls) == 1
    assert ids(read_committed(topic)) == list(range(10))


def test_write_stream_anonymous_pandas_and_progress(server, topic, read_committed):
    pd = pytest.importorskip("pandas")
    loc = server()
    frames = [pd.DataFrame({"id": range(i, i + 250), "ts": pd.Timestamp("2026-01-02", tz="UTC")})
              for i in range(0, 1000, 250)]
    seen = []
    done = flightsink.write_stream(loc, topic, frames, checkpoint_every_rows=400,
                                   progress=lambda c, t: seen.append((c, t)), timestamp_field="ts")
    assert (done.total_rows, done.last_checkpoint) == (1000, 2)
    assert seen == [(0, 1000), (500, 1000), (1000, 1000)]
    got = read_committed(topic)
    assert ids(got) == list(range(1000))
    assert {r.timestamp for r in got} == {int(dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc).timestamp() * 1000)}
