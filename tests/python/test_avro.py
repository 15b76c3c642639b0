"""format "avro" with a real Confluent-compatible schema registry, decoded by fastavro."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import os
import struct
import urllib.request

import fastavro
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import _require_tools


@pytest.fixture(scope="session")
def registry() -> str:
    url = os.environ.get("FLIGHTSINK_TEST_REGISTRY", "")
    if not url:
        if _require_tools():
            pytest.fail("FLIGHTSINK_TEST_REGISTRY is not set; make test starts a schema registry", pytrace=False)
        pytest.skip("needs FLIGHTSINK_TEST_REGISTRY (make test starts a schema registry)")
    return url.rstrip("/")


@pytest.fixture
def avro_server(server, registry, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"kafka:\n  schema_registry:\n    url: {registry}\n")
    return server("--config", str(cfg))


def schema_by_id(registry: str, schema_id: int) -> dict:
    with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}") as r:
        return json.loads(json.loads(r.read())["schema"])


def decode(registry: str, value: bytes):
    assert value[0] == 0, "Confluent wire format: magic byte 0"
    (schema_id,) = struct.unpack(">I", value[1:5])
    schema = fastavro.parse_schema(schema_by_id(registry, schema_id))
    return schema_id, fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)


def put(location, descriptor: dict, table: pa.Table):
    with flight.connect(location) as client:
        writer, reader = client.do_put(flight.FlightDescriptor.for_command(json.dumps(descriptor)), table.schema)
        if reader.read() is None:
            writer.close()  # raises the server's status
            raise AssertionError("no ready message")
        writer.write_table(table)
        writer.done_writing()
        done = json.loads(reader.read().to_pybytes())
        writer.close()
    return done


def test_avro_round_trip(avro_server, registry, make_topic, read_committed):
    topic = make_topic()
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    table = pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "small": pa.array([-3, None], pa.int16()),
        "name": pa.array(["ann", None]),
        "score": pa.array([0.5, -1.25], pa.float64()),
        "ok": pa.array([True, False]),
        "raw": pa.array([b"\x00\xff", b""], pa.binary()),
        "at": pa.array([ts, None], pa.timestamp("ms", tz="UTC")),
        "day": pa.array([dt.date(2026, 1, 2), dt.date(1969, 12, 31)], pa.date32()),
        "price": pa.array([decimal.Decimal("12.30"), decimal.Decimal("-0.05")], pa.decimal128(10, 2)),
        "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
        "pt": pa.array([{"x": 1, "y": "p"}, {"x": 2, "y": None}],
                       pa.struct([pa.field("x", pa.int32(), nullable=False), ("y", pa.string())])),
        "attrs": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int32())),
        "cat": pa.array(["red", "blue"]).dictionary_encode(),
    })
    assert put(avro_server, {"topic": topic, "format": "avro"}, table)["total_rows"] == 2
    got = [decode(registry, r.value) for r in read_committed(topic)]
    ids = {i for i, _ in got}
    assert len(ids) == 1
    rows = [row for _, row in got]
    assert rows == [
        {"id": 1, "small": -3, "name": "ann", "score": 0.5, "ok": True, "raw": b"\x00\xff", "at": ts,
         "day": dt.date(2026, 1, 2), "price": decimal.Decimal("12.30"), "tags": ["a", "b"],
         "pt": {"x": 1, "y": "p"}, "attrs": {"k": 1}, "cat": "red"},
        {"id": 2, "small": None, "name": None, "score": -1.25, "ok": False, "raw": b"", "at": None,
         "day": dt.date(1969, 12, 31), "price": decimal.Decimal("-0.05"), "tags": [],
         "pt": {"x": 2, "y": None}, "attrs": {}, "cat": "blue"},
    ]
    # The subject is the topic's value subject (TopicNameStrategy).
    with urllib.request.urlopen(f"{registry}/subjects/{topic}-value/versions/latest") as r:
        assert json.loads(r.read())["id"] in ids


def test_schema_evolution(avro_server, registry, make_topic, read_committed):
    topic = make_topic()
    v1 = pa.table({"id": pa.array([1], pa.int64()), "name": ["ann"]})
    put(avro_server, {"topic": topic, "format": "avro"}, v1)
    # A new nullable column is a backward-compatible evolution: a new version.
    v2 = pa.table({"id": pa.array([2], pa.int64()), "name": ["bob"], "email": pa.array([None], pa.string())})
    put(avro_server, {"topic": topic, "format": "avro"}, v2)
    with urllib.request.urlopen(f"{registry}/subjects/{topic}-value/versions") as r:
        assert len(json.loads(r.read())) == 2
    # Changing a column's type is not: FailedPrecondition quoting the registry, nothing written.
    bad = pa.table({"id": pa.array(["three"]), "name": ["cid"]})
    with pytest.raises(pa.ArrowInvalid, match="schema rejected by the registry") as exc:  # FAILED_PRECONDITION
        put(avro_server, {"topic": topic, "format": "avro"}, bad)
    assert "409" in str(exc.value)
    rows = [decode(registry, r.value)[1] for r in read_committed(topic)]
    assert [r["id"] for r in rows] == [1, 2]
