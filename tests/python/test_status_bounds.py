"""Client-supplied text echoed in a status is bounded (issue 12, section 4): pyarrow (gRPC C++)
refuses trailers over 8 KiB, so a 100 KB descriptor key or abort reason used to turn the real
status into a client-side RESOURCE_EXHAUSTED or "Stream removed". Through real pyarrow clients
the status now arrives intact: its code, its flightsink-reason trailer, a message naming the
value cut to a few hundred bytes with its length."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.flight as flight
import pytest

SIZE = 100 << 10
SCHEMA = pa.schema([("id", pa.int64())])


def _first_error(loc, descriptor, reasons, metadata=None):
    client = flight.connect(loc, middleware=[reasons])
    writer, reader = client.do_put(descriptor, SCHEMA)
    with pytest.raises(pa.ArrowException) as exc:
        if metadata is not None:
            reader.read()  # ready
            writer.write_metadata(pa.py_buffer(json.dumps(metadata).encode()))
        reader.read()
        writer.close()
    try:
        writer.close()
    except pa.ArrowException:
        pass
    client.close()
    return exc.value


def test_100kb_descriptor_key(server, topic, reasons):
    loc = server()
    key = "k" * SIZE
    descriptor = flight.FlightDescriptor.for_command(json.dumps({"topic": topic, key: 1}))
    exc = _first_error(loc, descriptor, reasons)
    text = str(exc)
    assert isinstance(exc, pa.ArrowInvalid), repr(exc)[:300]
    assert reasons.seen == ["bad_descriptor"]
    assert 'unknown key "kkkk' in text and f"cut from {SIZE} bytes" in text, text[:500]
    assert len(text) < 4096, len(text)


def test_100kb_abort_reason(server, topic, reasons):
    loc = server()
    exc = _first_error(loc, flight.FlightDescriptor.for_path(topic), reasons, metadata={"abort": "é" * (SIZE // 2)})
    text = str(exc)
    assert reasons.seen == ["client_abort"], (reasons.seen, text[:300])
    assert 'client aborted the stream: "éé' in text and f"cut from {SIZE} bytes" in text, text[:500]
    assert len(text.encode()) < 4096, len(text.encode())
