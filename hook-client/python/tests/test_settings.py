"""The interceptor's settings at the moment of capture, read back through a
real ``egress-collector run`` (and, for strict redaction, from the very
datagram the hook sent): a disabled channel leaves no row of any kind,
disabling ``socket`` stops only raw sockets no high-level hook owns, strict
redaction masks in the worker, and a plain Python process applies settings
with ``interceptor.settings.update`` (docs/CONFIGURATION.md)."""

from __future__ import annotations

import imaplib
import os
import poplib
import smtplib
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import requests

SECRET = "S3cr3tV4lue" + uuid.uuid4().hex[:8]


@pytest.fixture(params=["native", "python"])
def audited(request, interceptor, journal):
    assert interceptor.install(journal.socket, journal.name, transport=request.param)
    errors = interceptor.stats()["interceptor_errors"]
    name = f"set-{uuid.uuid4().hex[:6]}"
    with interceptor.context(journal.name, "test", name, 7):
        yield name
    assert interceptor.stats()["interceptor_errors"] == errors


def rows_after_marker(journal, name, port):
    """Every row of case ``name``, once the marker call (an HTTP GET of
    /marker, made last, with every channel on) is in: events of one process
    reach the journal in the order they were sent."""
    requests.get(f"http://127.0.0.1:{port}/marker")
    journal.wait_rows(f"kind = 'call' AND trigger_name = '{name}' AND path = '/marker'", 1)
    return [(r["channel"], r["path"])
            for r in journal.rows(f"kind = 'call' AND trigger_name = '{name}'")]


def call_every_channel(http_port, smtp_port, imap_port, pop3_port):
    requests.get(f"http://127.0.0.1:{http_port}/http?token={SECRET}")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["b@example.org"], "Subject: x\r\n\r\nbody\r\n")
    imap = imaplib.IMAP4("127.0.0.1", imap_port, timeout=10)
    imap.login("user", SECRET)
    imap.logout()
    pop = poplib.POP3("127.0.0.1", pop3_port, timeout=10)
    pop.user("user")
    pop.pass_(SECRET)
    pop.quit()
    sock = socket.create_connection(("127.0.0.1", http_port), timeout=5)
    sock.sendall(b"GET /raw HTTP/1.0\r\n\r\n")
    while sock.recv(4096):
        pass
    sock.close()
    socket.getaddrinfo("localhost", 80)


ALL = ["dns", "http", "imap", "pop3", "smtp", "socket"]


@pytest.mark.parametrize("disabled", [[], ["http"], ["smtp"], ["imap"], ["pop3"], ["socket"],
                                      ["dns"], ["smtp", "http"]])
def test_a_disabled_channel_leaves_no_row_of_any_kind(disabled, interceptor, journal, audited,
                                                      http_srv, smtp_srv, imap_srv, pop3_srv):
    interceptor.settings.update(disabled_channels=",".join(disabled))
    call_every_channel(http_srv.port, smtp_srv.port, imap_srv.port, pop3_srv.port)
    interceptor.settings.update(disabled_channels=())
    rows = rows_after_marker(journal, audited, http_srv.port)
    assert rows[-1] == ("http", "/marker")
    # One row per channel left on, none of any kind for a disabled one: a
    # disabled high-level channel's connections are not reported as socket.
    assert sorted(c for c, _ in rows[:-1]) == [c for c in ALL if c not in disabled], rows
    assert journal.text_contains(SECRET) == 0


def test_the_master_switch_and_re_enable_lose_nothing(interceptor, journal, audited, http_srv):
    settings = interceptor.settings
    settings.update(enabled=False)
    requests.get(f"http://127.0.0.1:{http_srv.port}/off")
    settings.update(enabled=True)
    # The very first calls after the switch is back on are journaled.
    for i in range(5):
        requests.get(f"http://127.0.0.1:{http_srv.port}/on{i}")
    rows = rows_after_marker(journal, audited, http_srv.port)
    assert rows == [("http", f"/on{i}") for i in range(5)] + [("http", "/marker")]


def test_unknown_channel_names_are_refused_and_change_nothing(interceptor):
    interceptor.settings.update(disabled_channels="smtp")
    with pytest.raises(ValueError, match="unknown channel.*bogus.*use http, smtp"):
        interceptor.settings.update(disabled_channels="smtp; bogus", enabled=False)
    assert interceptor.settings.disabled_channels == {"smtp"}
    assert interceptor.settings.enabled


MASKED = dict(method="", path="", query_keys=[], header_names=[], status=None,
              error_class="", payload_sha256=None, trigger=("", "", None))


@pytest.mark.parametrize("transport", ["native", "python"])
def test_strict_redaction_masks_in_the_datagram_the_worker_sends(transport, interceptor,
                                                                 receiver, http_srv):
    assert interceptor.install(receiver.path, "db", transport=transport)
    interceptor.settings.update(strict=True)
    with interceptor.context("db", "http", f"/route/{SECRET}", 7):
        requests.post(f"http://127.0.0.1:{http_srv.port}/api/{SECRET}?token={SECRET}",
                      data=SECRET, headers={"X-Api-Key": SECRET})
    interceptor.flush()
    calls = receiver.calls()
    assert [c["channel"] for c in calls] == ["http"]
    call = calls[0]
    assert {k: call[k] for k in MASKED} == MASKED
    assert call["stack"] and all(fn == "" and line == 0 for _, fn, line in call["stack"])
    assert any(f.endswith("test_settings.py") for f, _, _ in call["stack"])
    assert (call["host"], call["port"], call["dst_port"]) == (
        "127.0.0.1", http_srv.port, http_srv.port)
    assert call["bytes_out"] > 0 and call["bytes_in"] > 0 and call["src_port"] > 0
    interceptor.settings.update(strict=False)
    with interceptor.context("db", "http", "/route", 7):
        requests.get(f"http://127.0.0.1:{http_srv.port}/full?x=1")
    interceptor.flush()
    (full,) = receiver.calls()
    assert (full["method"], full["path"], full["query_keys"]) == ("GET", "/full", ["x"])


def test_strict_redaction_leaves_nothing_masked_in_the_row(interceptor, journal, audited,
                                                           http_srv, smtp_srv):
    since = time.time()
    interceptor.settings.update(strict=True)
    requests.post(f"http://127.0.0.1:{http_srv.port}/api/{SECRET}?token={SECRET}", data=SECRET)
    with smtplib.SMTP("127.0.0.1", smtp_srv.port, timeout=10) as smtp:
        smtp.sendmail("a@example.com", ["b@example.org"], "Subject: x\r\n\r\nbody\r\n")
    interceptor.settings.update(strict=False)
    # Strict masks the trigger too: the rows are found by their ports.
    requests.get(f"http://127.0.0.1:{http_srv.port}/marker")
    journal.wait_rows(f"kind = 'call' AND trigger_name = '{audited}'", 1)
    rows = journal.rows(f"kind = 'call' AND port IN ({http_srv.port}, {smtp_srv.port}) "
                        f"AND trigger_name IS NULL AND started_at >= to_timestamp({since})")
    assert sorted(r["channel"] for r in rows) == ["http", "smtp"]
    for row in rows:
        for column in ("method", "path", "query_keys", "header_names", "status",
                       "error_class", "fingerprint", "stack", "trigger_kind", "odoo_uid"):
            assert row[column] in (None, []), (column, row)
        assert row["host"] == "127.0.0.1" and row["bytes_out"] > 0
    assert journal.text_contains(SECRET) == 0


PLAIN_PROCESS = """
import requests
from egress_hook import interceptor

interceptor.install(socket={socket!r}, database={database!r})
with interceptor.context({database!r}, "script", {name!r}):
    interceptor.settings.update(disabled_channels="http,dns")
    requests.get("http://127.0.0.1:{port}/while-off")
    interceptor.settings.update(disabled_channels="", strict=True)
    requests.get("http://127.0.0.1:{port}/strict?token=x")
    interceptor.settings.update(strict=False)
    requests.get("http://127.0.0.1:{port}/after")
interceptor.flush()
"""


def test_a_plain_process_applies_settings_with_settings_update(journal, http_srv):
    """The documented way outside Odoo (docs/CONFIGURATION.md): each
    ``settings.update`` applies from the next call, in a process of its own."""
    name = f"plain-{uuid.uuid4().hex[:6]}"
    since = time.time()
    script = textwrap.dedent(PLAIN_PROCESS).format(
        socket=journal.socket, database=journal.name, name=name, port=http_srv.port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESS_")}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60, env=env)
    journal.wait_rows(f"kind = 'call' AND trigger_name = '{name}'", 1)
    rows = journal.rows(f"kind = 'call' AND port = {http_srv.port} "
                        f"AND (trigger_name = '{name}' OR trigger_name IS NULL) "
                        f"AND started_at >= to_timestamp({since})")
    # Nothing while http was off; the strict call masked; then full again.
    assert [(r["channel"], r["path"]) for r in rows][-2:] == [("http", None), ("http", "/after")]
    assert not any(r["path"] == "/while-off" for r in rows)
