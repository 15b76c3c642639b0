"""TLS, bearer tokens and the basic-auth handshake, from pyarrow."""

from __future__ import annotations

import json
import subprocess

import pyarrow as pa
import pyarrow.flight as flight
import pytest

# bcrypt of "s3cret password" (cost 10).
ALICE_BCRYPT = "$2a$10$C8.N0OW0er/6h4XWlkt28ODrQOlmiLZT8b2rK8JMphBsqp33qKAN6"
LOADER_TOKEN = "loader-token-0123456789abcdef"


def write_config(tmp_path, topic_pattern: str, tls: tuple[str, str] | None = None) -> str:
    lines = [
        "auth:",
        "  tokens:",
        "    - principal: loader",
        "      token: {env: TEST_LOADER_TOKEN}",
        "  users:",
        "    - username: alice",
        f"      password_bcrypt: {{value: '{ALICE_BCRYPT}'}}",
        "  principals:",
        "    - name: loader",
        f"      topics: ['{topic_pattern}']",
        "    - name: alice",
        f"      topics: ['{topic_pattern}']",
    ]
    if tls:
        lines += ["flight:", f"  tls_cert_file: {tls[0]}", f"  tls_key_file: {tls[1]}"]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def self_signed(tmp_path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def put(client, topic, options=None):
    table = pa.table({"id": [1, 2]})
    desc = flight.FlightDescriptor.for_command(json.dumps({"topic": topic}))
    writer, reader = client.do_put(desc, table.schema, options=options)
    if reader.read() is None:  # no ready: pyarrow raises the server's status at close
        writer.close()
        raise AssertionError("the stream ended without a ready message")
    writer.write_table(table)
    writer.done_writing()
    done = json.loads(reader.read().to_pybytes())
    writer.close()
    return done


def test_token_and_basic_auth(server, make_topic, read_committed, tmp_path):
    topic = make_topic()
    loc = server("--config", write_config(tmp_path, topic), env={"TEST_LOADER_TOKEN": LOADER_TOKEN})
    with flight.connect(loc) as client:
        # No credentials.
        with pytest.raises(flight.FlightUnauthenticatedError, match="missing credentials"):
            put(client, topic)
        # A static bearer token.
        opts = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + LOADER_TOKEN.encode())])
        assert put(client, topic, opts)["total_rows"] == 2
        # The basic-auth handshake answers with a bearer token.
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token("alice", "wrong")
        header = client.authenticate_basic_token("alice", "s3cret password")
        assert header[0] == b"authorization" and header[1].startswith(b"Bearer ")
        assert put(client, topic, flight.FlightCallOptions(headers=[header]))["total_rows"] == 2
    assert len(read_committed(topic)) == 4


def test_forbidden_topic_writes_nothing(server, make_topic, read_committed, tmp_path):
    allowed, forbidden = make_topic(), make_topic()
    loc = server("--config", write_config(tmp_path, allowed), env={"TEST_LOADER_TOKEN": LOADER_TOKEN})
    opts = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + LOADER_TOKEN.encode())])
    with flight.connect(loc) as client:
        with pytest.raises(flight.FlightError, match=f'may not write to topic "{forbidden}"'):
            put(client, forbidden, opts)
    assert read_committed(forbidden) == []


def test_tls(server, make_topic, read_committed, tmp_path):
    topic = make_topic()
    cert, key = self_signed(tmp_path)
    loc = server("--config", write_config(tmp_path, topic, tls=(cert, key)), env={"TEST_LOADER_TOKEN": LOADER_TOKEN})
    tls_loc = loc.replace("grpc://", "grpc+tls://")
    with open(cert, "rb") as f:
        root = f.read()
    with flight.connect(tls_loc, tls_root_certs=root, override_hostname="localhost") as client:
        header = client.authenticate_basic_token("alice", "s3cret password")
        assert put(client, topic, flight.FlightCallOptions(headers=[header]))["total_rows"] == 2
    assert len(read_committed(topic)) == 2
