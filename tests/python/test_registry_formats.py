"""Formats protobuf and json_schema, keys with schemas (key_format, key_fields) and subject name
strategies, against the real schema registry, decoded by confluent-kafka's own deserializers:
ProtobufDeserializer (with a message class compiled from the registered .proto by grpcio-tools),
JSONDeserializer and AvroDeserializer."""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import json
import os
import urllib.error
import urllib.request

import pyarrow as pa
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format
from grpc_tools import protoc

from conftest import murmur2_partition
from test_avro import avro_server, put, registry  # noqa: F401 (fixtures: the registry and a server using it)


def latest(registry: str, subject: str) -> dict:
    with urllib.request.urlopen(f"{registry}/subjects/{subject}/versions/latest") as r:
        return json.loads(r.read())


def versions(registry: str, subject: str) -> list:
    with urllib.request.urlopen(f"{registry}/subjects/{subject}/versions") as r:
        return json.loads(r.read())


def message_class(proto_text: str, tmp_path, name: str):
    """Compiles the registered .proto with protoc (grpcio-tools) and returns its first message's class."""
    src = tmp_path / f"{name}.proto"
    src.write_text(proto_text)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")  # google/protobuf/*.proto
    rc = protoc.main(["protoc", f"-I{tmp_path}", f"-I{include}", f"--python_out={tmp_path}", str(src)])
    assert rc == 0, f"protoc could not compile the registered schema:\n{proto_text}"
    spec = importlib.util.spec_from_file_location(f"{name}_pb2", tmp_path / f"{name}_pb2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, next(iter(module.DESCRIPTOR.message_types_by_name)))  # the top-level message


def value_ctx(topic):
    return SerializationContext(topic, MessageField.VALUE)


def key_ctx(topic):
    return SerializationContext(topic, MessageField.KEY)


TS = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)


def sample() -> pa.Table:
    return pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "small": pa.array([-3, None], pa.int16()),
        "name": pa.array(["ann", None]),
        "score": pa.array([0.5, -1.25], pa.float64()),
        "ok": pa.array([True, False]),
        "raw": pa.array([b"\x00\xff", b""], pa.binary()),
        "at": pa.array([TS, None], pa.timestamp("ms", tz="UTC")),
        "day": pa.array([dt.date(2026, 1, 2), dt.date(1969, 12, 31)], pa.date32()),
        "price": pa.array([decimal.Decimal("12.30"), decimal.Decimal("-0.05")], pa.decimal128(10, 2)),
        "tags": pa.array([["a", "b"], []], pa.list_(pa.string())),
        "pt": pa.array([{"x": 1, "y": "p"}, {"x": 2, "y": None}],
                       pa.struct([pa.field("x", pa.int32(), nullable=False), ("y", pa.string())])),
        "attrs": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int32())),
        "cat": pa.array(["red", "blue"]).dictionary_encode(),
    })


def test_protobuf_round_trip(avro_server, registry, make_topic, read_committed, tmp_path):
    topic = make_topic()
    assert put(avro_server, {"topic": topic, "format": "protobuf"}, sample())["total_rows"] == 2
    registered = latest(registry, f"{topic}-value")
    assert registered["schemaType"] == "PROTOBUF"
    cls = message_class(registered["schema"], tmp_path, "value")
    # Without a registry client: with one, the deserializer fetches the writer schema as a serialized
    # FileDescriptorProto (?format=serialized), which Confluent's registry serves and Apicurio's
    # ccompat API does not. It reads the same wire format (magic byte, id, message indexes) either way.
    deserialize = ProtobufDeserializer(cls, {}, None)
    records = read_committed(topic)
    for r in records:
        assert r.value[:6] == b"\x00" + registered["id"].to_bytes(4, "big") + b"\x00", "magic, id, message index [0]"
    msgs = [deserialize(r.value, value_ctx(topic)) for r in records]
    first, second = msgs
    assert (first.id, first.small, first.name, first.score, first.ok, first.raw) == (1, -3, "ann", 0.5, True, b"\x00\xff")
    assert first.at.ToDatetime(tzinfo=dt.timezone.utc) == TS
    assert first.day == (dt.date(2026, 1, 2) - dt.date(1970, 1, 1)).days
    assert first.price == "12.30" and list(first.tags) == ["a", "b"]
    assert (first.pt.x, first.pt.y) == (1, "p") and dict(first.attrs) == {"k": 1} and first.cat == "red"
    # nulls: an optional field is absent, a message field is unset
    assert not second.HasField("small") and not second.HasField("name") and not second.HasField("at")
    assert second.id == 2 and second.price == "-0.05" and second.day == -1 and list(second.tags) == []
    assert second.pt.x == 2 and not second.pt.HasField("y") and second.cat == "blue"
    assert second.raw == b"" and not second.ok


def test_protobuf_evolution(avro_server, registry, make_topic, read_committed, tmp_path):
    topic = make_topic()
    put(avro_server, {"topic": topic, "format": "protobuf"}, pa.table({"id": pa.array([1], pa.int64()), "name": ["ann"]}))
    # a new nullable column is a new field number: a compatible new version
    v2 = pa.table({"id": pa.array([2], pa.int64()), "name": ["bob"], "email": pa.array(["b@x"], pa.string())})
    put(avro_server, {"topic": topic, "format": "protobuf"}, v2)
    assert len(versions(registry, f"{topic}-value")) == 2
    # a column changing type is not: FailedPrecondition quoting the registry, nothing written
    bad = pa.table({"id": pa.array(["three"]), "name": ["cid"]})
    with pytest.raises(pa.ArrowInvalid, match="schema rejected by the registry") as exc:
        put(avro_server, {"topic": topic, "format": "protobuf"}, bad)
    assert "409" in str(exc.value)
    # the first version's readers still read every record
    cls = message_class(json.loads(urllib.request.urlopen(f"{registry}/subjects/{topic}-value/versions/1").read())["schema"],
                        tmp_path, "v1")
    deserialize = ProtobufDeserializer(cls, {}, None)
    assert [deserialize(r.value, value_ctx(topic)).id for r in read_committed(topic)] == [1, 2]


def test_json_schema_round_trip(avro_server, registry, make_topic, read_committed):
    topic = make_topic()
    table = sample().drop_columns(["raw"])
    desc = {"topic": topic, "format": "json_schema", "json.timestamp_format": "unix_millis"}
    assert put(avro_server, desc, table)["total_rows"] == 2
    registered = latest(registry, f"{topic}-value")
    assert registered["schemaType"] == "JSON"
    assert json.loads(registered["schema"])["title"] == "flightsink." + topic.replace("-", "_")
    # the deserializer fetches the writer schema by id and validates each value against it
    deserialize = JSONDeserializer(None, schema_registry_client=SchemaRegistryClient({"url": registry}))
    rows = [deserialize(r.value, value_ctx(topic)) for r in read_committed(topic)]
    assert rows == [
        {"id": 1, "small": -3, "name": "ann", "score": 0.5, "ok": True, "at": 1767323045678, "day": "2026-01-02",
         "price": "12.30", "tags": ["a", "b"], "pt": {"x": 1, "y": "p"}, "attrs": {"k": 1}, "cat": "red"},
        {"id": 2, "small": None, "name": None, "score": -1.25, "ok": False, "at": None, "day": "1969-12-31",
         "price": "-0.05", "tags": [], "pt": {"x": 2, "y": None}, "attrs": {}, "cat": "blue"},
    ]


def test_json_schema_evolution(avro_server, registry, make_topic, read_committed):
    topic = make_topic()
    put(avro_server, {"topic": topic, "format": "json_schema"}, pa.table({"id": pa.array([1], pa.int64()), "name": ["ann"]}))
    v2 = pa.table({"id": pa.array([2], pa.int64()), "name": ["bob"], "email": pa.array([None], pa.string())})
    put(avro_server, {"topic": topic, "format": "json_schema"}, v2)
    assert len(versions(registry, f"{topic}-value")) == 2
    bad = pa.table({"id": pa.array(["three"]), "name": ["cid"]})
    with pytest.raises(pa.ArrowInvalid, match="schema rejected by the registry") as exc:
        put(avro_server, {"topic": topic, "format": "json_schema"}, bad)
    assert "409" in str(exc.value)
    deserialize = JSONDeserializer(None, schema_registry_client=SchemaRegistryClient({"url": registry}))
    assert [deserialize(r.value, value_ctx(topic))["id"] for r in read_committed(topic)] == [1, 2]


KEYED = pa.table({
    "tenant": pa.array(["acme", "acme", "globex", "initech", "acme", "globex"]),
    "order": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    "amount": pa.array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5]),
})


@pytest.mark.parametrize("key_format", ["avro", "protobuf", "json_schema", "json"])
def test_record_keys(key_format, avro_server, registry, make_topic, read_committed, tmp_path):
    topic = make_topic(3)
    desc = {"topic": topic, "format": "avro", "key_fields": ["tenant", "order"], "key_format": key_format}
    assert put(avro_server, desc, KEYED)["total_rows"] == 6
    client = SchemaRegistryClient({"url": registry})
    records = read_committed(topic)
    assert len(records) == 6
    if key_format == "avro":
        assert latest(registry, f"{topic}-key")["schemaType"] in ("AVRO", None)
        deserialize = AvroDeserializer(client)
        keys = [deserialize(r.key, key_ctx(topic)) for r in records]
    elif key_format == "protobuf":
        registered = latest(registry, f"{topic}-key")
        assert registered["schemaType"] == "PROTOBUF" and "package flightsink.key;" in registered["schema"]
        deserialize = ProtobufDeserializer(message_class(registered["schema"], tmp_path, "key"), {}, None)
        keys = [json_format.MessageToDict(deserialize(r.key, key_ctx(topic)), preserving_proto_field_name=True)
                for r in records]
        keys = [{"tenant": k["tenant"], "order": int(k["order"])} for k in keys]
    elif key_format == "json_schema":
        assert latest(registry, f"{topic}-key")["schemaType"] == "JSON"
        deserialize = JSONDeserializer(None, schema_registry_client=client)
        keys = [deserialize(r.key, key_ctx(topic)) for r in records]
    else:
        with pytest.raises(urllib.error.HTTPError):  # plain JSON registers nothing
            latest(registry, f"{topic}-key")
        keys = [json.loads(r.key) for r in records]
    values = AvroDeserializer(client)
    for r, k in zip(records, keys):
        v = values(r.value, value_ctx(topic))
        assert k == {"tenant": v["tenant"], "order": v["order"]}
        # partitioned as the Java producer does: murmur2 of the serialized key bytes
        assert r.partition == murmur2_partition(r.key, 3), (k, r.partition)
    assert len({r.partition for r in records}) > 1


def test_key_field_with_a_schema(avro_server, registry, make_topic, read_committed):
    """key_field (one column) in key_format avro is the bare value; a null value is no key."""
    topic = make_topic()
    table = pa.table({"user": pa.array(["ann", None]), "n": pa.array([1, 2], pa.int64())})
    put(avro_server, {"topic": topic, "format": "json", "key_field": "user", "key_format": "avro"}, table)
    assert json.loads(latest(registry, f"{topic}-key")["schema"]) == "string"
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    records = read_committed(topic)
    assert deserialize(records[0].key, key_ctx(topic)) == "ann"
    assert records[1].key is None
    assert [json.loads(r.value)["n"] for r in records] == [1, 2]


def test_subject_name_strategies(avro_server, registry, make_topic, read_committed):
    topic = make_topic()
    record = "flightsink." + topic.replace("-", "_")
    put(avro_server, {"topic": topic, "format": "protobuf", "subject_name_strategy": "record",
                      "key_field": "id", "key_format": "json_schema"}, pa.table({"id": pa.array([1], pa.int64())}))
    assert latest(registry, record)["schemaType"] == "PROTOBUF"
    assert latest(registry, "flightsink.key." + topic.replace("-", "_"))["schemaType"] == "JSON"
    put(avro_server, {"topic": topic, "format": "avro", "subject_name_strategy": "topic_record"},
        pa.table({"id": pa.array([2], pa.int64())}))
    assert json.loads(latest(registry, f"{topic}-{record}")["schema"])["name"] == topic.replace("-", "_")
    # an explicit subject wins over the strategy
    put(avro_server, {"topic": topic, "format": "json_schema", "subject_name_strategy": "record", "subject": f"{topic}-mine"},
        pa.table({"id": pa.array([3], pa.int64())}))
    assert latest(registry, f"{topic}-mine")["schemaType"] == "JSON"
    assert len(read_committed(topic)) == 3
