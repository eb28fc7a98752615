"""Forensic body capture end to end: the interceptor in this (plain Python)
process, a local HTTP server, the real ``egress-collector run`` and its
``forensic`` CLI, the real PostgreSQL journal. Off by default, no byte of a
body anywhere; on for a host, the body is sealed in the database (never in
clear), read back exactly through the collector only after the read is
journaled; off again, or expired, nothing is captured; a changed or moved
ciphertext does not open."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest
import requests

from conftest import PG_HOST, PG_SUPERUSER, collector_binary, psql
from servers import BODY

#: The hook polls the state file every second; the promise is 5 s.
SWITCH_DEADLINE = 5.0


def marker(tag):
    return f"forensic-{tag}-{uuid.uuid4().hex}".encode()


def cli(journal, *args):
    return subprocess.run(
        [collector_binary(), "forensic", *args, "--control", journal.control],
        capture_output=True, timeout=60, env=journal._env())


def pg_dump(journal):
    return subprocess.run(
        ["pg_dump", "-h", PG_HOST, "-U", PG_SUPERUSER, "-d", journal.name],
        check=True, capture_output=True, timeout=120).stdout


def everything_on_disk(journal):
    """Every byte the collector left in its directory (state, spool, keys,
    the files workers read) and its log."""
    out = []
    for root, _, files in os.walk(journal.dir):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    out.append(f.read())
            except OSError:
                pass
    return b"\n".join(out)


def wait_scope(interceptor, journal, on):
    deadline = time.monotonic() + SWITCH_DEADLINE
    while True:
        active = journal.name in interceptor.stats()["forensic"]["active"]
        if active == on:
            return
        assert time.monotonic() < deadline, f"the worker did not learn capture={on} in 5 s"
        time.sleep(0.05)


def post(interceptor, http_srv, path, body):
    response = requests.post(f"http://127.0.0.1:{http_srv.port}{path}", data=body, timeout=10)
    assert response.content == BODY
    interceptor.flush()


def call_seq(journal, path):
    rows = journal.wait_rows(f"kind = 'call' AND path = '{path}'", 1)
    assert len(rows) == 1, journal.log_text()
    return rows[0]["seq"]


def bodies_of(journal, seq):
    return int(psql(journal.name,
                    f"SELECT count(*) FROM egress.forensic_body WHERE journal_seq = {seq}"))


def wait_bodies(journal, seq, expected, timeout=15.0):
    deadline = time.monotonic() + timeout
    while bodies_of(journal, seq) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return bodies_of(journal, seq)


@pytest.fixture(params=["native", "python"])
def hooked(request, interceptor, journal):
    # Earlier modules make the interceptor fail on purpose: count from here.
    errors = interceptor.stats().get("interceptor_errors", 0)
    assert interceptor.install(journal.socket, journal.name, transport=request.param)
    yield interceptor
    assert interceptor.stats()["interceptor_errors"] == errors
    assert interceptor.stats()["forensic"]["errors"] == 0
    cli(journal, "disable", "--db", journal.name)


def test_off_by_default_on_for_a_host_then_off_again(hooked, journal, http_srv):
    interceptor = hooked
    tag = uuid.uuid4().hex[:8]

    # Off by default: after a POST, no byte of its body anywhere.
    off_body = marker("off")
    post(interceptor, http_srv, f"/off-{tag}", off_body)
    off_seq = call_seq(journal, f"/off-{tag}")
    assert bodies_of(journal, off_seq) == 0
    assert off_body not in pg_dump(journal)
    assert off_body not in everything_on_disk(journal)
    refused = cli(journal, "read", "--db", journal.name, "--seq", str(off_seq))
    assert refused.returncode == 1
    assert b"has no captured body" in refused.stderr

    # Enabled for this host: captured, sealed, read back exactly.
    enabled = cli(journal, "enable", "--db", journal.name, "--host", "127.0.0.1", "--for", "2h")
    assert enabled.returncode == 0, enabled.stderr
    assert b"ON for host=127.0.0.1" in enabled.stdout
    switch = journal.rows("kind = 'forensic_capture'")[-1]
    assert '"action":"enable"' in switch["detail"] and "operator uid" in switch["detail"]
    wait_scope(interceptor, journal, True)
    on_body = marker("on") * 50
    post(interceptor, http_srv, f"/on-{tag}", on_body)
    on_seq = call_seq(journal, f"/on-{tag}")
    assert wait_bodies(journal, on_seq, 2) == 2, journal.log_text()
    assert on_body[:40] not in pg_dump(journal)
    assert on_body[:40] not in everything_on_disk(journal)
    out = os.path.join(journal.dir, f"body-{tag}")
    read = cli(journal, "read", "--db", journal.name, "--seq", str(on_seq), "-o", out)
    assert read.returncode == 0, read.stderr
    with open(out, "rb") as f:
        assert f.read() == on_body
    os.remove(out)
    response = cli(journal, "read", "--db", journal.name, "--seq", str(on_seq),
                   "--part", "response")
    assert response.returncode == 0 and response.stdout == BODY
    reads = journal.rows(f"kind = 'forensic_read' AND seq > {on_seq}")
    assert len(reads) == 2
    assert all(f'"seq":{on_seq}' in r["detail"] for r in reads)
    assert all(r["worker_uid"] == os.getuid() for r in reads)
    # The Trust Report: a red chip while capture is on, and the reads.
    report = subprocess.run(
        [collector_binary(), "report", "--db", journal.name, "--json", "--control",
         journal.control], capture_output=True, timeout=120, env=journal._env())
    assert report.returncode == 0, report.stderr
    chip = json.loads(report.stdout)["trust"]["forensic"]
    assert chip["active"] and chip["host"] == "127.0.0.1"
    assert chip["changed_by"].startswith("operator uid")
    assert [r["call_seq"] for r in chip["reads"]][-2:] == [on_seq, on_seq]
    assert any("forensic body capture is ON" in line
               for line in json.loads(report.stdout)["verdict"]["lines"])
    text = subprocess.run(
        [collector_binary(), "report", "--db", journal.name, "--control", journal.control],
        capture_output=True, timeout=120, env=journal._env()).stdout
    assert b"forensic      ON: bodies captured for host=127.0.0.1" in text
    assert f"body of row {on_seq} read".encode() in text
    # Every switch and read is part of the chain.
    status = subprocess.run(
        [collector_binary(), "verify", "--database-url",
         f"host={PG_HOST} user={PG_SUPERUSER} dbname={journal.name}"],
        capture_output=True, timeout=120, env=journal._env())
    assert status.returncode == 0, status.stdout + status.stderr

    # Disabled: nothing captured again.
    disabled = cli(journal, "disable", "--db", journal.name)
    assert disabled.returncode == 0 and b": off" in disabled.stdout
    wait_scope(interceptor, journal, False)
    again = marker("again")
    post(interceptor, http_srv, f"/again-{tag}", again)
    again_seq = call_seq(journal, f"/again-{tag}")
    time.sleep(1.0)  # what a late body would need to be stored
    assert bodies_of(journal, again_seq) == 0
    assert again not in pg_dump(journal)
    assert again not in everything_on_disk(journal)


def test_an_expired_scope_captures_nothing(hooked, journal, http_srv):
    interceptor = hooked
    tag = uuid.uuid4().hex[:8]
    expired = "kind = 'forensic_capture' AND detail LIKE '%\"expire\"%'"
    before = journal.count(expired)
    enabled = cli(journal, "enable", "--db", journal.name, "--channel", "http", "--for", "2s")
    assert enabled.returncode == 0, enabled.stderr
    wait_scope(interceptor, journal, True)
    # The worker drops the scope at its expiry by its own clock, and the
    # collector switches off, journaled, within a second of it.
    deadline = time.monotonic() + 10
    while journal.count(expired) == before:
        assert time.monotonic() < deadline, journal.log_text()
        time.sleep(0.1)
    late = marker("late")
    post(interceptor, http_srv, f"/late-{tag}", late)
    late_seq = call_seq(journal, f"/late-{tag}")
    time.sleep(1.0)
    assert bodies_of(journal, late_seq) == 0
    assert late not in pg_dump(journal)
    status = cli(journal, "status", "--db", journal.name)
    assert b": off" in status.stdout and b"collector (time up)" in status.stdout


def test_the_longest_capture_is_bounded_and_a_scope_is_required(journal):
    too_long = cli(journal, "enable", "--db", journal.name, "--host", "x", "--for", "8d")
    assert too_long.returncode == 1 and b"forensic.max_duration" in too_long.stderr
    no_scope = cli(journal, "enable", "--db", journal.name, "--for", "1h")
    assert no_scope.returncode == 1 and b"needs a scope" in no_scope.stderr


def test_a_changed_or_moved_ciphertext_does_not_open_and_an_unjournaled_read_releases_nothing(interceptor, journal, http_srv):
    assert interceptor.install(journal.socket, journal.name, transport="python")
    tag = uuid.uuid4().hex[:8]
    assert cli(journal, "enable", "--db", journal.name, "--host", "127.0.0.1",
               "--for", "1h").returncode == 0
    wait_scope(interceptor, journal, True)
    post(interceptor, http_srv, f"/sealed-{tag}", marker("sealed"))
    seq = call_seq(journal, f"/sealed-{tag}")
    assert wait_bodies(journal, seq, 2) == 2
    post(interceptor, http_srv, f"/other-{tag}", b"")
    other = call_seq(journal, f"/other-{tag}")
    assert cli(journal, "disable", "--db", journal.name).returncode == 0
    # Fail-closed: a read that cannot be journaled releases nothing.
    reads = journal.count("kind = 'forensic_read'")
    psql(journal.name, "REVOKE INSERT ON egress.journal FROM egress_collector")
    try:
        closed = cli(journal, "read", "--db", journal.name, "--seq", str(seq))
    finally:
        psql(journal.name, "GRANT INSERT ON egress.journal TO egress_collector")
    assert closed.returncode == 1 and closed.stdout == b""
    assert b"could not be journaled, so no body is released" in closed.stderr
    assert journal.count("kind = 'forensic_read'") == reads
    # A superuser moves the request body to another call...
    psql(journal.name,
         "INSERT INTO egress.forensic_body SELECT "
         f"{other}, part, key_id, nonce, ciphertext, captured_len, total_len, truncated, "
         f"stored_at FROM egress.forensic_body WHERE journal_seq = {seq} AND part = 'request'")
    moved = cli(journal, "read", "--db", journal.name, "--seq", str(other))
    assert moved.returncode == 1
    assert b"fails to decrypt" in moved.stderr and b"moved from another call" in moved.stderr
    # ... and changes one byte of the original's ciphertext.
    psql(journal.name,
         "ALTER TABLE egress.forensic_body DISABLE TRIGGER forensic_body_no_update; "
         "UPDATE egress.forensic_body SET ciphertext = set_byte(ciphertext, 40, "
         f"get_byte(ciphertext, 40) # 1) WHERE journal_seq = {seq} AND part = 'request'; "
         "ALTER TABLE egress.forensic_body ENABLE TRIGGER forensic_body_no_update")
    tampered = cli(journal, "read", "--db", journal.name, "--seq", str(seq))
    assert tampered.returncode == 1
    assert b"request body of row" in tampered.stderr and b"fails to decrypt" in tampered.stderr
