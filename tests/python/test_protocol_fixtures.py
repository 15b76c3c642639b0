"""The Python client against the protocol fixtures (testdata/protocol: what the server sends and
accepts, checked by the server's own tests), with no flightsink and no Kafka: the client's parsers
read every ack and error as the fixture says, and a scripted in-process Flight server replays the
fixtures to a real Writer, which must send markers the server's fixtures accept, byte for byte."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

import flightsink
from flightsink._acks import Ack, Done, Ready
from flightsink._errors import make_error

FIXTURES = Path(__file__).resolve().parents[2] / "testdata" / "protocol"


def _load(name: str):
    return json.loads((FIXTURES / name).read_text())


ACKS = _load("acks.json")
MARKERS = _load("markers.json")
ERRORS = _load("errors.json")


def _ids(cases):
    return [c["name"] for c in cases]


# --- the parsers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ACKS["ready"], ids=_ids(ACKS["ready"]))
def test_ready(case):
    r = Ready.from_json(case["message"])
    got = {k: getattr(r, k) for k in ("protocol", "delivery", "writer_id", "last_checkpoint", "committed_rows")}
    assert got == case["expect"]


@pytest.mark.parametrize("case", ACKS["checkpoint"], ids=_ids(ACKS["checkpoint"]))
def test_checkpoint_ack(case):
    a = Ack.from_json(case["message"])
    assert {k: getattr(a, k) for k in ("checkpoint", "rows", "total_rows")} == case["expect"]


@pytest.mark.parametrize("case", ACKS["done"], ids=_ids(ACKS["done"]))
def test_done(case):
    d = Done.from_json(case["message"])
    got = {k: getattr(d, k) for k in ("total_rows", "last_checkpoint", "committed_rows", "discarded_rows")}
    assert got == case["expect"]


@pytest.mark.parametrize("case", ERRORS, ids=_ids(ERRORS))
def test_error(case):
    """An error status (code, flightsink-reason trailer, message) becomes the FlightsinkError the
    fixture describes: retryable as the table of reasons says, the durable state read from the
    message's suffix."""
    e = make_error(case["code"], case["message"], case["reason"])
    assert isinstance(e, flightsink.FlightsinkError)
    assert (e.code, e.reason, e.message) == (case["code"], case["reason"] or None, case["message"])
    want = case["expect"]
    assert (e.retryable, e.durable_checkpoint, e.durable_rows) == (
        want["retryable"], want["durable_checkpoint"], want["durable_rows"]
    )


# --- a Writer against a scripted server ----------------------------------------------------------


def _marker(raw: bytes):
    """The meaning of the valid marker fixture with exactly these bytes, or None."""
    for m in MARKERS["valid"]:
        if m["metadata"].encode() == raw:
            return m["expect"]
    return None


class _ScriptedServer(flight.FlightServerBase):
    """Plays the fixtures on every DoPut: ready, the checkpoint acks in order (one a marker, or
    an error once they run out), done at the end; records the markers the client sent."""

    def __init__(self, ready, acks, done):
        super().__init__("grpc://127.0.0.1:0")
        self.ready, self.acks, self.done = ready, acks, done
        self.markers: list[bytes] = []
        self.lock = threading.Lock()

    def do_put(self, context, descriptor, reader, writer):
        def send(msg):
            writer.write(pa.py_buffer(json.dumps(msg).encode()))

        send(self.ready)
        acks = iter(self.acks)
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            if chunk.app_metadata is None:
                continue
            raw = chunk.app_metadata.to_pybytes()
            with self.lock:
                self.markers.append(raw)
            if b"abort" in raw:
                raise flight.FlightCancelledError("client aborted the stream")
            ack = next(acks, None)
            if ack is None:
                raise flight.FlightInternalError("more markers than acks")
            send(ack)
        send(self.done)


@pytest.fixture
def scripted():
    servers = []

    def start(ready, acks, done):
        s = _ScriptedServer(ready, acks, done)
        servers.append(s)
        return s, f"grpc://127.0.0.1:{s.port}"

    yield start
    for s in servers:
        s.shutdown()


def _fixture(kind: str, expect_key: str, value):
    for c in ACKS[kind]:
        if c["expect"].get(expect_key) == value:
            return c
    raise AssertionError(f"acks.json has no {kind} with {expect_key}={value!r}")


TABLE = pa.table({"id": pa.array(range(3), pa.int64())})


def test_writer_reads_the_fixture_acks_and_sends_fixture_markers(scripted):
    ready = _fixture("ready", "last_checkpoint", None)
    acks, done = ACKS["checkpoint"], ACKS["done"][0]
    server, location = scripted(ready["message"], [a["message"] for a in acks], done["message"])
    w = flightsink.Writer(location, "t", schema=TABLE.schema)
    assert w.ready == Ready.from_json(ready["message"])
    for a in acks:
        w.write(TABLE)
        got = w.checkpoint()
        assert {k: getattr(got, k) for k in ("checkpoint", "rows", "total_rows")} == a["expect"]
    d = w.close()
    assert {k: getattr(d, k) for k in ("total_rows", "last_checkpoint", "committed_rows", "discarded_rows")} == done["expect"]
    assert len(server.markers) == len(acks)
    assert _marker(server.markers[0]) == {"checkpoint": 1}, (
        f"the client's first checkpoint marker {server.markers[0]!r} is not a fixture of checkpoint 1"
    )
    for i, raw in enumerate(server.markers, start=1):
        assert json.loads(raw) == {"checkpoint": i}


def test_resumed_writer_numbers_on_from_ready(scripted):
    ready = next(c for c in ACKS["ready"] if c["expect"]["last_checkpoint"] is not None)
    last = ready["expect"]["last_checkpoint"]
    server, location = scripted(ready["message"], [{"type": "checkpoint", "checkpoint": last + 1, "rows": 3, "total_rows": 3}],
                                ACKS["done"][0]["message"])
    w = flightsink.Writer(location, "t", schema=TABLE.schema, writer_id="w")
    assert w.mark_checkpoint() == last + 1
    w.close()
    assert [json.loads(m) for m in server.markers] == [{"checkpoint": last + 1}]


def test_abort_marker_is_a_fixture(scripted):
    server, location = scripted(ACKS["ready"][0]["message"], [], ACKS["done"][0]["message"])
    w = flightsink.Writer(location, "t", schema=TABLE.schema)
    w.abort("boom")
    assert len(server.markers) == 1
    assert _marker(server.markers[0]) == {"abort": "boom"}, (
        f"the client's abort marker {server.markers[0]!r} is not a fixture of abort 'boom'"
    )
