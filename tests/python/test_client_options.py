"""The Python client reaches every descriptor option the server takes: typed keywords for each
(checked against the running server's list of keys), a pass-through for keys newer than the
client, and a re-run of a finished upload that reports the writer's last checkpoint."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pyarrow as pa
import pyarrow.flight as flight
import pytest

import flightsink


def server_descriptor_keys(loc) -> set[str]:
    """The keys the server knows, from its answer to an unknown one."""
    client = flight.connect(loc)
    try:
        descriptor = flight.FlightDescriptor.for_command(json.dumps({"topic": "t", "no_such_key": 1}))
        writer, reader = client.do_put(descriptor, pa.schema([("a", pa.int64())]))
        with pytest.raises(pa.ArrowException) as e:
            reader.read()
            writer.close()
    finally:
        client.close()
    m = re.search(r"known keys: ([^)]*)\)", str(e.value))
    assert m, f"the server's answer lists no known keys: {e.value}"
    return {k.strip() for k in m.group(1).split(",")}


def test_client_options_match_the_server(server):
    keys = server_descriptor_keys(server())
    assert set(flightsink.DESCRIPTOR_OPTIONS.values()) | {"topic"} == keys


def test_writer_takes_every_option(server, topic, brokers, flightsink_bin):
    """format, value_field and headers from the Writer's keywords reach the records (seen through
    `flightsink tail`, which shows headers)."""
    loc = server()
    lines = pa.table({"line": ["a", "b"], "tag": ["x", "y"]})
    with flightsink.Writer(loc, topic, format="raw_string", value_field="line", headers={"source": "etl"},
                           provenance_headers=False, options={"headers_field": None}) as w:
        w.write(lines)
    out = subprocess.run([flightsink_bin, "tail", topic, "--brokers", brokers, "--idle", "3s"],
                         capture_output=True, text=True, check=True).stdout
    got = [json.loads(line) for line in out.splitlines()]
    assert [(r["value"], r["headers"]) for r in got] == [
        ("a", [{"key": "source", "value": "etl"}]), ("b", [{"key": "source", "value": "etl"}])]


def test_options_refuse_a_key_given_twice():
    with pytest.raises(ValueError, match="also given as a keyword"):
        flightsink.descriptor_command("t", {"format": "json"}, format="raw_string")
    assert flightsink.descriptor_command("t", {"future.key": 1}, json_decimal="number", value_fields=("a",)) == {
        "topic": "t", "json.decimal": "number", "value_fields": ["a"], "future.key": 1}


def test_rerun_of_a_committed_upload_reports_its_last_checkpoint(server, topic, read_committed):
    loc = server()
    table = pa.table({"id": pa.array(range(10), pa.int64())})
    writer_id = f"rerun-{uuid.uuid4().hex[:12]}"
    first = flightsink.write_stream(loc, topic, lambda: [table], writer_id=writer_id, checkpoint_every_rows=4)
    again = flightsink.write_stream(loc, topic, lambda: [table], writer_id=writer_id, checkpoint_every_rows=4)
    assert first.last_checkpoint is not None
    assert (again.total_rows, again.last_checkpoint, again.committed_rows) == (0, first.last_checkpoint, 10)
    assert len(read_committed(topic)) == 10
