"""The Python client's admin actions against the real server binary and a real Kafka broker:
writers_list / writer_show / writer_reset (a reset writer's next stream starts from zero) and
transactions_list / transaction_abort (a transaction that is not lingering is refused)."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

import flightsink


def test_writers_show_list_reset(server, topic):
    loc = server()
    name = f"adm-{uuid.uuid4().hex[:12]}"
    table = pa.table({"id": pa.array(range(4), pa.int64())})
    with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as w:
        w.write(table)
        w.checkpoint()
    shown = flightsink.writer_show(loc, name)
    assert (shown["found"], shown["principal"], shown["last_checkpoint"], shown["committed_rows"]) == (True, "anonymous", 1, 4)
    listed = {x["writer_id"]: x for x in flightsink.writers_list(loc)["writers"]}
    assert listed[name]["topic"] == topic

    reset = flightsink.writer_reset(loc, name)
    assert (reset["found"], reset["reset"], reset["forgotten"]["committed_rows"]) == (True, True, 4)
    assert flightsink.writer_show(loc, name)["found"] is False
    with flightsink.Writer(loc, topic, writer_id=name, schema=table.schema) as w:
        assert (w.ready.last_checkpoint, w.ready.committed_rows) == (None, 0)


def test_transactions_list_and_refused_abort(server, topic):
    loc = server()
    assert isinstance(flightsink.transactions_list(loc)["transactions"], list)
    with pytest.raises(flightsink.FailedPreconditionError) as e:
        flightsink.transaction_abort(loc, "not-this-servers-id")
    assert e.value.reason == "txn_not_abortable"
    assert "not a transactional id of this server" in e.value.message
