"""The programs in examples/ run as examples/README.md says: against `flightsink serve --dev`
(its own Flight and embedded Kafka ports here), given the location as their argument, they exit
0 and what they wrote is in Kafka, read_committed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port, read_committed_from

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def values(records) -> list[dict]:
    return [json.loads(r.value) for r in records]


def check_raw(kafka: str, out: str) -> None:
    assert [line.split(":")[0] for line in out.splitlines()] == ["ready"] + ["checkpoint"] * 3 + ["done"], out
    got = sorted(values(read_committed_from(kafka, "example-raw")), key=lambda v: v["id"])
    assert [v["id"] for v in got] == [1, 2, 3, 4, 5]
    assert got[0] == {"id": 1, "user": "ann", "amount": 9.5, "ts": "2026-01-02T03:00:00.000Z"}


def check_helper(kafka: str, out: str) -> None:
    assert "first run failed (simulated crash)" in out, out
    assert "committed_rows=15000" in out, out  # three checkpoints of 5,000 rows before the crash
    assert "committed_rows=50000" in out.splitlines()[-1], out
    for topic in ("example-helper-writer", "example-helper"):
        got = sorted(v["id"] for v in values(read_committed_from(kafka, topic)))
        assert got == list(range(50_000)), f"{topic}: {len(got)} rows, {len(set(got))} distinct"


def check_pandas(kafka: str, out: str) -> None:
    got = sorted(read_committed_from(kafka, "example-pandas"), key=lambda r: json.loads(r.value)["order_id"])
    assert [r.key for r in got] == [b"ann", b"bob", None]
    assert got[0].timestamp == 1767323045678
    assert json.loads(got[0].value) == {
        "order_id": 1001,
        "customer": "ann",
        "total": "9.50",
        "express": True,
        "tags": ["new", "gift"],
        "ship_to": {"city": "Zürich", "zip": "8001"},
        "ordered_at": "2026-01-02T03:04:05.678000Z",
    }
    chunks = values(read_committed_from(kafka, "example-pandas-chunks"))
    assert sorted(v["n"] for v in chunks) == list(range(100_000))


@pytest.mark.parametrize(
    "example, check",
    [("raw_pyarrow.py", check_raw), ("helper.py", check_helper), ("pandas_example.py", check_pandas)],
)
def test_example_runs_against_dev_server(flightsink_proc, tmp_path, example, check):
    if example == "pandas_example.py":
        pytest.importorskip("pandas")
    kafka_port = free_port()
    location = flightsink_proc("--dev", "--dev-kafka-addr", f"127.0.0.1:{kafka_port}")
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / example), location], cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{example} failed (exit {run.returncode}):\n{run.stderr}\n{run.stdout}"
    check(f"127.0.0.1:{kafka_port}", run.stdout)
