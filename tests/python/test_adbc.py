"""Flight SQL bulk ingest with real ADBC clients: adbc_driver_flightsql and Polars."""

from __future__ import annotations

import uuid

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import polars as pl
import pyarrow as pa
import pytest

from conftest import murmur2_partition, topic_names

HEADER = "adbc.flight.sql.rpc.call_header."


def connect(location, **headers):
    """A Flight SQL connection; call headers carry flightsink's settings."""
    return flightsql.connect(location, db_kwargs={HEADER + k: v for k, v in headers.items()}, autocommit=True)


def orders():
    return pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "user": ["ann", "bob", "ann"],
        "amount": [9.5, 12.0, 3.25],
    })


def test_adbc_ingest_append_with_key_header(server, make_topic, read_committed):
    topic = make_topic(partitions=3)
    with connect(server(), **{"flightsink-key-field": "user"}) as conn, conn.cursor() as cur:
        assert cur.adbc_ingest(topic, orders(), mode="append") == 3
    got = read_committed(topic)
    assert sorted(r.value for r in got) == [
        b'{"id":1,"user":"ann","amount":9.5}',
        b'{"id":2,"user":"bob","amount":12}',
        b'{"id":3,"user":"ann","amount":3.25}',
    ]
    for r in got:
        assert r.key in (b"ann", b"bob")
        assert r.partition == murmur2_partition(r.key, 3)


def test_adbc_metadata(server, make_topic):
    topic = make_topic()
    with connect(server()) as conn:
        assert conn.adbc_get_info()["vendor_name"] == "flightsink"
        objects = conn.adbc_get_objects(depth="tables", table_name_filter=topic).read_all().to_pylist()
        tables = [t["table_name"] for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]]
        assert tables == [topic]
        with conn.cursor() as cur, pytest.raises(adbc_driver_manager.NotSupportedError, match="runs no other queries"):
            cur.execute("SELECT 1")


def test_polars_write_database(server, brokers, read_committed):
    topic = f"py-polars-{uuid.uuid4().hex[:10]}"
    loc = server(env={"FLIGHTSINK_KAFKA_CREATE_TOPICS": "true"})
    df = pl.DataFrame({"id": [1, 2], "city": ["Oslo", "Lima"]})
    conn = connect(loc)
    try:
        # The topic is missing: Polars turns "append" into "create_append", which creates it.
        assert df.write_database(topic, connection=conn, engine="adbc", if_table_exists="append") == 2
        assert df.write_database(topic, connection=conn, engine="adbc", if_table_exists="append") == 2
    finally:
        conn.close()
    values = [r.value for r in read_committed(topic)]
    assert values == [b'{"id":1,"city":"Oslo"}', b'{"id":2,"city":"Lima"}'] * 2


def test_failed_ingest_leaves_nothing_visible(server, make_topic, read_committed):
    # The second batch has a row over the topic's max.message.bytes: the whole ingest is one
    # transaction, so the first batch is aborted with it.
    topic = make_topic(config={"max.message.bytes": "2000"})
    good = pa.record_batch({"id": [1, 2], "s": ["a", "b"]})
    bad = pa.record_batch({"id": [3, 4], "s": ["c", "x" * 5000]})
    reader = pa.RecordBatchReader.from_batches(good.schema, [good, bad])
    with connect(server()) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match=r"stream row 3 \(batch 1, row 1\)"):
            cur.adbc_ingest(topic, reader, mode="append")
    assert read_committed(topic) == []


def test_bad_key_column_type(server, make_topic, read_committed):
    topic = make_topic()
    with connect(server(), **{"flightsink-key-field": "amount"}) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match='key_field.*"amount"'):
            cur.adbc_ingest(topic, orders(), mode="append")
    assert read_committed(topic) == []


def test_modes(server, make_topic, brokers):
    topic = make_topic()
    loc = server()
    with connect(loc) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match="cannot be replaced"):
            cur.adbc_ingest(topic, orders(), mode="replace")
        with pytest.raises(adbc_driver_manager.Error, match="already exists") as exc:
            cur.adbc_ingest(topic, orders(), mode="create")
        assert exc.value.status_code == adbc_driver_manager.AdbcStatusCode.ALREADY_EXISTS
        missing = f"py-missing-{uuid.uuid4().hex[:10]}"
        with pytest.raises(adbc_driver_manager.Error, match="does not exist") as exc:
            cur.adbc_ingest(missing, orders(), mode="append")
        assert exc.value.status_code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND
        with pytest.raises(adbc_driver_manager.Error, match="kafka.create_topics"):
            cur.adbc_ingest(missing, orders(), mode="create_append")
    assert missing not in topic_names(brokers)
