"""Every channel, read back through a real ``egress-collector run`` from the
real PostgreSQL journal: the events match what happened, one per logical
call, and secrets sent in query values, headers, userinfo, bodies, mail
addresses, credentials and messages leave no trace in the database."""

from __future__ import annotations

import http.client
import imaplib
import os
import poplib
import smtplib
import socket
import ssl
import urllib.request
import uuid
import xmlrpc.client

import pytest
import requests
import urllib3

from servers import BODY, client_context

SECRET = "S3cr3tV4lue" + uuid.uuid4().hex[:8]
HERE = os.path.basename(__file__)


class Audit:
    def __init__(self, journal, interceptor, name):
        self.journal = journal
        self.interceptor = interceptor
        self.name = name

    def where(self, extra=""):
        return f"kind = 'call' AND trigger_name = '{self.name}'" + (f" AND {extra}" if extra else "")

    def rows(self, expected=1, extra=""):
        return self.journal.wait_rows(self.where(extra), expected)

    def one(self, extra=""):
        rows = self.rows(1, extra)
        assert len(rows) == 1, [(r["channel"], r["method"], r["host"]) for r in rows]
        return rows[0]


@pytest.fixture(params=["native", "python"])
def audit(request, interceptor, journal):
    assert interceptor.install(journal.socket, journal.name, transport=request.param)
    # Short: the collector scrubs long token-like runs from trigger names.
    name = f"case-{uuid.uuid4().hex[:6]}"
    with interceptor.context(journal.name, "test", name, 7):
        yield Audit(journal, interceptor, name)
    assert interceptor.stats()["interceptor_errors"] == 0


def assert_common(row, channel):
    assert row["channel"] == channel
    assert row["direction"] == "outbound"
    assert row["database"]
    assert row["worker_pid"] == os.getpid()
    assert row["trigger_kind"] == "test" and row["odoo_uid"] == 7
    assert row["duration_us"] >= 0 and row["started_at"]
    assert any(HERE in frame for frame in row["stack"]), row["stack"]
    assert not any("egress_hook" in frame for frame in row["stack"]), row["stack"]


def assert_no_secret(journal):
    assert journal.text_contains(SECRET) == 0
    assert journal.text_contains("private body") == 0
    assert journal.text_contains("private subject") == 0


# -- http -----------------------------------------------------------------

def test_requests_post_is_one_event_without_secrets(audit, http_srv):
    url = f"http://user:{SECRET}@127.0.0.1:{http_srv.port}/api/v1/items?token={SECRET}&page=2"
    body = b'{"card": "' + SECRET.encode() + b'"}'
    response = requests.post(url, data=body, headers={"Authorization": f"Bearer {SECRET}",
                                                      "X-Api-Key": SECRET})
    assert response.status_code == 200 and response.content == BODY
    row = audit.one()
    assert_common(row, "http")
    assert (row["protocol"], row["method"], row["host"], row["port"]) == (
        "http", "POST", "127.0.0.1", http_srv.port)
    assert row["path"] == "/api/v1/items"
    assert row["query_keys"] == ["token", "page"]
    assert {"Authorization", "X-Api-Key", "Host", "Content-Length"} <= set(row["header_names"])
    assert row["status"] == 200 and row["error_class"] is None and row["tls"] is False
    assert row["bytes_out"] >= len(body) and row["bytes_in"] >= len(BODY)
    assert (row["dst_ip"], row["dst_port"]) == ("127.0.0.1", http_srv.port)
    assert row["src_ip"] == "127.0.0.1" and row["src_port"] > 0
    assert row["fingerprint"] is not None, "a body was sent"
    assert_no_secret(audit.journal)


def test_https_with_requests(audit, https_srv, tls_files):
    response = requests.get(f"https://localhost:{https_srv.port}/secure?q=1", verify=tls_files[0])
    assert response.status_code == 200
    row = audit.one()
    assert (row["protocol"], row["tls"], row["host"], row["status"]) == (
        "https", True, "localhost", 200)
    assert row["fingerprint"] is None, "no body was sent"


def test_urllib3_pool_manager(audit, http_srv):
    pool = urllib3.PoolManager()
    response = pool.request("GET", f"http://127.0.0.1:{http_srv.port}/missing?k={SECRET}",
                            headers={"Cookie": SECRET})
    assert response.status == 404
    row = audit.one()
    assert (row["method"], row["path"], row["status"]) == ("GET", "/missing", 404)
    assert row["query_keys"] == ["k"] and "Cookie" in row["header_names"]
    assert_no_secret(audit.journal)


def test_http_client_and_urllib_request(audit, http_srv, https_srv, tls_files):
    conn = http.client.HTTPConnection("127.0.0.1", http_srv.port, timeout=5)
    conn.request("PUT", f"/doc?sig={SECRET}", body=SECRET.encode(),
                 headers={"X-Token": SECRET})
    response = conn.getresponse()
    assert response.read() == BODY
    conn.close()
    context = client_context(tls_files[0])
    with urllib.request.urlopen(f"https://localhost:{https_srv.port}/u?a=1&b=2",
                                context=context) as page:
        assert page.read() == BODY
    rows = audit.rows(2)
    assert [(r["method"], r["path"], r["tls"], r["status"]) for r in rows] == [
        ("PUT", "/doc", False, 200), ("GET", "/u", True, 200)]
    assert rows[0]["query_keys"] == ["sig"] and rows[1]["query_keys"] == ["a", "b"]
    assert "X-Token" in rows[0]["header_names"]
    assert rows[0]["fingerprint"] is not None
    assert_no_secret(audit.journal)


def test_xmlrpc_client(audit, http_srv):
    proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{http_srv.port}/RPC2")
    with pytest.raises(Exception):
        proxy.version(SECRET)  # our server answers text, not XML-RPC
    row = audit.one()
    assert (row["method"], row["path"], row["status"]) == ("POST", "/RPC2", 200)
    assert row["fingerprint"] is not None
    assert_no_secret(audit.journal)


def test_a_refused_connection_is_an_event_with_its_error(audit, http_srv):
    port = _closed_port()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/x", timeout=2)
    row = audit.one()
    assert (row["channel"], row["error_class"], row["status"]) == ("http", "ConnectionError", None)


# -- mail -----------------------------------------------------------------

def test_smtp_with_starttls(audit, smtp_srv, tls_files):
    message = f"From: a@example.com\r\nTo: b@example.com\r\nSubject: private subject\r\n\r\nprivate body {SECRET}\r\n"
    with smtplib.SMTP("127.0.0.1", smtp_srv.port, timeout=10) as smtp:
        smtp.starttls(context=client_context(tls_files[0]))
        smtp.sendmail(f"{SECRET}@example.com", [f"{SECRET}@example.org"], message)
    assert any(SECRET.encode() in m for m in smtp_srv.messages)
    row = audit.one()
    assert_common(row, "smtp")
    assert (row["protocol"], row["host"], row["port"], row["tls"]) == (
        "smtp", "127.0.0.1", smtp_srv.port, True)
    # The reply after the message data has no command of its own.
    assert row["path"] == ("220 EHLO:250 STARTTLS:220 EHLO:250 MAIL:250 RCPT:250 DATA:354 "
                           "250 QUIT:221")
    assert row["method"] == "MAIL"
    assert row["status"] == 221
    assert row["bytes_out"] > len(message) and row["bytes_in"] > 0
    assert row["fingerprint"] is not None
    assert_no_secret(audit.journal)


def test_smtp_ssl(audit, smtps_srv, tls_files):
    smtp = smtplib.SMTP_SSL("127.0.0.1", smtps_srv.port, timeout=10,
                            context=client_context(tls_files[0]))
    smtp.noop()
    smtp.quit()
    row = audit.one()
    assert (row["protocol"], row["tls"], row["port"]) == ("smtps", True, smtps_srv.port)
    assert (row["path"], row["method"], row["status"]) == ("220 NOOP:250 QUIT:221", "NOOP", 221)


def test_smtp_auth_login_keeps_no_credentials(audit, smtp_srv):
    import base64

    with smtplib.SMTP("127.0.0.1", smtp_srv.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = "mailer", SECRET
        code, _ = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
        assert code == 235
    row = audit.one()
    # The two continuation lines (user name and password, base64) are "*".
    assert row["path"] == "220 EHLO:250 AUTH:334 *:334 *:235 QUIT:221"
    assert row["method"] == "EHLO"
    assert audit.journal.text_contains(base64.b64encode(SECRET.encode()).decode()) == 0
    assert_no_secret(audit.journal)


def test_imap_session(audit, imap_srv):
    imap = imaplib.IMAP4("127.0.0.1", imap_srv.port, timeout=10)
    imap.login("user", SECRET)
    imap.select("INBOX")
    typ, data = imap.fetch("1", "(RFC822)")
    assert typ == "OK" and b"private body" in data[0][1]
    imap.logout()
    row = audit.one()
    assert_common(row, "imap")
    assert (row["protocol"], row["tls"], row["port"]) == ("imap", False, imap_srv.port)
    assert row["path"] == "CAPABILITY:OK LOGIN:OK SELECT:OK FETCH:OK LOGOUT:BYE"
    assert row["method"] == "SELECT"
    assert row["bytes_in"] > 40 and row["bytes_out"] > 20
    assert_no_secret(audit.journal)


def test_imap_ssl_and_a_refused_login(audit, imaps_srv, tls_files):
    imap = imaplib.IMAP4_SSL("127.0.0.1", imaps_srv.port,
                             ssl_context=client_context(tls_files[0]), timeout=10)
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("user", "wrong")
    imap.shutdown()
    row = audit.one()
    assert (row["protocol"], row["tls"]) == ("imaps", True)
    assert "LOGIN:NO" in row["path"]


def test_pop3_session(audit, pop3_srv):
    pop = poplib.POP3("127.0.0.1", pop3_srv.port, timeout=10)
    pop.user("user")
    pop.pass_(SECRET)
    assert pop.stat() == (1, 42)
    resp, lines, octets = pop.retr(1)
    assert b"private body" in lines
    pop.quit()
    row = audit.one()
    assert_common(row, "pop3")
    assert row["path"] == "+OK USER:+OK PASS:+OK STAT:+OK RETR:+OK QUIT:+OK"
    assert row["method"] == "STAT"
    assert row["bytes_in"] > 42
    assert_no_secret(audit.journal)


def test_pop3_ssl(audit, pop3s_srv, tls_files):
    pop = poplib.POP3_SSL("127.0.0.1", pop3s_srv.port, timeout=10,
                          context=client_context(tls_files[0]))
    pop.user("user")
    pop.pass_(SECRET)
    pop.quit()
    row = audit.one()
    assert (row["protocol"], row["tls"], row["port"]) == ("pop3s", True, pop3s_srv.port)
    assert row["path"] == "+OK USER:+OK PASS:+OK QUIT:+OK"
    assert_no_secret(audit.journal)


def test_pop3_refused_password(audit, pop3_srv):
    pop = poplib.POP3("127.0.0.1", pop3_srv.port, timeout=10)
    pop.user("user")
    with pytest.raises(poplib.error_proto):
        pop.pass_("wrong")
    pop.close()
    row = audit.one()
    assert "PASS:-ERR" in row["path"] and row["error_class"] == "error_proto"


# -- socket and dns -------------------------------------------------------

def test_raw_tcp_connection(audit, http_srv):
    sock = socket.create_connection(("127.0.0.1", http_srv.port), timeout=5)
    request = f"GET /raw?x={SECRET} HTTP/1.0\r\n\r\n".encode()
    sock.sendall(request)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    sock.close()
    row = audit.one()
    assert_common(row, "socket")
    assert (row["protocol"], row["method"], row["dst_port"], row["tls"]) == (
        "tcp", "connect", http_srv.port, False)
    assert (row["bytes_out"], row["bytes_in"]) == (len(request), len(received))
    assert row["fingerprint"] is not None
    assert_no_secret(audit.journal)


def test_raw_tls_connection(audit, https_srv, tls_files):
    raw = socket.create_connection(("127.0.0.1", https_srv.port), timeout=5)
    tls = client_context(tls_files[0]).wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
    received = b""
    while chunk := tls.recv(4096):
        received += chunk
    tls.close()
    row = audit.one()
    assert (row["channel"], row["tls"], row["bytes_out"], row["bytes_in"]) == (
        "socket", True, 18, len(received))


def test_connect_ex_refused_and_udp(audit, udp_sink):
    port = _closed_port()
    sock = socket.socket()
    assert sock.connect_ex(("127.0.0.1", port)) != 0
    sock.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert udp.sendto(SECRET.encode(), ("127.0.0.1", udp_sink.port)) == len(SECRET)
    udp.close()
    rows = audit.rows(2)
    assert [(r["protocol"], r["method"], r["error_class"], r["bytes_out"]) for r in rows] == [
        ("tcp", "connect", "ECONNREFUSED", 0), ("udp", "sendto", None, len(SECRET))]
    assert udp_sink.sock.recv(100) == SECRET.encode()
    assert_no_secret(audit.journal)


def test_dns_lookups(audit):
    assert socket.getaddrinfo("localhost", 80)
    assert socket.getaddrinfo("127.0.0.1", 80)  # numeric: no look-up, no event
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("localhost", "no-such-service")
    rows = audit.rows(2)
    assert [(r["channel"], r["host"], r["error_class"]) for r in rows] == [
        ("dns", "localhost", None), ("dns", "localhost", "gaierror")]


# -- settings and context -------------------------------------------------

def test_disabled_channels_and_the_master_switch(audit, http_srv, udp_sink):
    settings = audit.interceptor.settings
    settings.update(disabled_channels="http, socket")
    requests.get(f"http://127.0.0.1:{http_srv.port}/off")
    settings.update(disabled_channels=(), enabled=False)
    requests.get(f"http://127.0.0.1:{http_srv.port}/off")
    settings.update(enabled=True)
    requests.get(f"http://127.0.0.1:{http_srv.port}/on")
    row = audit.one()
    assert row["path"] == "/on"


def test_uninstall_restores_the_originals(interceptor, journal):
    originals = (socket.socket.connect, http.client.HTTPConnection.putrequest,
                 smtplib.SMTP.connect, requests.Session.send, socket.getaddrinfo)
    interceptor.install(journal.socket, journal.name)
    interceptor.install(journal.socket, journal.name)  # idempotent
    assert socket.socket.connect is not originals[0]
    interceptor.uninstall()
    interceptor.uninstall()
    assert (socket.socket.connect, http.client.HTTPConnection.putrequest,
            smtplib.SMTP.connect, requests.Session.send, socket.getaddrinfo) == originals
    assert "connect" not in socket.socket.__dict__


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connections_never_closed_are_reported_after_collection(audit, http_srv, smtp_srv):
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        sock = socket.create_connection(("127.0.0.1", http_srv.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        smtp = smtplib.SMTP("127.0.0.1", smtp_srv.port, timeout=10)
        smtp.noop()
        del sock, smtp
        gc.collect()
    # Collected objects are reported with the next event or a flush, never
    # from inside the collection.
    assert audit.interceptor.flush()
    rows = audit.rows(2)
    assert sorted((r["channel"], r["method"]) for r in rows) == [
        ("smtp", "NOOP"), ("socket", "connect")]
