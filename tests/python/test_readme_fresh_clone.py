"""The README as a newcomer runs it, in a fresh clone of the repository: `make build`, then
`bin/flightsink serve --dev`, then every Python block in order (in one session, as a reader pastes
them), the `tail` command it shows, whose output must hold the README's record exactly, and what
each `print` is documented to show. The resume block runs twice: a re-run, with everything
already committed, must work too.

Only the addresses change: the dev server listens on free ports instead of 127.0.0.1:8815 and
127.0.0.1:9092, so that the test runs beside other servers. `make test` (the README's last
command) is what runs this test, so it is not run again here.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import _server_env, _stop, _wait_accepting, free_port

ROOT = Path(__file__).resolve().parents[2]


def readme_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, code, line) of every fenced block."""
    out, lang, start, lines = [], None, 0, []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            if lang is None:
                lang, start, lines = line[3:].strip(), n, []
            else:
                out.append((lang, "\n".join(lines) + "\n", start))
                lang = None
        elif lang is not None:
            lines.append(line)
    return out


def documented_fields(comment: str) -> dict:
    """The literal "key": value pairs of a `# {...}` comment (`...` and names like n skipped)."""
    return {k: json.loads(v) for k, v in re.findall(r'"([\w.]+)": ("[^"]*"|-?\d+(?:\.\d+)?|null|true|false)', comment)}


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone of this repository at the commit under test, built with `make build`."""
    dest = tmp_path_factory.mktemp("readme") / "flightsink"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "checkout", "-q", head], cwd=dest, check=True)
    return dest


def test_readme_runs_as_written(clone):
    readme = (clone / "README.md").read_text()
    blocks = readme_blocks(readme)
    sh = [b for b in blocks if b[0] == "sh"][0]
    commands = [line.split("#")[0].strip() for line in sh[1].splitlines() if line.split("#")[0].strip()]
    assert commands == ["make build && bin/flightsink serve --dev", "make test"], commands
    commands = commands[0].split(" && ") + commands[1:]  # build, serve, test

    # As from a shell: not as a sub-make of `make test` (whose MAKEFLAGS would leak in).
    shell_env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    build = subprocess.run(shlex.split(commands[0]), cwd=clone, env=shell_env, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    lines = build.stdout.splitlines()
    assert "building bin/flightsink" in build.stdout and lines and lines[-1].startswith("flightsink "), build.stdout

    flight_port, kafka_port = free_port(), free_port()
    flight_addr, kafka_addr = f"127.0.0.1:{flight_port}", f"127.0.0.1:{kafka_port}"
    serve = shlex.split(commands[1]) + ["--listen", flight_addr, "--dev-kafka-addr", kafka_addr, "--metrics-listen", ""]
    stderr_path = clone / "serve.log"
    with open(stderr_path, "w") as errf:
        proc = subprocess.Popen(serve, cwd=clone, env=_server_env(None), stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
    try:
        _wait_accepting(proc, flight_port, stderr_path)

        def local(code: str) -> str:
            return code.replace("127.0.0.1:8815", flight_addr).replace("127.0.0.1:9092", kafka_addr)

        session: dict = {"__name__": "__readme__"}
        python = [b for b in blocks if b[0] == "python"]
        assert len(python) >= 4, [b[2] for b in python]
        tail_cmd = re.search(r"`(bin/flightsink tail [^`]*)`", readme).group(1)
        expected_record = json.loads([b for b in blocks if b[0] == "json"][0][1].splitlines()[0])
        for i, (_, code, line) in enumerate(python):
            for attempt in (1, 2) if "writer_id" in code and "do_put" in code else (1,):
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    try:
                        exec(compile(local(code), f"README.md:{line}", "exec"), session)
                    except Exception as e:
                        pytest.fail(f"README.md block at line {line} (run {attempt}) raised {e!r}\n{code}")
                check_prints(code, out.getvalue(), line, rerun=attempt == 2)
            if i == 0:  # the README shows what landed right after the first block
                tail = subprocess.run(shlex.split(local(tail_cmd)), cwd=clone, capture_output=True, text=True)
                assert tail.returncode == 0, tail.stderr
                records = [json.loads(r) for r in tail.stdout.splitlines()]
                assert expected_record in records, f"{tail_cmd} printed\n{tail.stdout}\nwithout the README's\n{expected_record}"
    finally:
        problem = _stop(proc)
        assert problem is None, problem


def check_prints(code: str, printed: str, line: int, rerun: bool) -> None:
    """Each `print(...)  # {...}` shows what its comment says (on a re-run, a resume block's
    checkpoints are not printed: there is nothing left to write)."""
    documented = [documented_fields(m) for m in re.findall(r"print\(.*\)\s*#\s*(\{.*)", code)]
    shown = [ast.literal_eval(s) for s in printed.splitlines() if s.startswith("{")]
    if rerun:
        documented = [d for d in documented if d.get("type") != "checkpoint"]
        shown = [s for s in shown if s.get("type") != "checkpoint"]
    assert len(shown) == len(documented), f"README.md block at line {line}: printed\n{printed}"
    for want, got in zip(documented, shown):
        assert {k: got.get(k) for k in want} == want, f"README.md block at line {line}: {got} is not what it documents: {want}"
