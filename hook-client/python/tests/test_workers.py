"""Odoo's worker model through a real collector: prefork children (the
child's events carry its own pid and sequence, the parent's keep flowing),
and many threads at once (nothing lost, or every loss accounted for)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

import pytest
import requests

TRANSPORTS = ["native", "python"]


def _get(port, path):
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_forked_child_is_its_own_worker(transport, interceptor, journal, http_srv):
    assert interceptor.install(journal.socket, journal.name, transport=transport)
    name = f"fork-{uuid.uuid4().hex[:6]}"
    with interceptor.context(journal.name, "test", name):
        assert _get(http_srv.port, "/parent") == 200
        parent_worker = interceptor.stats()["worker_id"]
        pid = os.fork()
        if pid == 0:  # the child, as an Odoo prefork worker
            code = 1
            try:
                for _ in range(3):
                    _get(http_srv.port, "/child")
                code = 0 if interceptor.stats()["worker_id"] != parent_worker else 3
            finally:
                os._exit(code)
        for _ in range(3):
            assert _get(http_srv.port, "/parent") == 200
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    rows = journal.wait_rows(f"kind = 'call' AND trigger_name = '{name}'", 7)
    child = [r for r in rows if r["worker_pid"] == pid]
    parent = [r for r in rows if r["worker_pid"] == os.getpid()]
    assert len(child) == 3 and len(parent) == 4, [(r["worker_pid"], r["path"]) for r in rows]
    assert {r["path"] for r in child} == {"/child"}
    assert sorted(r["worker_seq"] for r in child) == [1, 2, 3]
    parent_seqs = sorted(r["worker_seq"] for r in parent)
    assert parent_seqs == list(range(parent_seqs[0], parent_seqs[0] + 4)), "parent keeps flowing"
    assert len({r["worker_id"] for r in child}) == 1
    assert {r["worker_id"] for r in child}.isdisjoint({r["worker_id"] for r in parent})
    assert all(r["worker_id"] == parent[0]["worker_id"] for r in parent)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_eight_threads_lose_nothing_unaccounted(transport, interceptor, journal, http_srv):
    assert interceptor.install(journal.socket, journal.name, transport=transport)
    name = f"threads-{uuid.uuid4().hex[:6]}"
    per_thread = 40
    errors = []

    def work(i):
        with interceptor.context(journal.name, "test", name):
            try:
                for n in range(per_thread):
                    if n % 2:
                        assert _get(http_srv.port, f"/t{i}") == 200
                    else:
                        with socket.create_connection(("127.0.0.1", http_srv.port)) as s:
                            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                            while s.recv(4096):
                                pass
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    expected = 8 * per_thread
    stats = interceptor.stats()
    assert stats["sent"] + stats["dropped"] >= expected
    deadline = time.monotonic() + 10
    while not interceptor.flush() and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = stats["worker_id"]
    where = f"kind = 'call' AND trigger_name = '{name}'"
    deadline = time.monotonic() + 20
    while True:
        calls, lost = journal.accounted(where, [worker])
        if calls + lost >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # Drops are counted per worker, not per test: only this test's calls ran.
    assert calls + lost == expected, (calls, lost, stats)
    assert calls > 0
    print(f"{transport}: {calls} journaled, {lost} reported lost, {stats}")
    rows = journal.rows(where)
    seqs = sorted(r["worker_seq"] for r in rows)
    assert len(set(seqs)) == len(seqs), "no sequence number twice"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_burst_from_eight_threads_is_accounted_for(transport, interceptor, journal):
    """Look-ups of ``localhost`` are fast enough to outrun the collector's
    queue (``net.unix.max_dgram_qlen``): whatever the kernel refuses must come
    back as the worker's own drop counts, in gap entries."""
    assert interceptor.install(journal.socket, journal.name, transport=transport)
    name = f"burst-{uuid.uuid4().hex[:6]}"
    per_thread = 300

    def work():
        with interceptor.context(journal.name, "test", name):
            for _ in range(per_thread):
                socket.getaddrinfo("localhost", 80)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    expected = 8 * per_thread
    stats = interceptor.stats()
    assert stats["sent"] + stats["dropped"] == expected, stats
    deadline = time.monotonic() + 10
    while not interceptor.flush() and time.monotonic() < deadline:
        time.sleep(0.05)
    where = f"kind = 'call' AND trigger_name = '{name}'"
    deadline = time.monotonic() + 30
    while True:
        calls, lost = journal.accounted(where, [stats["worker_id"]])
        if calls + lost >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    print(f"{transport}: {calls} journaled, {lost} reported lost")
    assert (calls, lost) == (stats["sent"], stats["dropped"])
