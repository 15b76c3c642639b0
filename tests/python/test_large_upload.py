"""A large upload through the Python client: 2 million rows in 64k-row batches, bounded server memory."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc

import flightsink

ROWS, BATCH = 2_000_000, 65_536
# The server's peak RSS must stay below this: one stream holds at most kafka.max_buffered_bytes
# (64 MiB by default) of unacknowledged records plus the batch being encoded and the gRPC
# window; the data itself (about 150 MB of JSON) must never be held whole.
RSS_BOUND = 400 << 20


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) << 10
    raise AssertionError("no VmHWM")


def batches():
    for start in range(0, ROWS, BATCH):
        n = min(BATCH, ROWS - start)
        ids = pa.array(range(start, start + n), pa.int64())
        yield pa.record_batch({
            "id": ids,
            "user": pc.binary_join_element_wise("user-", pc.cast(pc.bit_wise_and(ids, 1023), pa.string()), ""),
            "amount": pc.divide(pc.cast(ids, pa.float64()), 100.0),
        })


def test_two_million_rows(server, make_topic, brokers):
    topic = make_topic(partitions=3)
    loc = server()
    began = time.monotonic()
    done = flightsink.write_stream(loc, topic, batches, checkpoint_every_rows=500_000, writer_id=f"large-{topic}")
    took = time.monotonic() - began
    assert done.committed_rows == ROWS
    rss = peak_rss(loc.proc.pid)
    print(f"\n{ROWS} rows in {took:.1f}s ({ROWS / took:,.0f} rows/s); server peak RSS {rss >> 20} MiB")
    assert rss < RSS_BOUND, f"server peak RSS {rss >> 20} MiB over the bound {RSS_BOUND >> 20} MiB"
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": f"g-{topic}", "isolation.level": "read_committed"})
    try:
        total = 0
        for p in range(3):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            total += high - low
        # Every row is a record; each committed transaction adds one marker per partition it touched.
        assert ROWS <= total <= ROWS + 3 * (ROWS // 500_000 + 2)
    finally:
        c.close()
