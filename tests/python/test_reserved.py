"""Reserved topics from real clients: ADBC ingest and pyarrow cannot write to the progress topic,
and adbc_get_objects lists only the topics the caller may write."""

from __future__ import annotations

import json
import uuid

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest

PROGRESS_TOPIC = "flightsink-writers"  # kafka.progress_topic's default
MALLORY_TOKEN = "mallory-token-0123456789abcdef"
LOADER_TOKEN = "loader-token-0123456789abcdef"


def start(server, tmp_path, loader_pattern: str):
    config = tmp_path / "config.yaml"
    config.write_text(
        "auth:\n"
        "  tokens:\n"
        f"    - {{principal: mallory, token: {{value: {MALLORY_TOKEN}}}}}\n"
        f"    - {{principal: loader, token: {{value: {LOADER_TOKEN}}}}}\n"
        "  principals:\n"
        "    - {name: mallory, topics: ['*']}\n"
        f"    - {{name: loader, topics: ['{loader_pattern}']}}\n"
    )
    return server("--config", str(config))


def connect(location, token: str, **headers: str):
    """A Flight SQL connection as the token's principal; call headers carry flightsink's settings."""
    kwargs = {"adbc.flight.sql.authorization_header": "Bearer " + token}
    kwargs.update({"adbc.flight.sql.rpc.call_header." + k: v for k, v in headers.items()})
    return flightsql.connect(location, db_kwargs=kwargs, autocommit=True)


def forged_progress():
    """A progress record claiming that a writer of the loader committed 123,456 rows."""
    writer = f"loader:w-{uuid.uuid4().hex[:10]}"
    return pa.table({"key": [writer], "writer_id": [writer], "topic": ["t"],
                     "checkpoint": pa.array([99], pa.int64()), "committed_rows": pa.array([123_456], pa.int64())})


def test_progress_topic_is_not_writable(server, make_topic, tmp_path):
    loc = start(server, tmp_path, make_topic())
    # ADBC bulk ingest, even for a principal allowed every topic.
    with connect(loc, MALLORY_TOKEN, **{"flightsink-key-field": "key"}) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match=f'topic "{PROGRESS_TOPIC}" is reserved'):
            cur.adbc_ingest(PROGRESS_TOPIC, forged_progress(), mode="append")
    # pyarrow DoPut with key_field.
    table = forged_progress()
    opts = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + MALLORY_TOKEN.encode())])
    with flight.connect(loc) as client:
        desc = flight.FlightDescriptor.for_command(json.dumps({"topic": PROGRESS_TOPIC, "key_field": "key"}))
        with pytest.raises(flight.FlightError, match="reserved_topic|is reserved"):
            writer, reader = client.do_put(desc, table.schema, options=opts)
            reader.read()
            writer.write_table(table)
            writer.close()


def test_get_objects_lists_only_writable_topics(server, make_topic, tmp_path):
    mine, other = make_topic(), make_topic()
    loc = start(server, tmp_path, mine)

    def tables(token):
        with connect(loc, token) as conn:
            objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        return {t["table_name"] for c in objects for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]}

    assert tables(LOADER_TOKEN) == {mine}
    everything = tables(MALLORY_TOKEN)
    assert {mine, other} <= everything
    assert PROGRESS_TOPIC not in everything
    assert not any(t.startswith("__") for t in everything)
