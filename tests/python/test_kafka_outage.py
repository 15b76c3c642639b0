"""Kafka outages are retryable (issue 12, section 3): with the broker of a private cluster stopped
while the server stays up, opening a stream fails with UNAVAILABLE / kafka_unavailable (it used to
be a final INTERNAL kafka_error), so write_stream(..., writer_id=..., retries=N) keeps retrying and,
once the broker is back, completes with every row in Kafka exactly once."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import uuid

import pyarrow as pa
import pytest

import flightsink
from conftest import read_committed_from

SCRIPT = os.environ.get("FLIGHTSINK_KAFKA_SCRIPT", "")


@pytest.fixture
def private_broker():
    """A broker of this test's own (scripts/kafka.sh), so stopping it never takes the shared broker
    away from other tests: (brokers, stop, start)."""
    if not SCRIPT:
        msg = "needs FLIGHTSINK_KAFKA_SCRIPT (scripts/kafka.sh) to run a private broker; make test sets it"
        if os.environ.get("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    name = f"py-outage-{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> str:
        out = subprocess.run(["bash", SCRIPT, *args, name], capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            raise AssertionError(f"kafka.sh {' '.join(args)} {name}: {out.returncode}\n{out.stderr}")
        return out.stdout

    brokers = re.search(r"KAFKA_BROKERS=(\S+)", run("up")).group(1)
    try:
        yield brokers, (lambda: run("stop")), (lambda: run("start"))
    finally:
        subprocess.run(["bash", SCRIPT, "down", name], capture_output=True, timeout=180)


def _create_topic(brokers: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)


def test_write_stream_rides_out_a_broker_restart(flightsink_proc, private_broker, caplog):
    """The broker stops after two acknowledged checkpoints. The stream fails (retryable), then
    every reconnect finds Kafka down (kafka_unavailable, retried); the broker comes back during
    the backoff of the third retry, and the upload finishes: every row exactly once."""
    brokers, stop_broker, start_broker = private_broker
    topic = f"py-outage-{uuid.uuid4().hex[:8]}"
    _create_topic(brokers, topic, 2)
    loc = flightsink_proc("--brokers", brokers, env={"FLIGHTSINK_KAFKA_PRODUCE_TIMEOUT": "5s"})
    rows = 6000
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "key": [f"k{i % 7}" for i in range(rows)]})
    broker = {"stopped": False, "started": False}

    def progress(committed, _total):
        if committed >= 2000 and not broker["stopped"]:
            stop_broker()  # the upload's next checkpoint meets a stopped broker
            broker["stopped"] = True

    delays = []

    def backoff(attempt: int) -> float:
        delays.append(attempt)
        if attempt == 3:  # two reconnects have found Kafka down: bring it back
            start_broker()
            broker["started"] = True
        return 0.2 if attempt < 3 else 1.0

    caplog.set_level(logging.WARNING, logger="flightsink")
    done = flightsink.write_stream(
        loc, topic, lambda: [table.slice(o, 500) for o in range(0, rows, 500)], writer_id=f"outage-{topic}",
        key_field="key", checkpoint_every_rows=1000, retries=30, backoff=backoff, progress=progress,
    )
    assert broker == {"stopped": True, "started": True}
    assert done.committed_rows == rows
    reasons = [getattr(r, "message", r.getMessage()) for r in caplog.records]
    # a reopen with the broker down fails at the topic's look-up, or (its facts cached) at the producer's start
    down = [m for m in reasons if "(kafka_unavailable)" in m
            and ("looking up topic" in m or "initialising the transactional producer" in m)]
    assert len(down) >= 2, "\n".join(reasons)  # reconnects with the broker down were retried

    got = [json.loads(r.value)["id"] for r in read_committed_from(brokers, topic)]
    assert sorted(got) == list(range(rows))  # every row exactly once


def test_default_backoff_rides_out_a_broker_restart():
    """The documented default: 1, 2, 4, 8, 16, then 30 s between attempts; retries=5 waits 31 s
    in all, long enough for a broker restart, retries=10 about three minutes."""
    from flightsink._stream import _default_backoff

    assert [_default_backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert sum(_default_backoff(n) for n in range(1, 6)) == 31
    assert sum(_default_backoff(n) for n in range(1, 11)) == 181
