"""Write to flightsink with nothing but pyarrow: the descriptor JSON, do_put, checkpoint
markers in app_metadata, the server's acks, and the abort marker on an error.

    flightsink serve --dev                                   # in another terminal
    python examples/raw_pyarrow.py [grpc://127.0.0.1:8815]

The whole protocol is in docs/protocol.md; the flightsink package (examples/helper.py) does
all of this for you.
"""

import json
import sys

import pyarrow as pa
import pyarrow.flight as flight

LOCATION = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:8815"
TOPIC = "example-raw"


class ReasonRecorder(flight.ClientMiddlewareFactory):
    """pyarrow's exceptions do not carry gRPC trailers; a middleware sees the server's
    flightsink-reason trailer (bad_row, kafka_unavailable, ...) that says whether to retry."""

    def __init__(self):
        self.reason = None

    def start_call(self, info):
        factory = self

        class Middleware(flight.ClientMiddleware):
            def received_headers(self, headers):
                for value in headers.get("flightsink-reason", []):
                    factory.reason = value.decode() if isinstance(value, bytes) else value

        return Middleware()


def marker(obj):
    """An app_metadata marker: {"checkpoint": N} or {"abort": "why"}."""
    return pa.py_buffer(json.dumps(obj).encode())


def next_message(reader, writer):
    """The server's next message. When the server ended the stream instead (read() returns
    None), writer.close() raises the stream's error status."""
    buf = reader.read()
    if buf is None:
        writer.close()
        raise RuntimeError("the server ended the stream without an error and without the expected message")
    return json.loads(buf.to_pybytes())


def main():
    orders = pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
            "user": ["ann", "bob", "ann", "cy", "bob"],
            "amount": [9.5, 12.0, 3.25, 7.0, 1.5],
            "ts": pa.array(
                [1767322800000, 1767322801000, 1767322802000, 1767322803000, 1767322804000],
                pa.timestamp("ms", tz="UTC"),
            ),
        }
    )
    reasons = ReasonRecorder()
    client = flight.connect(LOCATION, middleware=[reasons])
    # A CMD descriptor is a JSON object; only "topic" is required.
    descriptor = flight.FlightDescriptor.for_command(
        json.dumps({"topic": TOPIC, "key_field": "user", "timestamp_field": "ts"})
    )
    writer, reader = client.do_put(descriptor, orders.schema)
    try:
        ready = next_message(reader, writer)  # sent once the stream is set up, before any row is read
        print("ready:", json.dumps(ready))
        n = ready["last_checkpoint"] or 0  # a named writer ("writer_id") numbers on from its progress
        for batch in orders.to_batches(max_chunksize=2):
            n += 1
            # The marker rides on the batch: everything up to here becomes one committed unit.
            writer.write_with_metadata(batch, marker({"checkpoint": n}))
            ack = next_message(reader, writer)  # arrives once checkpoint n is durable (committed)
            print("checkpoint:", json.dumps(ack))
        writer.done_writing()  # a clean end (it would also commit rows sent after the last checkpoint)
        print("done:", json.dumps(next_message(reader, writer)))
        writer.close()  # the call's status: OK
    except BaseException as e:
        # pyarrow's close() after an exception looks like a clean end to the server, which would
        # commit the tail: send the abort marker first.
        try:
            writer.write_metadata(marker({"abort": repr(e)}))
        except Exception:
            pass  # the stream has already ended
        try:
            writer.close()
        except Exception as status:  # the status the stream ended with
            print(f"stream ended: reason={reasons.reason}: {status}", file=sys.stderr)
        raise
    finally:
        client.close()


if __name__ == "__main__":
    main()
