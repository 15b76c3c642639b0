"""A topic whose Avro value subject exists in the schema registry is a table without CREATE TABLE:
SQL INSERTs through ADBC land in that very schema (its id, nothing registered), decoded by fastavro."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest

from test_avro import avro_server, decode, registry  # noqa: F401  (fixtures)

ORDER = {
    "type": "record", "name": "Order", "namespace": "com.acme.shop",
    "doc": "an order, as the shop's own producers write it",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


def register(registry: str, subject: str, schema: dict) -> int:
    req = urllib.request.Request(
        f"{registry}/subjects/{subject}/versions",
        data=json.dumps({"schema": json.dumps(schema)}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"}, method="POST")
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())["id"]


def versions(registry: str, subject: str) -> list[int]:
    with urllib.request.urlopen(f"{registry}/subjects/{subject}/versions") as r:
        return json.loads(r.read())


def test_avro_subject_is_a_table(avro_server, registry, make_topic, read_committed):  # noqa: F811
    topic = make_topic()
    subject = f"{topic}-value"
    schema_id = register(registry, subject, ORDER)
    t1 = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    t2 = dt.datetime(1969, 12, 31, 23, 59, 59, 1000, tzinfo=dt.timezone.utc)
    with flightsql.connect(avro_server, autocommit=True) as conn, conn.cursor() as cur:
        objects = conn.adbc_get_objects(depth="all", table_name_filter=topic).read_all().to_pylist()
        tables = [t for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]]
        assert [(t["table_name"], t["table_type"]) for t in tables] == [(topic, "TABLE")]
        assert [c["column_name"] for c in tables[0]["table_columns"]] == ["id", "customer", "amount", "note", "placed"]
        cur.execute(f'SELECT * FROM "{topic}" WHERE 1=0')
        probed = cur.fetch_arrow_table().schema
        assert probed.names == ["id", "customer", "amount", "note", "placed"]
        assert str(probed.field("placed").type) == "timestamp[ms]"  # probes report no zone (Spark)
        cur.executemany(f'INSERT INTO "{topic}" VALUES (?, ?, ?, ?, ?)',
                        [(1, "ann", 9.5, None, t1), (2, "bob", 12.25, "gift wrap", t2)])
    got = read_committed(topic)
    decoded = [decode(registry, r.value) for r in got]
    assert [i for i, _ in decoded] == [schema_id, schema_id]
    assert [v for _, v in decoded] == [
        {"id": 1, "customer": "ann", "amount": 9.5, "note": None, "placed": t1},
        {"id": 2, "customer": "bob", "amount": 12.25, "note": "gift wrap", "placed": t2},
    ]
    assert versions(registry, subject) == [1], "writing registers nothing"


def test_avro_subject_of_another_shape_is_refused(avro_server, registry, make_topic, read_committed):  # noqa: F811
    topic = make_topic()
    other = json.loads(json.dumps(ORDER))
    other["fields"][3]["type"] = ["string", "null"]  # null second: not how flightsink writes a nullable column
    other["fields"][3]["default"] = ""
    register(registry, f"{topic}-value", other)
    with flightsql.connect(avro_server, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as exc:
            cur.executemany(f'INSERT INTO "{topic}" VALUES (?, ?, ?, ?, ?)',
                            [(1, "ann", 9.5, "x", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))])
    msg = str(exc.value)
    assert "value.note" in msg and "CREATE TABLE" in msg, msg
    assert read_committed(topic) == []


def test_table_without_declaration_or_subject(avro_server, make_topic):  # noqa: F811
    topic = make_topic()
    with flightsql.connect(avro_server, autocommit=True) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match=f"register its Avro value schema as subject \"{topic}-value\""):
            cur.execute(f'INSERT INTO "{topic}" VALUES (?)', (1,))
