"""The flightsink package: Writer (checkpoints, abort on an error) and write_stream (a whole
upload that resumes after a failure, every row exactly once).

    pip install ./clients/python                             # from the repository root
    flightsink serve --dev                                   # in another terminal
    python examples/helper.py [grpc://127.0.0.1:8815]
"""

import sys
import uuid

import pyarrow as pa

import flightsink

LOCATION = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:8815"
ROWS = 50_000
SCHEMA = pa.schema([("id", pa.int64()), ("user", pa.string()), ("amount", pa.float64())])


def source():
    """A replayable source: every call yields the same rows in the same order (how they are cut
    into batches does not matter). Reading a file or an ordered query works the same way."""
    for start in range(0, ROWS, 5_000):
        ids = range(start, min(start + 5_000, ROWS))
        yield pa.table(
            {"id": list(ids), "user": [f"user-{i % 7}" for i in ids], "amount": [i * 0.25 for i in ids]},
            schema=SCHEMA,
        )


def writer_with_checkpoints():
    """A Writer: each checkpoint() returns once Kafka has committed everything written so far;
    leaving the block cleanly commits the rest."""
    with flightsink.Writer(LOCATION, "example-helper-writer", key_field="user") as w:
        for i, table in enumerate(source()):
            w.write(table)
            if i % 4 == 3:
                print("checkpoint:", w.checkpoint())
    print("done:", w.done)


def resumable_upload():
    # In real code the writer id names one upload of one source and stays the same across
    # restarts of this program ("orders-2026-11-25"); here it is fresh so that the example can
    # run again against the same server.
    writer_id = f"example-helper-{uuid.uuid4().hex[:8]}"

    # A first run dies after three checkpoints with a fourth batch sent: the exception inside
    # `with` sends the abort marker, so that batch is never committed.
    try:
        with flightsink.Writer(LOCATION, "example-helper", writer_id=writer_id, schema=SCHEMA) as w:
            for i, table in enumerate(source()):
                w.write(table)
                if i == 3:
                    raise RuntimeError("simulated crash")
                w.checkpoint()
    except RuntimeError as e:
        print(f"first run failed ({e}); committed:", flightsink.writer_status(LOCATION, writer_id))

    # write_stream starts where the writer's committed progress says (ready.committed_rows rows
    # of the source are skipped), checkpoints every 10,000 rows, and after a retryable failure
    # (Kafka or the server unavailable, a lost connection, ...) reconnects and resumes again.
    done = flightsink.write_stream(
        LOCATION,
        "example-helper",
        source,  # a callable: each attempt gets a fresh iterable of the same rows
        writer_id=writer_id,
        retries=5,
        checkpoint_every_rows=10_000,
        progress=lambda committed, total: print(f"committed {committed} rows"),
    )
    print("done:", done)  # committed_rows == 50000: every row exactly once
    assert done.committed_rows == ROWS


def main():
    writer_with_checkpoints()
    resumable_upload()


if __name__ == "__main__":
    try:
        main()
    except flightsink.FlightsinkError as e:
        # e.code is the gRPC code, e.reason the server's reason, e.retryable whether to resume
        sys.exit(f"failed: {e} (retryable: {e.retryable})")
