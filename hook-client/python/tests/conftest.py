"""Fixtures: a real ``egress-collector run`` writing to a real PostgreSQL
database per test module, the local servers, and the interceptor installed
and removed around each test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import servers  # noqa: E402
from wire_decode import decode  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
PG_HOST = os.environ.get("PGHOST", "/var/run/postgresql")
PG_SUPERUSER = os.environ.get("PGUSER", "postgres")
HOOK_GAP_REASONS = ("socket_missing", "buffer_full", "too_large",
                    "permission_denied", "send_error")


def collector_binary():
    explicit = os.environ.get("EGRESS_COLLECTOR_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    path = target / "debug" / "egress-collector"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --workspace --bins` "
                    "(scripts/test.sh does) or set EGRESS_COLLECTOR_BIN")
    return str(path)


def psql(database, sql):
    out = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG_HOST, "-U",
         PG_SUPERUSER, "-d", database, "-At", "-c", sql],
        check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


class Journal:
    """A database set up by ``egress-collector setup`` and the collector
    process writing to it."""

    def __init__(self, tag):
        self.name = f"egress_py_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.dir = tempfile.mkdtemp(prefix="egress-py-")
        self.socket = os.path.join(self.dir, "ingest.sock")
        self.control = os.path.join(self.dir, "control.sock")
        self.log_path = os.path.join(self.dir, "collector.log")
        self.process = None
        psql("postgres", f'CREATE DATABASE "{self.name}"')
        binary = collector_binary()
        setup = subprocess.run(
            [binary, "setup", "--database-url",
             f"host={PG_HOST} user={PG_SUPERUSER} dbname={self.name}"],
            capture_output=True, text=True, timeout=60, env=self._env())
        if setup.returncode != 0:
            self.drop()
            pytest.fail(f"egress-collector setup failed:\n{setup.stdout}\n{setup.stderr}")
        state = os.path.join(self.dir, "state")
        os.makedirs(state)
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [binary, "run", "--socket", self.socket, "--control", self.control,
             "--state-dir", state, "--database-url",
             f"host={PG_HOST} user=egress_collector dbname={{db}}",
             "--default-db", self.name],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            env=self._env())
        deadline = time.monotonic() + 30
        while not (os.path.exists(self.socket) and os.path.exists(self.control)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"egress-collector run did not start:\n{self.log_text()}")
            time.sleep(0.05)

    @staticmethod
    def _env():
        return {k: v for k, v in os.environ.items() if not k.startswith("EGRESS_")}

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def rows(self, where="kind = 'call'"):
        text = psql(self.name, "SELECT coalesce(json_agg(j ORDER BY j.seq), '[]') "
                               f"FROM egress.journal j WHERE {where}")
        return json.loads(text)

    def count(self, where):
        return int(psql(self.name, f"SELECT count(*) FROM egress.journal j WHERE {where}"))

    def wait_rows(self, where, expected, timeout=15.0):
        """Rows matching ``where`` once there are at least ``expected``
        (or the timeout passed), after a short settle for extra ones."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.count(where)
            if n >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if n >= expected:
            time.sleep(0.3)
        return self.rows(where)

    def accounted(self, where_calls, worker_ids):
        # The journal stores the u64 worker id as a bigint (two's complement).
        ids = ",".join(str(w - 2**64 if w >= 2**63 else w) for w in worker_ids) or "NULL"
        gaps = ",".join(f"'{r}'" for r in HOOK_GAP_REASONS)
        calls = self.count(where_calls)
        lost = int(psql(self.name, "SELECT coalesce(sum(gap_count), 0) FROM egress.journal "
                        f"WHERE kind = 'gap' AND gap_reason IN ({gaps}) "
                        f"AND worker_id IN ({ids})"))
        return calls, lost

    def text_contains(self, needle):
        """Rows whose any column contains ``needle`` (the whole row as text)."""
        return int(psql(self.name, "SELECT count(*) FROM egress.journal j "
                        f"WHERE j::text LIKE '%{needle}%'"))

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if getattr(self, "log", None):
            self.log.close()
        self.drop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def drop(self):
        try:
            psql("postgres", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        except Exception:
            pass


@pytest.fixture(scope="module")
def journal(request):
    tag = "".join(c for c in request.module.__name__.split(".")[-1] if c.isalnum())[:20]
    j = Journal(tag.lower())
    yield j
    j.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return servers.make_certificate(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def http_srv():
    s = servers.http_server()
    yield s
    s.close()


@pytest.fixture(scope="session")
def https_srv(tls_files):
    s = servers.http_server(servers.server_context(*tls_files))
    yield s
    s.close()


@pytest.fixture(scope="session")
def smtp_srv(tls_files):
    s = servers.SMTPServer(servers.server_context(*tls_files))
    yield s
    s.close()


@pytest.fixture(scope="session")
def smtps_srv(tls_files):
    s = servers.SMTPServer(servers.server_context(*tls_files), implicit_tls=True)
    yield s
    s.close()


@pytest.fixture(scope="session")
def imap_srv():
    s = servers.imap_server()
    yield s
    s.close()


@pytest.fixture(scope="session")
def imaps_srv(tls_files):
    s = servers.imap_server()
    s.server.socket = servers.server_context(*tls_files).wrap_socket(
        s.server.socket, server_side=True)
    yield s
    s.close()


@pytest.fixture(scope="session")
def pop3_srv():
    s = servers.pop3_server()
    yield s
    s.close()


@pytest.fixture(scope="session")
def pop3s_srv(tls_files):
    s = servers.pop3_server()
    s.server.socket = servers.server_context(*tls_files).wrap_socket(
        s.server.socket, server_side=True)
    yield s
    s.close()


@pytest.fixture(scope="session")
def silent_srv():
    s = servers.SilentServer()
    yield s
    s.close()


@pytest.fixture(scope="session")
def udp_sink():
    s = servers.UDPSink()
    yield s
    s.close()


@pytest.fixture
def interceptor():
    """The interceptor module; whatever a test installs is removed after it."""
    from egress_hook import interceptor as module

    yield module
    module.uninstall()
    module.settings.update(enabled=True, disabled_channels=(), stack_depth=16, strict=False)


class Receiver:
    """A datagram socket standing in for the collector, to read exactly what
    the hook sent."""

    def __init__(self, directory):
        self.path = os.path.join(directory, "ingest.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.3)

    def messages(self):
        out = []
        while True:
            try:
                data = self.sock.recv(70000)
            except (socket.timeout, BlockingIOError):
                return out
            out.append(decode(data))

    def calls(self):
        return [m for kind, m in self.messages() if kind == "call"]

    def close(self):
        self.sock.close()


@pytest.fixture
def receiver():
    # Not tmp_path: a Unix socket path must stay under 108 bytes.
    directory = tempfile.mkdtemp(prefix="eh-")
    r = Receiver(directory)
    yield r
    r.close()
    shutil.rmtree(directory, ignore_errors=True)
