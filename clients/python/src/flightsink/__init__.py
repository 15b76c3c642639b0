"""flightsink: stream Arrow tables to Kafka through a flightsink server (Arrow Flight DoPut).

    import flightsink

    with flightsink.Writer("grpc://127.0.0.1:8815", "orders", key_field="user") as w:
        w.write(table)             # a pyarrow Table / RecordBatch or a pandas DataFrame
        ack = w.checkpoint()       # durable (committed, exactly-once) when it returns
    print(w.done)                  # the tail was committed by the clean end

    # a whole upload that survives a server restart, exactly once:
    flightsink.write_stream("grpc://127.0.0.1:8815", "orders", lambda: read_batches(),
                            writer_id="orders-2026-11-25", retries=5)

Errors are FlightsinkError subclasses carrying .code (gRPC), .reason (the server's
flightsink-reason) and .message; .retryable says whether resuming may help. The wire protocol
is described in the server's docs/protocol.md.
"""

from ._acks import Ack, Done, Ready, WriterStatus
from ._admin import transaction_abort, transactions_list, writer_reset, writer_show, writers_list
from ._errors import (
    RETRYABLE_REASONS,
    AbortedError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    FlightsinkError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from ._stream import write_stream
from ._writer import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_BATCH_ROWS,
    DESCRIPTOR_OPTIONS,
    Writer,
    descriptor_command,
    split_batch,
    writer_status,
)

__version__ = "0.1.0"

__all__ = [
    "Writer",
    "write_stream",
    "writer_status",
    "writers_list",
    "writer_show",
    "writer_reset",
    "transactions_list",
    "transaction_abort",
    "split_batch",
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_MAX_BATCH_ROWS",
    "DESCRIPTOR_OPTIONS",
    "descriptor_command",
    "Ready",
    "Ack",
    "Done",
    "WriterStatus",
    "FlightsinkError",
    "InvalidArgumentError",
    "NotFoundError",
    "AbortedError",
    "FailedPreconditionError",
    "ResourceExhaustedError",
    "UnavailableError",
    "CancelledError",
    "DeadlineExceededError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "UnimplementedError",
    "InternalError",
    "ProtocolError",
    "RETRYABLE_REASONS",
]
