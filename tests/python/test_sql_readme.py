"""The README's "From JDBC and Spark" DuckDB → ADBC → topic example works as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

from test_readme import README, README_ADDR, fenced_blocks


def test_readme_duckdb_to_topic(server, read_committed, tmp_path):
    blocks = [b for b in fenced_blocks(README.read_text(), "python") if "import duckdb" in b]
    assert len(blocks) == 1, "the README should have one DuckDB example"
    snippet = blocks[0]
    assert README_ADDR in snippet and '"orders"' in snippet, snippet
    topic = f"py-duckdb-{uuid.uuid4().hex[:10]}"
    location = server(env={"FLIGHTSINK_KAFKA_CREATE_TOPICS": "true"})
    script = tmp_path / "duckdb_example.py"
    script.write_text(snippet.replace(README_ADDR, str(location)).replace('"orders"', f'"{topic}"'))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"README DuckDB example failed:\n{run.stderr}\n{run.stdout}"
    assert run.stdout.strip() == "1000", run.stdout
    got = read_committed(topic)
    assert len(got) == 1000
    assert all(re.fullmatch(rb"user-[012]", r.key) for r in got)
    rows = {row["id"]: row for row in (json.loads(r.value) for r in got)}
    assert rows[999] == {"id": 999, "user": "user-0", "amount": 1498.5}
