"""Both senders against the golden vectors and against each other: the
native module (egress_hook::HookClient) and the pure-Python fallback produce
the same bytes and follow the same sequence, drop and cursor rules."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time

import pytest

import egress_hook
from egress_hook import _wire
from conftest import REPO, Receiver
from wire_decode import decode

VECTORS = json.loads((REPO / "proto" / "vectors" / "datagrams.json").read_text())


def call_fields(m):
    """A golden ``Call`` as the tuple both senders take."""
    digest = m["payload_sha256"]
    return (m["database"], m["started_at_us"], m["duration_us"], m["channel"],
            m["protocol"], m["direction"], m["method"], m["host"], m["port"],
            m["path"], m["query_keys"], m["header_names"], m["src_ip"],
            m["src_port"], m["dst_ip"], m["dst_port"], m["tls"], m["status"],
            m["error_class"], m["bytes_out"], m["bytes_in"],
            None if digest is None else bytes(digest),
            [(f["file"], f["function"], f["line"]) for f in m["stack"]],
            m["trigger"]["kind"], m["trigger"]["name"], m["trigger"]["uid"])


def change_fields(m):
    return (m["database"], m["changed_at_us"], m["key"], m["old_value"],
            m["new_value"], m["user_login"], m["uid"])


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_python_encoder_matches_the_golden_vectors(vector):
    m = vector["message"]
    kind = vector["kind"]
    if kind == "call":
        data = _wire.encode_call(m["worker_id"], m["seq"], call_fields(m))
    elif kind == "hello":
        data = _wire.encode_hello(m["worker_id"], m["pid"], m["sent_at_us"],
                                  m["odoo_version"], m["python_version"], m["hook_mode"],
                                  m["hook_version"], m["addons_paths"], m["databases"])
    elif kind == "drops":
        data = _wire.encode_drops(m["worker_id"],
                                  [(c["database"], c["reason"], c["count"]) for c in m["counts"]],
                                  [(c["database"], c["last_seq"]) for c in m["cursors"]])
    elif kind == "forensic_body":
        data = _wire.encode_forensic_body(
            m["worker_id"], m["database"], m["seq"], m["part"], m["total_len"],
            m["captured_len"], m["truncated"], bytes(m["sha256"]), m["offset"],
            bytes(m["data"]))
    else:
        data = _wire.encode_config_change(m["worker_id"], change_fields(m))
    assert data.hex() == vector["hex"]


def clients():
    out = ["python"]
    if egress_hook.native_available():
        out.insert(0, "native")
    return out


def make(kind, path):
    return egress_hook.client(path, prefer_native=(kind == "native"))


@pytest.fixture(params=clients())
def kind(request):
    return request.param


def test_the_native_module_is_built():
    # A wheel without its extension would silently run the slow path.
    assert egress_hook.native_available(), egress_hook._native_error


SENT = [v for v in VECTORS if v["kind"] not in ("drops", "forensic_body")]


@pytest.mark.parametrize("vector", SENT, ids=[v["name"] for v in SENT])
def test_both_senders_send_the_golden_bytes(vector, kind, receiver):
    m = vector["message"]
    client = make(kind, receiver.path)
    expected = bytes.fromhex(vector["hex"])
    if vector["kind"] == "call":
        client.send_call(call_fields(m))
        skip = 4 + 16  # worker_id and seq are the sender's own
    elif vector["kind"] == "hello":
        client.send_hello((m["odoo_version"], m["python_version"], m["addons_paths"],
                           m["databases"]))
        skip = 4 + 8 + 4 + 8  # worker_id, pid, sent_at_us
        m = dict(m, hook_mode=kind)
        expected = _wire.encode_hello(m["worker_id"], m["pid"], m["sent_at_us"],
                                      m["odoo_version"], m["python_version"], kind,
                                      m["hook_version"], m["addons_paths"], m["databases"])
    else:
        client.send_config_change(change_fields(m))
        skip = 4 + 8
    data = receiver.sock.recv(70000)
    assert data[:4] == expected[:4]
    assert data[skip:] == expected[skip:]
    assert int.from_bytes(data[4:12], "little") == client.worker_id()
    if vector["kind"] == "call":
        assert int.from_bytes(data[12:20], "little") == 1


def minimal(database, host="api.example.com"):
    return (database, 0, 0, "http", "https", "outbound", "GET", host, 443, "/", [], [],
            "", 0, "", 0, True, 200, "", 0, 0, None, [], "", "", None)


def test_sequences_are_per_database_and_start_at_one(kind, receiver):
    client = make(kind, receiver.path)
    for database in ["a", "a", "b", "a", "b"]:
        client.send_call(minimal(database))
    got = [(m["database"], m["seq"], m["worker_id"]) for m in receiver.calls()]
    wid = client.worker_id()
    assert got == [("a", 1, wid), ("a", 2, wid), ("b", 1, wid), ("a", 3, wid), ("b", 2, wid)]
    stats = client.stats()
    assert (stats["sent"], stats["dropped"], stats["pending_drops"]) == (5, 0, 0)


def test_drops_are_reported_with_cursors_once_the_socket_appears(kind):
    directory = tempfile.mkdtemp(prefix="eh-")
    try:
        path = os.path.join(directory, "ingest.sock")
        client = make(kind, path)
        for database in ["a", "a", "a", "b", "b"]:
            client.send_call(minimal(database))
        client.send_hello(("", "3", [], []))
        stats = client.stats()
        # The lost Hello is counted but is no lost event: not reported.
        assert (stats["sent"], stats["dropped"], stats["pending_drops"]) == (0, 5, 5)
        assert stats["dropped_by_reason"] == {"socket_missing": 5}
        assert client.report_drops() is False
        # That failed report restarts the 100 ms spacing of automatic ones.
        time.sleep(0.15)
        receiver = Receiver(directory)
        client.send_call(minimal("a"))
        messages = receiver.messages()
        assert [k for k, _ in messages] == ["call", "drops"]
        assert messages[0][1]["seq"] == 1, "drops consume no sequence number"
        drops = messages[1][1]
        assert drops["worker_id"] == client.worker_id()
        assert drops["counts"] == [("a", "socket_missing", 3), ("b", "socket_missing", 2)]
        assert drops["cursors"] == [("a", 1)]
        assert client.stats()["pending_drops"] == 0
        assert client.report_drops() is True
        (_, again), = receiver.messages()
        # Running totals again, so a report lost on the way is made good.
        assert again["counts"] == [("a", "socket_missing", 3), ("b", "socket_missing", 2)]
        assert again["cursors"] == [("a", 1)]
        receiver.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def client_that_sent_once(kind, directory):
    """A receiver in ``directory`` and a client that has delivered seq 1 to it."""
    first = Receiver(directory)
    client = make(kind, first.path)
    client.send_call(minimal("a"))
    assert [m["seq"] for m in first.calls()] == [1]
    return first, client


def test_a_rebound_path_reaches_the_new_receiver(kind):
    directory = tempfile.mkdtemp(prefix="eh-")
    try:
        first, client = client_that_sent_once(kind, directory)
        first.close()  # a collector that died without unlinking: ECONNREFUSED
        client.send_call(minimal("a"))
        assert client.stats()["dropped_by_reason"] == {"socket_missing": 1}
        os.unlink(first.path)
        second = Receiver(directory)
        client.send_call(minimal("a"))
        messages = second.messages()
        assert messages[0][1]["seq"] == 2
        assert messages[1][1]["counts"] == [("a", "socket_missing", 1)]
        assert messages[1][1]["cursors"] == [("a", 2)]
        second.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_collector_restarted_between_two_sends_gets_the_second(kind):
    directory = tempfile.mkdtemp(prefix="eh-")
    try:
        first, client = client_that_sent_once(kind, directory)
        # The client's socket is connected to the first receiver's; by the
        # next send that one is closed and a new one is bound at the path.
        first.close()
        os.unlink(first.path)
        second = Receiver(directory)
        client.send_call(minimal("a"))
        assert [m["seq"] for m in second.calls()] == [2]
        assert client.stats()["dropped"] == 0
        second.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def receive_queue_length():
    """The host's ``net.unix.max_dgram_qlen``: datagrams a receiver queues."""
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 512


def test_a_full_queue_drops_without_blocking(kind, receiver):
    client = make(kind, receiver.path)
    calls = receive_queue_length() + 2000
    for _ in range(calls):
        client.send_call(minimal("a"))
    stats = client.stats()
    assert stats["sent"] + stats["dropped"] == calls
    assert stats["sent"] >= 1
    assert set(stats["dropped_by_reason"]) == {"buffer_full"}
    seqs = [m["seq"] for m in receiver.calls()]
    assert seqs == list(range(1, stats["sent"] + 1)), "accepted ones are gapless"


def test_the_python_sender_widens_its_send_buffer(receiver):
    # A datagram is charged to its sender until the collector reads it: the
    # kernel's default buffer holds only about 90 calls in flight (state.rs
    # tests the native sender the same way).
    client = make("python", receiver.path)
    client.send_call(minimal("a"))
    with open("/proc/sys/net/core/wmem_default") as f:
        default = int(f.read())
    sock = client._worker.sock
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) > default


def test_an_oversized_call_is_cut_the_same_way_by_both(receiver):
    if not egress_hook.native_available():
        pytest.skip("needs the native module")
    big = list(minimal("a"))
    big[9] = "/é" * 50_000
    big[11] = [f"X-Header-{i}" for i in range(10_000)]
    big[22] = [(f"/mnt/extra-addons/deep/models/m{i}.py", "f" * 600, i) for i in range(1000)]
    out = []
    for kind in ("native", "python"):
        client = make(kind, receiver.path)
        client.send_call(tuple(big))
        out.append(receiver.sock.recv(70000))
    assert len(out[0]) <= _wire.MAX_DATAGRAM_SIZE
    assert out[0][20:] == out[1][20:]
    _, sent = decode(out[0])
    assert sent["stack"][0][0] == "/mnt/extra-addons/deep/models/m0.py"


def test_unicode_truncation_is_on_a_character_boundary():
    assert _wire.utf8("société", 5) == b"soci"
    assert _wire.utf8("🙂🙂", 3) == b""
    assert _wire.utf8("\udcff", None) == b"?"


def test_garbage_never_raises(kind, receiver):
    client = make(kind, receiver.path)
    for bad in [None, (), ("a",), ("a",) * 40, 42, "text", (object(),) * 26]:
        client.send_call(bad)
        client.send_hello(bad)
        client.send_config_change(bad)
    assert isinstance(client.stats(), dict)


def test_a_forked_child_is_a_new_worker(kind, receiver):
    client = make(kind, receiver.path)
    client.send_call(minimal("a"))
    parent = client.worker_id()
    pid = os.fork()
    if pid == 0:
        try:
            client.send_call(minimal("a"))
            os._exit(0 if client.worker_id() != parent else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.send_call(minimal("a"))
    calls = receiver.calls()
    assert [(c["worker_id"] == parent, c["seq"]) for c in calls] == [
        (True, 1), (False, 1), (True, 2)]


def test_the_fallback_is_logged_once_and_nothing_is_printed():
    import subprocess
    import sys

    code = (
        "import sys, logging\n"
        "sys.modules['egress_hook._native'] = None\n"
        "records = []\n"
        "class H(logging.Handler):\n"
        "    def emit(self, r): records.append(r.getMessage())\n"
        "logging.getLogger('egress_hook').addHandler(H())\n"
        "import egress_hook\n"
        "assert not egress_hook.native_available()\n"
        "a = egress_hook.client('/nonexistent/x.sock')\n"
        "b = egress_hook.client('/nonexistent/x.sock')\n"
        "assert type(a).__name__ == 'PythonClient', a\n"
        "a.send_call(('db',) + (0,) * 25)\n"
        "assert len(records) == 1 and 'pure-Python' in records[0], records\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""


def _deep(n, f):
    return f() if n == 0 else _deep(n - 1, f)


def test_the_native_stack_capture_finds_the_python_frames(monkeypatch):
    if not egress_hook.native_available():
        pytest.skip("needs the native module")
    from egress_hook.interceptor import _core

    monkeypatch.setattr(_core, "native_capture", None)
    python = _deep(20, _core.capture_stack)
    native = _deep(20, lambda: egress_hook._native.capture_stack(16, _core._OWN_DIR))
    assert len(native) == len(python) == 16
    # The same frames, as the same tuples, but for the lambda's own line.
    assert list(native)[1:] == python[1:]
    assert native[0][:2] == (__file__, "<lambda>") and native[-1] == python[-1]
    assert egress_hook._native.capture_stack(0, "").__len__() == 0
    # Only frames outside the skipped prefix ("<frozen runpy>" under -m).
    assert all(not f.startswith("/") for f, _, _ in egress_hook._native.capture_stack(64, "/"))
    with pytest.raises(IndexError):
        native[16]
    assert native[1:3] == python[1:3] and native[::-1][0] == python[-1]


def test_queued_calls_leave_without_a_flush_and_are_counted(receiver):
    if not egress_hook.native_available():
        pytest.skip("needs the native module")
    client = make("native", receiver.path)
    stack = _deep(3, lambda: egress_hook._native.capture_stack(4, ""))
    fields = list(minimal("a"))
    fields[22] = stack
    for _ in range(3):
        client.queue_call(tuple(fields))
    calls = [receiver.sock.recv(70000) for _ in range(3)]  # no flush: the thread sends
    got = [decode(data)[1] for data in calls]
    assert [c["seq"] for c in got] == [1, 2, 3]
    assert got[0]["stack"] == [tuple(frame) for frame in stack]
    stats = client.stats()
    assert (stats["sent"], stats["dropped"]) == (3, 0)


def test_os_exit_in_a_forked_child_still_sends_its_queued_calls(interceptor, receiver):
    if not egress_hook.native_available():
        pytest.skip("needs the native module")
    assert interceptor.install(receiver.path, "db", transport="native")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    receiver.messages()  # the parent's Hello
    pid = os.fork()
    if pid == 0:
        try:
            with socket.create_connection(("127.0.0.1", port)):
                pass
        finally:
            os._exit(0)  # no atexit: the patched os._exit flushes
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    listener.close()
    calls = receiver.calls()
    assert [(c["channel"], c["port"], c["seq"]) for c in calls] == [("socket", port, 1)]
