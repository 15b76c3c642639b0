"""Fixtures for the Python (pyarrow) integration tests of flightsink.

Environment (scripts/test.sh sets all of them; see its header):
  FLIGHTSINK_TEST_BROKERS        127.0.0.1:PORT of a real Kafka broker
  FLIGHTSINK_BIN                 absolute path of the flightsink binary
  FLIGHTSINK_TEST_REQUIRE_TOOLS  1: a missing broker or binary fails the tests instead of skipping them

Fixtures:
  brokers          the broker list
  flightsink_bin   the binary
  flightsink_proc  factory: start `flightsink serve --listen 127.0.0.1:<free> ARGS...`, returns its ServerLocation
  server           factory: the same against `brokers` (extra args and env may be given)
  make_topic       factory: create a unique topic (partitions, config), deleted at teardown
  topic            one unique topic; partitions via @pytest.mark.parametrize("topic", [N], indirect=True)
  read_committed   read_committed(topic) -> [Record(key, value, timestamp, partition)], every partition to its end
  reasons          a ClientMiddlewareFactory that records the flightsink-reason trailer of each call
"""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 30.0  # seconds for a server to accept connections
STOP_TIMEOUT = 20.0  # seconds for a server to exit after SIGTERM
READ_TIMEOUT = 30.0  # seconds for read_committed to reach the end of every partition

Record = collections.namedtuple("Record", "key value timestamp partition")
Record.__doc__ = "One Kafka record: key (bytes or None), value (bytes), timestamp (ms), partition."


def _require_tools() -> bool:
    return os.environ.get("FLIGHTSINK_TEST_REQUIRE_TOOLS") == "1"


def _missing(what: str):
    msg = f"{what} is not set; run the tests with `make test` (scripts/test.sh)"
    if _require_tools():
        pytest.fail(msg + " (FLIGHTSINK_TEST_REQUIRE_TOOLS=1)", pytrace=False)
    pytest.skip(msg)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java client (DefaultPartitioner/BuiltInPartitioner) picks for a non-null key."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(key)) & 0xFFFFFFFF
    n4 = len(key) // 4
    for i in range(n4):
        k = int.from_bytes(key[4 * i : 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = key[n4 * 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


# --- failure reports: show a server's stderr only when its test failed ------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed:
        item.stash.setdefault(_FAILED, set()).add(rep.when)
    return rep


_FAILED = pytest.StashKey[set]()


def _test_failed(node) -> bool:
    return bool(node.stash.get(_FAILED, set()))


# --- environment -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def brokers() -> str:
    value = os.environ.get("FLIGHTSINK_TEST_BROKERS", "").strip()
    if not value:
        _missing("FLIGHTSINK_TEST_BROKERS (a real Kafka broker)")
    return value


@pytest.fixture(scope="session")
def flightsink_bin() -> str:
    value = os.environ.get("FLIGHTSINK_BIN", "").strip()
    if not value:
        _missing("FLIGHTSINK_BIN (the flightsink binary)")
    if not os.access(value, os.X_OK):
        pytest.fail(f"FLIGHTSINK_BIN={value} is not an executable file", pytrace=False)
    return value


# --- the server ------------------------------------------------------------------------------


class ServerLocation(str):
    """The grpc:// location of a running server (a str, usable with flight.connect),
    with its process and logs attached."""

    proc: subprocess.Popen
    stderr_path: Path
    args: list

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> str:
        """Poll the server's stderr until it contains needle; returns the log (which may lack it)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if needle in text or time.monotonic() > deadline:
                return text
            time.sleep(0.02)


def _server_env(extra: dict | None) -> dict:
    # A developer's own FLIGHTSINK_* settings (say FLIGHTSINK_KAFKA_CREATE_TOPICS) must not
    # change what the tests see; every test states the settings it needs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTSINK_")}
    env["FLIGHTSINK_LOG_FORMAT"] = "console"
    env["NO_COLOR"] = "1"
    # A stream a failed test left open ends this long after SIGTERM (default 30s), well
    # within STOP_TIMEOUT.
    env["FLIGHTSINK_FLIGHT_SHUTDOWN_GRACE"] = "3s"
    # The metrics listener's fixed default port would collide between servers.
    env["FLIGHTSINK_METRICS_LISTEN"] = ""
    env.update(extra or {})
    return env


def _wait_accepting(proc: subprocess.Popen, port: int, stderr_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"flightsink exited with status {proc.returncode} before accepting connections:\n"
                + stderr_path.read_text(errors="replace"),
                pytrace=False,
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"flightsink did not accept connections on 127.0.0.1:{port} within {STARTUP_TIMEOUT:.0f}s:\n"
                + stderr_path.read_text(errors="replace"),
                pytrace=False,
            )
        time.sleep(0.02)


def _stop(proc: subprocess.Popen) -> str | None:
    """SIGTERM, wait, SIGKILL; returns a complaint when the exit was not clean."""
    if proc.poll() is not None:
        return None if proc.returncode == 0 else f"flightsink had exited with status {proc.returncode}"
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGQUIT makes the Go runtime print every goroutine's stack to stderr (shown
        # with the server's log): where the shutdown hangs.
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return f"flightsink did not exit within {STOP_TIMEOUT:.0f}s of SIGTERM; stopped with SIGQUIT (goroutine dump in its log)"
    return None if rc == 0 else f"flightsink exited with status {rc} after SIGTERM"


@pytest.fixture
def flightsink_proc(request, flightsink_bin, tmp_path_factory):
    """Factory: flightsink_proc(*args, env=None) starts `flightsink serve --listen 127.0.0.1:<free>
    ARGS...` and returns its ServerLocation once the port accepts connections. Every server is
    stopped with SIGTERM at teardown; a server that does not exit cleanly fails the test."""
    started: list[ServerLocation] = []

    def start(*args: str, env: dict | None = None) -> ServerLocation:
        port = free_port()
        workdir = tmp_path_factory.mktemp("flightsink")  # no ./config.yaml: built-in defaults
        stderr_path = workdir / "stderr.log"
        cmd = [flightsink_bin, "serve", "--listen", f"127.0.0.1:{port}", *args]
        with open(stderr_path, "wb") as errf:
            proc = subprocess.Popen(
                cmd, cwd=workdir, env=_server_env(env), stdin=subprocess.DEVNULL, stdout=errf, stderr=errf
            )
        loc = ServerLocation(f"grpc://127.0.0.1:{port}")
        loc.proc, loc.stderr_path, loc.args = proc, stderr_path, cmd
        started.append(loc)
        _wait_accepting(proc, port, stderr_path)
        return loc

    yield start

    problems = []
    for loc in started:
        problem = _stop(loc.proc)
        if problem:
            problems.append(problem)
        if problem or _test_failed(request.node):
            print(f"\n----- {' '.join(loc.args)}: stderr -----\n{loc.log()}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def server(flightsink_proc, brokers):
    """Factory: server(*extra_args, env=None) starts `flightsink serve --brokers <brokers>` and
    returns its grpc:// location (a ServerLocation)."""

    def start(*args: str, env: dict | None = None) -> ServerLocation:
        return flightsink_proc("--brokers", brokers, *args, env=env)

    return start


# --- Kafka -----------------------------------------------------------------------------------


def _admin(brokers: str):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": brokers})


def topic_names(brokers: str) -> set[str]:
    """Every topic of the cluster (listing all topics never auto-creates one)."""
    return set(_admin(brokers).list_topics(timeout=15).topics)


@pytest.fixture
def make_topic(request, brokers):
    """Factory: make_topic(partitions=1, config=None) creates a unique topic and waits until its
    metadata shows every partition with a leader; all are deleted at teardown."""
    from confluent_kafka.admin import NewTopic

    admin = _admin(brokers)
    created: list[str] = []
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:80].strip("-")

    def make(partitions: int = 1, config: dict | None = None) -> str:
        name = f"py-{base}-{uuid.uuid4().hex[:10]}"
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
            operation_timeout=30,
        )
        futures[name].result(30)
        created.append(name)
        deadline = time.monotonic() + 30
        while True:
            md = admin.list_topics(timeout=10).topics.get(name)
            if (
                md is not None
                and md.error is None
                and len(md.partitions) == partitions
                and all(p.leader >= 0 for p in md.partitions.values())
            ):
                return name
            if time.monotonic() > deadline:
                pytest.fail(f"topic {name} has no leader for every partition 30s after creation", pytrace=False)
            time.sleep(0.05)

    yield make

    if created:
        for name, fut in admin.delete_topics(created, operation_timeout=30).items():
            try:
                fut.result(30)
            except Exception as e:  # noqa: BLE001 - cleanup must not hide the test's outcome
                print(f"deleting topic {name}: {e}")


@pytest.fixture
def topic(request, make_topic) -> str:
    """A unique, empty topic; 1 partition unless parametrized indirectly with a count."""
    return make_topic(getattr(request, "param", 1))


def read_committed_from(brokers: str, topic: str, timeout: float = READ_TIMEOUT) -> list[Record]:
    """Every record of topic visible to a read_committed consumer, read until each partition
    reports its end; sorted by (partition, offset)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"flightsink-pytest-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        md = consumer.list_topics(topic, timeout=15).topics[topic]
        if md.error is not None:
            raise AssertionError(f"topic {topic}: {md.error}")
        partitions = sorted(md.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        got: list[tuple[int, int, Record]] = []
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"read_committed({topic}): partitions {sorted(pending)} did not reach their end "
                    f"within {timeout:.0f}s ({len(got)} records read)"
                )
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                raise AssertionError(f"read_committed({topic}): {err}")
            _, ts = msg.timestamp()
            got.append((msg.partition(), msg.offset(), Record(msg.key(), msg.value(), ts, msg.partition())))
        got.sort(key=lambda t: (t[0], t[1]))
        return [r for _, _, r in got]
    finally:
        consumer.close()


@pytest.fixture
def read_committed(brokers):
    """read_committed(topic, timeout=30) -> [Record(key, value, timestamp_ms, partition)]."""

    def read(topic: str, timeout: float = READ_TIMEOUT) -> list[Record]:
        return read_committed_from(brokers, topic, timeout)

    return read


# --- the flightsink-reason trailer -----------------------------------------------------------


@pytest.fixture
def reasons():
    """A pyarrow ClientMiddlewareFactory recording the flightsink-reason trailer of each call:
    pass it as flight.connect(loc, middleware=[reasons]); reasons.seen lists one value a call
    that carried the trailer. (pyarrow hands trailers to received_headers; FlightError has no
    access to them.)"""
    import pyarrow.flight as flight

    class Middleware(flight.ClientMiddleware):
        def __init__(self, factory):
            self.factory = factory

        def received_headers(self, headers):
            for value in headers.get("flightsink-reason", []):
                self.factory.seen.append(value.decode() if isinstance(value, bytes) else value)

    class Factory(flight.ClientMiddlewareFactory):
        def __init__(self):
            self.seen: list[str] = []

        def start_call(self, info):
            return Middleware(self)

    return Factory()


# --- a server that can be killed and restarted on the same port (clients reconnect to it) ---


class RestartableServer:
    """`flightsink serve --listen 127.0.0.1:PORT ARGS...` that a test can SIGKILL and start again
    on the same port: `location` stays valid across restarts."""

    def __init__(self, flightsink_bin: str, args: list, env: dict | None, workdir: Path):
        self.port = free_port()
        self.location = f"grpc://127.0.0.1:{self.port}"
        self.cmd = [flightsink_bin, "serve", "--listen", f"127.0.0.1:{self.port}", *args]
        self.env = env
        self.workdir = workdir  # no ./config.yaml: built-in defaults
        self.proc: subprocess.Popen | None = None
        self.logs: list[Path] = []
        self.kills = 0
        self.killed_last = False

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        assert self.proc is None or self.proc.poll() is not None, "the server is still running"
        stderr_path = self.workdir / f"stderr-{len(self.logs)}.log"
        self.logs.append(stderr_path)
        with open(stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(
                self.cmd, cwd=self.workdir, env=_server_env(self.env), stdin=subprocess.DEVNULL, stdout=errf,
                stderr=errf,
            )
        self.killed_last = False
        _wait_accepting(self.proc, self.port, stderr_path)

    def kill(self) -> None:
        """SIGKILL the server and wait for it to be gone: no shutdown, no cleanup."""
        assert self.proc is not None and self.proc.poll() is None, "the server is not running"
        self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)
        self.kills += 1
        self.killed_last = True

    def restart(self) -> None:
        """SIGKILL, then start again on the same port."""
        self.kill()
        self.start()

    def log(self) -> str:
        return "".join(
            f"----- run {i} -----\n" + p.read_text(errors="replace") for i, p in enumerate(self.logs) if p.exists()
        )


@pytest.fixture
def restartable_server(request, flightsink_bin, brokers, tmp_path_factory):
    """Factory: restartable_server(*extra_args, env=None) starts `flightsink serve --brokers
    <brokers> --listen 127.0.0.1:<free>` and returns a RestartableServer (.location, .kill(),
    .start(), .restart(), .log()). The running one is stopped with SIGTERM at teardown; one that
    does not exit cleanly then fails the test (killed runs are expected)."""
    started: list[RestartableServer] = []

    def start(*args: str, env: dict | None = None) -> RestartableServer:
        srv = RestartableServer(flightsink_bin, ["--brokers", brokers, *args], env,
                                tmp_path_factory.mktemp("flightsink-restartable"))
        started.append(srv)
        srv.start()
        return srv

    yield start

    problems = []
    for srv in started:
        running_or_crashed = srv.proc is not None and not (srv.killed_last and srv.proc.poll() is not None)
        problem = _stop(srv.proc) if running_or_crashed else None
        if problem:
            problems.append(problem)
        if problem or _test_failed(request.node):
            print(f"\n----- {' '.join(srv.cmd)}: stderr ({srv.kills} SIGKILLs) -----\n{srv.log()}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
