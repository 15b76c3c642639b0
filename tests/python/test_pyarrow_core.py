"""pyarrow's Flight client against flightsink and a real Kafka broker: what lands in Kafka
(byte for byte), the acks, compressed and large IPC bodies, and how failures reach a pyarrow
client.

pyarrow turns gRPC codes into exceptions as follows (the server's codes are in README.md):
  INVALID_ARGUMENT, RESOURCE_EXHAUSTED -> pyarrow.ArrowInvalid
  NOT_FOUND                            -> pyarrow.ArrowKeyError (not a FlightError)
  ABORTED                              -> flight.FlightInternalError
  UNAVAILABLE                          -> flight.FlightUnavailableError
The flightsink-reason trailer is not on the exception; a ClientMiddleware sees it (the
`reasons` fixture). Tests whose outcome depends on the delivery mode run in both. A stream's error is raised by the first call after the server ended it,
often writer.close() (reader.read() returns None first).
"""

from __future__ import annotations

import json
import signal
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import Record, murmur2_partition, topic_names

MiB = 1 << 20


def cmd(**kw) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(json.dumps(kw))


def ack(reader, writer=None) -> dict:
    """The next ack; when the server ended the stream instead, fails with its status (taken
    from writer.close() when the writer is given)."""
    buf = reader.read()
    if buf is None:
        status = "(no status: writer not given)"
        if writer is not None:
            try:
                writer.close()
                status = "OK"
            except Exception as e:  # noqa: BLE001 - shown in the failure
                status = f"{type(e).__name__}: {e}"
        raise AssertionError(f"the server ended the stream instead of sending an ack; status {status}")
    return json.loads(buf.to_pybytes())


DELIVERIES = ["at_least_once", "exactly_once"]


def ready(delivery: str) -> dict:
    """The ready ack of an anonymous stream."""
    return {"type": "ready", "protocol": 1, "delivery": delivery, "writer_id": None, "last_checkpoint": None,
            "committed_rows": 0}


def checkpoint(n: int, rows: int, total: int) -> dict:
    return {"type": "checkpoint", "checkpoint": n, "rows": rows, "total_rows": total}


def done(delivery: str, total: int, last: int | None) -> dict:
    """The done ack of an anonymous stream that commits its tail."""
    ack = {"type": "done", "total_rows": total, "last_checkpoint": last}
    if delivery == "exactly_once":
        ack["discarded_rows"] = 0
    return ack


def put(location, descriptor, table_or_batches, *, options=None, checkpoint=1) -> list[dict]:
    """A whole clean stream: every batch, the last one with {"checkpoint": N}; returns the acks."""
    batches = table_or_batches.to_batches() if isinstance(table_or_batches, pa.Table) else table_or_batches
    with flight.connect(location) as client:
        writer, reader = client.do_put(descriptor, batches[0].schema, options=options)
        acks = [ack(reader, writer)]
        for b in batches[:-1]:
            writer.write_batch(b)
        writer.write_with_metadata(batches[-1], pa.py_buffer(b'{"checkpoint": %d}' % checkpoint))
        acks.append(ack(reader, writer))
        writer.done_writing()
        acks.append(ack(reader, writer))
        assert reader.read() is None
        writer.close()
    return acks


def run_failing(location, descriptor, schema, steps, *, reasons=None, options=None):
    """Run steps(writer, reader) on a stream that must fail; returns the exception. Whatever
    call surfaces the server's status (a write, read or close) ends the stream."""
    middleware = [reasons] if reasons is not None else []
    with flight.connect(location, middleware=middleware) as client:
        writer, reader = client.do_put(descriptor, schema, options=options)
        try:
            steps(writer, reader)
            writer.done_writing()
            while reader.read() is not None:
                pass
            writer.close()
        except Exception as e:  # noqa: BLE001 - the caller asserts the type
            try:
                writer.close()  # ends the stream if an assertion left it open
            except Exception:  # noqa: BLE001 - the same status again
                pass
            if isinstance(e, AssertionError):
                raise
            # Without its traceback the exception holds no frame that holds the writer: pyarrow
            # keeps the connection open while a writer or reader object lives.
            return e.with_traceback(None)
    pytest.fail("the stream succeeded; expected it to fail")


# --- (a) types, keys, timestamps, checkpoints, acks ------------------------------------------

ADDR = pa.struct([("city", pa.string()), ("zip", pa.int32())])
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("amount", pa.float64()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("ok", pa.bool_()),
        ("tags", pa.list_(pa.int32())),
        ("addr", ADDR),
        ("color", pa.dictionary(pa.int8(), pa.string())),  # what pandas Categorical becomes
    ]
)


def core_batch(id, name, amount, ts, ok, tags, addr, color_idx, color_dict) -> pa.RecordBatch:
    return pa.record_batch(
        [
            pa.array(id, pa.int64()),
            pa.array(name, pa.string()),
            pa.array(amount, pa.float64()),
            pa.array(ts, pa.timestamp("ms", tz="UTC")),
            pa.array(ok, pa.bool_()),
            pa.array(tags, pa.list_(pa.int32())),
            pa.array(addr, ADDR),
            pa.DictionaryArray.from_arrays(pa.array(color_idx, pa.int8()), pa.array(color_dict, pa.string())),
        ],
        schema=SCHEMA,
    )


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_rows_land_byte_for_byte(server, topic, read_committed, delivery):
    batch1 = core_batch(
        id=[1, 2],
        name=["ann", None],
        amount=[9.5, -0.25],
        ts=[1767323045678, 0],  # 2026-01-02T03:04:05.678Z, the epoch
        ok=[True, False],
        tags=[[1, 2], []],
        addr=[{"city": "Oslo", "zip": 150}, None],
        color_idx=[0, 1],
        color_dict=["red", "green"],
    )
    # A new dictionary for the second batch: pyarrow sends a replacement dictionary batch.
    batch2 = core_batch(
        id=[3, 4],
        name=["bob", "ann"],
        amount=[1e100, 3.0],
        ts=[1767323045001, 1767323046000],
        ok=[None, True],
        tags=[None, [-7, None]],
        addr=[{"city": 'Q"\\\n\u00e9', "zip": None}, {"city": None, "zip": -1}],
        color_idx=[0, None],
        color_dict=["blue"],
    )
    descriptor = cmd(topic=topic, key_field="name", timestamp_field="ts", delivery=delivery)
    with flight.connect(server()) as client:
        writer, reader = client.do_put(descriptor, SCHEMA)
        assert ack(reader, writer) == ready(delivery)
        writer.write_with_metadata(batch1, pa.py_buffer(b'{"checkpoint": 1}'))
        assert ack(reader, writer) == checkpoint(1, 2, 2)
        writer.write_batch(batch2)
        writer.write_metadata(pa.py_buffer(b'{"checkpoint": 2}'))  # a metadata-only message
        assert ack(reader, writer) == checkpoint(2, 2, 4)
        writer.done_writing()
        assert ack(reader, writer) == done(delivery, 4, 2)
        assert reader.read() is None
        writer.close()

    assert read_committed(topic) == [
        Record(
            b"ann",
            b'{"id":1,"name":"ann","amount":9.5,"ts":"2026-01-02T03:04:05.678Z","ok":true,"tags":[1,2],'
            b'"addr":{"city":"Oslo","zip":150},"color":"red"}',
            1767323045678,
            0,
        ),
        Record(
            None,
            b'{"id":2,"name":null,"amount":-0.25,"ts":"1970-01-01T00:00:00.000Z","ok":false,"tags":[],'
            b'"addr":null,"color":"green"}',
            0,
            0,
        ),
        Record(
            b"bob",
            b'{"id":3,"name":"bob","amount":1e+100,"ts":"2026-01-02T03:04:05.001Z","ok":null,"tags":null,'
            b'"addr":{"city":"Q\\"\\\\\\n\xc3\xa9","zip":null},"color":"blue"}',
            1767323045001,
            0,
        ),
        Record(
            b"ann",
            b'{"id":4,"name":"ann","amount":3,"ts":"2026-01-02T03:04:06.000Z","ok":true,"tags":[-7,null],'
            b'"addr":{"city":null,"zip":-1},"color":null}',
            1767323046000,
            0,
        ),
    ]


@pytest.mark.parametrize("topic", [4], indirect=True)
@pytest.mark.parametrize("delivery", DELIVERIES)
def test_keys_partition_like_the_java_client(server, topic, read_committed, delivery):
    users = ["ann", "bob", "cy", "dee", "ed", "fay", "gus", "hal", "ivy", "jo", "ann", "bob"]
    table = pa.table({"n": pa.array(range(len(users)), pa.int64()), "user": users})
    acks = put(server(), cmd(topic=topic, key_field="user", delivery=delivery), table)
    assert acks == [ready(delivery), checkpoint(1, 12, 12), done(delivery, 12, 1)]
    got = read_committed(topic)
    assert sorted(r.value for r in got) == sorted(
        b'{"n":%d,"user":"%s"}' % (i, u.encode()) for i, u in enumerate(users)
    )
    for r in got:
        assert r.partition == murmur2_partition(r.key, 4), r
    assert len({r.partition for r in got}) > 1  # the keys do spread
    for p in range(4):  # within a partition, stream order
        ns = [json.loads(r.value)["n"] for r in got if r.partition == p]
        assert ns == sorted(ns)


def test_path_descriptor_integer_key_and_produce_time(server, make_topic, read_committed):
    t1 = make_topic()
    table = pa.table({"k": pa.array([42, -7, None], pa.int64()), "v": ["a", "b", "c"]})
    loc = server()
    before = int(time.time() * 1000)
    put(loc, flight.FlightDescriptor.for_path(t1), table)
    after = int(time.time() * 1000)
    got = read_committed(t1)
    assert [(r.key, r.value) for r in got] == [
        (None, b'{"k":42,"v":"a"}'),
        (None, b'{"k":-7,"v":"b"}'),
        (None, b'{"k":null,"v":"c"}'),
    ]
    for r in got:  # no timestamp_field: the produce time
        assert before <= r.timestamp <= after, (r, before, after)

    t2 = make_topic()
    put(loc, cmd(topic=t2, key_field="k"), table)
    assert [r.key for r in read_committed(t2)] == [b"42", b"-7", None]


def test_timestamp_units_and_time_zones(server, topic, read_committed):
    # Every unit prints as RFC 3339 in UTC with exactly the unit's fraction digits, whatever the
    # column's time zone; instants before 1970 round down.
    table = pa.table(
        {
            "s": pa.array([1767323045, -1, None], pa.timestamp("s")),
            "ms": pa.array([1767323045678, -1, None], pa.timestamp("ms", tz="UTC")),
            "us": pa.array([1767323045678901, -1, None], pa.timestamp("us", tz="Asia/Kolkata")),
            "ns": pa.array([1767323045678901234, -1, None], pa.timestamp("ns", tz="America/New_York")),
        }
    )
    loc = server()
    put(loc, cmd(topic=topic), table)
    got = read_committed(topic)
    assert [r.value for r in got] == [
        b'{"s":"2026-01-02T03:04:05Z","ms":"2026-01-02T03:04:05.678Z",'
        b'"us":"2026-01-02T03:04:05.678901Z","ns":"2026-01-02T03:04:05.678901234Z"}',
        b'{"s":"1969-12-31T23:59:59Z","ms":"1969-12-31T23:59:59.999Z",'
        b'"us":"1969-12-31T23:59:59.999999Z","ns":"1969-12-31T23:59:59.999999999Z"}',
        b'{"s":null,"ms":null,"us":null,"ns":null}',
    ]
    # As the record timestamp, ns is floored to ms.
    put(loc, cmd(topic=topic, timestamp_field="ns"), table.slice(0, 1))
    assert read_committed(topic)[-1].timestamp == 1767323045678


def test_record_timestamp_before_1970_is_a_bad_row(server, topic, read_committed, reasons):
    # Kafka record timestamps cannot be negative: the row is named and nothing of its batch is written.
    table = pa.table({"id": [0, 1], "ts": pa.array([1767323045678, -1], pa.timestamp("ms", tz="UTC"))})

    def steps(writer, reader):
        writer.write_batch(table.to_batches()[0])

    err = run_failing(server(), cmd(topic=topic, timestamp_field="ts"), table.schema, steps, reasons=reasons)
    assert isinstance(err, pa.ArrowInvalid), repr(err)
    assert "stream row 1 (batch 0, row 1)" in str(err) and "before 1970" in str(err), str(err)
    assert reasons.seen == ["bad_row"]
    assert read_committed(topic) == []


# --- (b) compressed IPC bodies ---------------------------------------------------------------


def compressible_table(rows=300, width=10_000) -> tuple[pa.Table, list[bytes]]:
    """About 3 MB of Arrow data that compresses to a few KB, and the values it must become."""
    strings = [("%04d" % i) * (width // 4) for i in range(rows)]
    colors = ["red", "green", "blue"]
    table = pa.table(
        {
            "i": pa.array(range(rows), pa.int64()),
            "s": strings,
            "c": pa.array([colors[i % 3] for i in range(rows)]).dictionary_encode(),
        }
    )
    values = [b'{"i":%d,"s":"%s","c":"%s"}' % (i, s.encode(), colors[i % 3].encode()) for i, s in enumerate(strings)]
    return table, values


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_compressed_ipc_bodies_land_identically(server, topic, read_committed, codec, delivery):
    # The server takes messages of at most 1 MiB: the ~3 MB batch only fits compressed, so
    # this proves the compressed body went over the wire and was decompressed.
    loc = server(env={"FLIGHTSINK_FLIGHT_MAX_MESSAGE_BYTES": str(MiB)})
    table, values = compressible_table()
    assert table.nbytes > 2 * MiB
    options = flight.FlightCallOptions(write_options=pa.ipc.IpcWriteOptions(compression=codec))
    acks = put(loc, cmd(topic=topic, delivery=delivery), table.combine_chunks().to_batches(), options=options)
    assert acks == [ready(delivery), checkpoint(1, 300, 300), done(delivery, 300, 1)]
    assert [r.value for r in read_committed(topic)] == values


def test_uncompressed_batch_over_max_message_bytes(server, topic, read_committed, reasons):
    loc = server(env={"FLIGHTSINK_FLIGHT_MAX_MESSAGE_BYTES": str(MiB)})
    table, _ = compressible_table()
    batch = table.combine_chunks().to_batches()[0]

    def steps(writer, reader):
        assert ack(reader, writer)["type"] == "ready"
        writer.write_with_metadata(batch, pa.py_buffer(b'{"checkpoint": 1}'))

    err = run_failing(loc, cmd(topic=topic), batch.schema, steps, reasons=reasons)
    assert isinstance(err, pa.ArrowInvalid), repr(err)
    assert "resource exhausted" in str(err) and "1048576" in str(err), str(err)
    # grpc-go ends the stream itself: no reason trailer reaches the client, and the message is
    # grpc's; the server's log names the setting.
    assert "flight.max_message_bytes" in loc.wait_for_log("flight.max_message_bytes")
    assert read_committed(topic) == []


# --- (c) a batch over grpc's old 4 MiB default -----------------------------------------------


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_20mb_batch_lands(server, topic, read_committed, delivery):
    rows, width = 40, 500_000
    strings = [(("%02d" % i) + "abcdefghijklmnopqrstuvwxyz" * (width // 26 + 1))[:width] for i in range(rows)]
    batch = pa.record_batch([pa.array(range(rows), pa.int64()), pa.array(strings)], names=["i", "s"])
    assert 16 * MiB < batch.nbytes < 64 * MiB
    acks = put(server(), cmd(topic=topic, key_field="i", delivery=delivery), [batch])
    assert acks == [ready(delivery), checkpoint(1, rows, rows), done(delivery, rows, 1)]
    got = read_committed(topic)
    assert len(got) == rows
    for i, r in enumerate(got):
        assert r.key == b"%d" % i
        assert r.value == b'{"i":%d,"s":"%s"}' % (i, strings[i].encode()), f"row {i} differs"


# --- (d) failures ----------------------------------------------------------------------------

SMALL = pa.schema([("id", pa.int64()), ("s", pa.string())])


def small(ids, s=None) -> pa.RecordBatch:
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array(s or ["x"] * len(ids))], schema=SMALL)


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_missing_topic(server, brokers, reasons, delivery):
    missing = f"py-missing-{delivery}-{time.time_ns()}"

    def steps(writer, reader):
        writer.write_batch(small([1]))

    err = run_failing(server(), cmd(topic=missing, delivery=delivery), SMALL, steps, reasons=reasons)
    # NOT_FOUND: pyarrow raises its KeyError, not a FlightError subclass
    assert isinstance(err, pa.ArrowKeyError), repr(err)
    assert "not found" in str(err)
    assert f'topic "{missing}" does not exist' in str(err)
    assert "kafka.create_topics" in str(err)
    assert "[durable_checkpoint=0 durable_rows=0]" in str(err)
    assert reasons.seen == ["topic_missing"]
    assert missing not in topic_names(brokers)


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_abort_marker(server, topic, read_committed, reasons, delivery):
    def steps(writer, reader):
        assert ack(reader, writer) == ready(delivery)
        writer.write_with_metadata(small([1, 2]), pa.py_buffer(b'{"checkpoint": 1}'))
        assert ack(reader, writer) == checkpoint(1, 2, 2)
        writer.write_metadata(pa.py_buffer(b'{"abort":"boom"}'))

    err = run_failing(server(), cmd(topic=topic, delivery=delivery), SMALL, steps, reasons=reasons)
    # ABORTED: pyarrow maps it to FlightInternalError
    assert isinstance(err, flight.FlightInternalError), repr(err)
    assert "aborted" in str(err)
    assert 'client aborted the stream: "boom" [durable_checkpoint=1 durable_rows=2]' in str(err)
    assert reasons.seen == ["client_abort"]
    assert [r.value for r in read_committed(topic)] == [b'{"id":1,"s":"x"}', b'{"id":2,"s":"x"}']


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_row_over_max_message_bytes_rejects_its_batch(server, make_topic, read_committed, reasons, delivery):
    topic = make_topic(config={"max.message.bytes": "2000"})

    def steps(writer, reader):
        assert ack(reader, writer) == ready(delivery)
        writer.write_with_metadata(small([0, 1, 2]), pa.py_buffer(b'{"checkpoint": 1}'))
        assert ack(reader, writer) == checkpoint(1, 3, 3)
        writer.write_with_metadata(small([3, 4, 5, 6], ["y", "y", "z" * 3000, "y"]), pa.py_buffer(b'{"checkpoint": 2}'))

    err = run_failing(server(), cmd(topic=topic, delivery=delivery), SMALL, steps, reasons=reasons)
    assert isinstance(err, pa.ArrowInvalid), repr(err)
    assert "stream row 5 (batch 1, row 2)" in str(err), str(err)
    assert "max.message.bytes (2000)" in str(err), str(err)
    assert "[durable_checkpoint=1 durable_rows=3]" in str(err), str(err)
    assert reasons.seen == ["bad_row"]
    assert [r.value for r in read_committed(topic)] == [b'{"id":%d,"s":"x"}' % i for i in range(3)]


def test_unknown_descriptor_key(server, topic, read_committed, reasons):
    def steps(writer, reader):
        writer.write_batch(small([1]))

    err = run_failing(server(), cmd(topic=topic, partition=3), SMALL, steps, reasons=reasons)
    assert isinstance(err, pa.ArrowInvalid), repr(err)
    assert 'invalid descriptor: cmd: unknown key "partition"' in str(err), str(err)
    assert reasons.seen == ["bad_descriptor"]
    assert read_committed(topic) == []


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_checkpoint_numbers_must_increase(server, topic, read_committed, reasons, delivery):
    def steps(writer, reader):
        assert ack(reader, writer) == ready(delivery)
        writer.write_with_metadata(small([1]), pa.py_buffer(b'{"checkpoint": 5}'))
        assert ack(reader, writer) == checkpoint(5, 1, 1)
        writer.write_with_metadata(small([2]), pa.py_buffer(b'{"checkpoint": 5}'))

    err = run_failing(server(), cmd(topic=topic, delivery=delivery), SMALL, steps, reasons=reasons)
    assert isinstance(err, pa.ArrowInvalid), repr(err)
    assert "checkpoint 5 is not greater than the previous checkpoint 5" in str(err), str(err)
    assert "[durable_checkpoint=5 durable_rows=1]" in str(err), str(err)
    assert reasons.seen == ["bad_metadata"]
    # the batch carrying a bad marker is rejected before it is produced
    assert [r.value for r in read_committed(topic)] == [b'{"id":1,"s":"x"}']


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_shutdown_ends_open_stream_with_unavailable(server, topic, read_committed, reasons, delivery):
    loc = server(env={"FLIGHTSINK_FLIGHT_SHUTDOWN_GRACE": "0s"})

    def steps(writer, reader):
        assert ack(reader, writer) == ready(delivery)
        writer.write_with_metadata(small([1]), pa.py_buffer(b'{"checkpoint": 1}'))
        assert ack(reader, writer) == checkpoint(1, 1, 1)
        loc.proc.send_signal(signal.SIGTERM)
        assert reader.read() is None  # the stream ends without another ack
        writer.close()  # raises the stream's status

    err = run_failing(loc, cmd(topic=topic, delivery=delivery), SMALL, steps, reasons=reasons)
    assert isinstance(err, flight.FlightUnavailableError), repr(err)
    assert "the server is shutting down" in str(err), str(err)
    assert "[durable_checkpoint=1 durable_rows=1]" in str(err), str(err)
    assert reasons.seen == ["shutdown"]
    assert loc.proc.wait(20) == 0, loc.log()
    assert [r.value for r in read_committed(topic)] == [b'{"id":1,"s":"x"}']


# Kafka 4 refuses records whose timestamp is more than message.timestamp.after.max.ms (default
# one hour) ahead of the broker's clock, and fails the whole produce batch that holds one.
FUTURE_MS = 4102444800000  # 2100-01-01T00:00:00Z
TS = pa.schema([("n", pa.int64()), ("ts", pa.timestamp("ms", tz="UTC"))])


def ts_batch(first: int, stamps: list[int]) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(range(first, first + len(stamps)), pa.int64()), pa.array(stamps, TS.field("ts").type)], schema=TS
    )


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_timestamp_beyond_topic_limit_is_a_bad_row(server, topic, read_committed, reasons, delivery):
    """A client timestamp Kafka will refuse is bad input: InvalidArgument naming the row,
    like a row over max.message.bytes, not Internal."""

    def steps(writer, reader):
        assert ack(reader, writer) == ready(delivery)
        writer.write_with_metadata(ts_batch(0, [1767323045678, FUTURE_MS]), pa.py_buffer(b'{"checkpoint": 1}'))

    err = run_failing(server(), cmd(topic=topic, timestamp_field="ts", delivery=delivery), TS, steps, reasons=reasons)
    assert isinstance(err, pa.ArrowInvalid), repr(err)
    assert "stream row 1 (batch 0, row 1)" in str(err), str(err)
    assert reasons.seen == ["bad_row"]
    assert read_committed(topic) == []


def test_bad_timestamp_in_one_stream_does_not_fail_another(server, topic, read_committed):
    """At-least-once streams share one producer. Another stream's refused record must not
    fail this stream's records, which Kafka accepts."""
    loc = server()
    descriptor = cmd(topic=topic, timestamp_field="ts", delivery="at_least_once")
    bad_results: list[str] = []
    bad_done = threading.Event()

    def bad_streams():
        for k in range(5):
            with flight.connect(loc) as client:
                writer, reader = client.do_put(descriptor, TS)
                try:
                    writer.write_with_metadata(ts_batch(-1 - k, [FUTURE_MS]), pa.py_buffer(b'{"checkpoint": 1}'))
                    writer.done_writing()
                    while reader.read() is not None:
                        pass
                    writer.close()
                    bad_results.append("succeeded")
                except Exception as e:  # noqa: BLE001 - any failure is expected
                    bad_results.append(type(e).__name__)
        bad_done.set()

    rows, batch_rows, max_batches = 0, 500, 400
    stamps = [1767323045678] * batch_rows
    bad = threading.Thread(target=bad_streams)
    try:
        with flight.connect(loc) as client:
            writer, reader = client.do_put(descriptor, TS)
            assert ack(reader, writer) == ready("at_least_once")
            for i in range(1, max_batches + 1):
                writer.write_with_metadata(ts_batch(rows, stamps), pa.py_buffer(b'{"checkpoint": %d}' % i))
                rows += batch_rows
                assert ack(reader, writer) == checkpoint(i, batch_rows, rows)
                if i == 1:
                    bad.start()  # while this stream keeps producing
                elif bad_done.is_set():
                    break
            writer.done_writing()
            assert ack(reader, writer) == done("at_least_once", rows, i)
            writer.close()
    finally:
        if bad.ident is not None:
            bad.join(60)  # before the topic and the server go away
    assert bad_done.is_set(), "the bad streams did not finish within 60s"
    assert "succeeded" not in bad_results, bad_results
    got = read_committed(topic)
    assert [json.loads(r.value)["n"] for r in got] == list(range(rows))
