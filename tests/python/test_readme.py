"""The README's "Write from Python" section works as written: its first command
(`flightsink serve --dev`), its first ```python snippet (run unchanged but for the
address) and the `flightsink tail` line it shows."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from conftest import free_port, murmur2_partition

README = Path(__file__).resolve().parents[2] / "README.md"
README_ADDR = "grpc://127.0.0.1:8815"


def fenced_blocks(text: str, lang: str) -> list[str]:
    return re.findall(r"^```" + re.escape(lang) + r"[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)


def ack_comments(snippet: str) -> list[str]:
    """The `# {...}` comments of the snippet's print(...) lines: the acks it promises."""
    return [m.group(1) for m in re.finditer(r"^print\(.*\)\s*#\s*(\{.*\})\s*$", snippet, re.M)]


def promised(comment: str) -> tuple[dict, bool]:
    """A README ack comment as (dict, partial): `{"type": "ready", ...}` is partial."""
    partial = re.search(r",\s*\.\.\.\s*\}$", comment) is not None
    return json.loads(re.sub(r",\s*\.\.\.\s*\}$", "}", comment)), partial


def test_readme_python_snippet_and_tail(flightsink_proc, flightsink_bin, tmp_path):
    readme = README.read_text()
    snippet = fenced_blocks(readme, "python")[0]
    assert README_ADDR in snippet, f"the README's first python block no longer connects to {README_ADDR}"
    comments = ack_comments(snippet)
    assert len(comments) == 3, f"expected 3 commented ack prints in the README snippet, found {comments}"
    shown = [line for line in fenced_blocks(readme, "json")[0].splitlines() if line.strip()]
    assert len(shown) == 1, shown

    kafka_port = free_port()
    location = flightsink_proc("--dev", "--dev-kafka-addr", f"127.0.0.1:{kafka_port}")
    script = tmp_path / "readme_snippet.py"
    script.write_text(snippet.replace(README_ADDR, location))
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"README snippet failed (exit {run.returncode}):\n{run.stderr}\n{run.stdout}"

    acks = [ast.literal_eval(line) for line in run.stdout.splitlines()]
    assert [a.get("type") for a in acks] == ["ready", "checkpoint", "done"], run.stdout
    assert acks[1] == {"type": "checkpoint", "checkpoint": 1, "rows": 3, "total_rows": 3}
    # What the README's comments promise is checked last, so that a stale comment does not
    # hide what follows.
    stale = []
    for ack, comment in zip(acks, comments):
        want, partial = promised(comment)
        got = {k: ack.get(k) for k in want} if partial else ack
        if got != want:
            stale.append(f"the snippet printed {ack}; its README comment says {comment}")

    tail = subprocess.run(
        [flightsink_bin, "tail", "--brokers", f"127.0.0.1:{kafka_port}", "--idle", "3s", "orders"],
        capture_output=True,
        timeout=60,
    )
    assert tail.returncode == 0, f"flightsink tail failed (exit {tail.returncode}):\n{tail.stderr.decode()}"
    lines = tail.stdout.decode().splitlines()
    assert len(lines) == 3, tail.stdout.decode()
    records = sorted((json.loads(line) for line in lines), key=lambda r: r["value"]["id"])
    assert [r["key"] for r in records] == ["ann", "bob", "ann"]
    assert [r["timestamp"] for r in records] == [
        "2026-01-02T03:00:00Z",
        "2026-01-02T03:00:01Z",
        "2026-01-02T03:00:02Z",
    ]
    assert [r["value"] for r in records] == [
        {"id": 1, "user": "ann", "amount": 9.5, "ts": "2026-01-02T03:00:00.000Z"},
        {"id": 2, "user": "bob", "amount": 12, "ts": "2026-01-02T03:00:01.000Z"},
        {"id": 3, "user": "ann", "amount": 3.25, "ts": "2026-01-02T03:00:02.000Z"},
    ]

    # The line the README shows is ann's first record: same key, offset, timestamp and
    # value text byte for byte. Its partition depends on the dev broker's partition count
    # (murmur2 of the key, as Kafka's Java client computes it), checked on its own.
    first = next(line for line in lines if json.loads(line)["value"]["id"] == 1)
    value_text = re.compile(r'"value":(\{.*\})\}$')
    assert value_text.search(first).group(1) == value_text.search(shown[0]).group(1)
    want = json.loads(shown[0])
    got = json.loads(first)
    assert {k: v for k, v in got.items() if k != "partition"} == {
        k: v for k, v in want.items() if k != "partition"
    }
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": f"127.0.0.1:{kafka_port}"}).list_topics(timeout=10)
    partitions = len(md.topics["orders"].partitions)
    for r in records:
        assert r["partition"] == murmur2_partition(r["key"].encode(), partitions), (r, partitions)
    assert not stale, "\n".join(stale)
