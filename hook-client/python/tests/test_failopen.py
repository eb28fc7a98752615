"""The fail-open matrix (DESIGN §1.1): for every channel, whatever goes wrong
in the auditor, the audited call returns the same value or raises the same
exception (type and message) as without it, timeouts and KeyboardInterrupt
behave the same, and nothing is printed."""

from __future__ import annotations

import http.client
import imaplib
import os
import poplib
import re
import shutil
import signal
import smtplib
import socket
import tempfile
import urllib.error
import urllib.request

import pytest
import requests
import urllib3

import egress_hook
from egress_hook import _wire
from egress_hook.interceptor import _core, _http, _mail, _net
from conftest import Receiver
from servers import client_context

# -- the audited calls ----------------------------------------------------


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLOSED = _closed_port()


def http_requests_get(s):
    r = requests.get(f"http://user:pw@127.0.0.1:{s['http']}/a?x=1", headers={"A": "b"})
    return r.status_code, r.content, sorted(r.headers)


def http_requests_post_https(s):
    r = requests.post(f"https://localhost:{s['https']}/p", data=b"body", verify=s["cert"])
    return r.status_code, r.content


def http_requests_refused(s):
    return requests.get(f"http://127.0.0.1:{CLOSED}/", timeout=2)


def http_requests_timeout(s):
    return requests.get(f"http://127.0.0.1:{s['silent']}/", timeout=0.3)


def http_urllib3(s):
    r = urllib3.PoolManager().request("GET", f"http://127.0.0.1:{s['http']}/missing")
    return r.status, r.data


def http_client_get(s):
    conn = http.client.HTTPConnection("127.0.0.1", s["http"], timeout=5)
    conn.request("GET", "/x?y=z")
    r = conn.getresponse()
    out = r.status, r.reason, r.read()
    conn.close()
    return out


def http_client_timeout(s):
    conn = http.client.HTTPConnection("127.0.0.1", s["silent"], timeout=0.3)
    conn.request("GET", "/")
    return conn.getresponse()


def urllib_request_404(s):
    return urllib.request.urlopen(f"http://127.0.0.1:{s['http']}/missing")


def smtp_send(s):
    with smtplib.SMTP("127.0.0.1", s["smtp"], timeout=10) as smtp:
        smtp.starttls(context=client_context(s["cert"]))
        return smtp.sendmail("a@example.com", ["b@example.com"], "Subject: x\r\n\r\nbody\r\n")


def smtp_refused(s):
    return smtplib.SMTP("127.0.0.1", CLOSED, timeout=2)


def smtp_timeout(s):
    return smtplib.SMTP("127.0.0.1", s["silent"], timeout=0.3)


def imap_session(s):
    imap = imaplib.IMAP4("127.0.0.1", s["imap"], timeout=10)
    out = [imap.login("u", "p"), imap.select("INBOX"), imap.fetch("1", "(RFC822)")]
    out.append(imap.logout())
    return out


def imap_bad_login(s):
    imap = imaplib.IMAP4("127.0.0.1", s["imap"], timeout=10)
    try:
        return imap.login("u", "wrong")
    finally:
        imap.shutdown()


def pop3_session(s):
    pop = poplib.POP3("127.0.0.1", s["pop3"], timeout=10)
    out = [pop.getwelcome(), pop.user("u"), pop.pass_("p"), pop.stat(), pop.retr(1)]
    out.append(pop.quit())
    return out


def pop3_bad_password(s):
    pop = poplib.POP3("127.0.0.1", s["pop3"], timeout=10)
    try:
        pop.user("u")
        return pop.pass_("wrong")
    finally:
        pop.close()


def socket_tcp(s):
    sock = socket.create_connection(("127.0.0.1", s["http"]), timeout=5)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    sock.close()
    return data.split(b"\r\n")[0], len(data)


def socket_refused(s):
    return socket.create_connection(("127.0.0.1", CLOSED), timeout=2)


def socket_connect_ex(s):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", CLOSED))


def socket_timeout(s):
    sock = socket.create_connection(("127.0.0.1", s["silent"]), timeout=0.3)
    try:
        return sock.recv(10)
    finally:
        sock.close()


def socket_tls(s):
    raw = socket.create_connection(("127.0.0.1", s["https"]), timeout=5)
    tls = client_context(s["cert"]).wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = tls.recv(12)
    tls.close()
    return data


def udp_sendto(s):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        return udp.sendto(b"ping", ("127.0.0.1", s["udp"]))


def dns_ok(s):
    return sorted(socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))


def dns_fail(s):
    return socket.getaddrinfo("localhost", "no-such-service")


SCENARIOS = [http_requests_get, http_requests_post_https, http_requests_refused,
             http_requests_timeout, http_urllib3, http_client_get, http_client_timeout,
             urllib_request_404, smtp_send, smtp_refused, smtp_timeout, imap_session,
             imap_bad_login, pop3_session, pop3_bad_password, socket_tcp, socket_refused,
             socket_connect_ex, socket_timeout, socket_tls, udp_sendto, dns_ok, dns_fail]

_ADDRESS = re.compile(r"0x[0-9a-f]+")


def outcome(scenario, servers):
    """What the call did: its value, or its exception's type and message
    (object addresses aside, which differ from run to run anyway)."""
    try:
        return ("returned", scenario(servers))
    except Exception as error:
        return ("raised", type(error), _ADDRESS.sub("0x?", str(error)))


@pytest.fixture(scope="module")
def servers(http_srv, https_srv, smtp_srv, imap_srv, pop3_srv, silent_srv, udp_sink,
            tls_files):
    return {"http": http_srv.port, "https": https_srv.port, "smtp": smtp_srv.port,
            "imap": imap_srv.port, "pop3": pop3_srv.port, "silent": silent_srv.port,
            "udp": udp_sink.port, "cert": tls_files[0]}


_baseline = {}


def baseline(scenario, servers):
    if scenario not in _baseline:
        from egress_hook import interceptor

        assert not interceptor.installed()
        _baseline[scenario] = outcome(scenario, servers)
    return _baseline[scenario]


# -- what goes wrong ------------------------------------------------------

class Raising:
    """A transport that raises from every method."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise RuntimeError(f"transport {name} exploded")

        return fail


def _boom(*args, **kwargs):
    raise ZeroDivisionError("injected bug")


@pytest.fixture
def tmpdir_short():
    directory = tempfile.mkdtemp(prefix="eh-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def arrange(mode, interceptor, monkeypatch, directory):
    """Installs the interceptor broken in the way ``mode`` says."""
    socket_path = os.path.join(directory, "ingest.sock")
    if mode == "collector_absent":
        assert interceptor.install(socket_path, "db")
    elif mode == "buffer_full":
        receiver = Receiver(directory)
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        filler.setblocking(False)
        try:
            while True:
                filler.sendto(b"x" * 1024, receiver.path)
        except BlockingIOError:
            pass
        filler.close()
        assert interceptor.install(receiver.path, "db")
        return receiver
    elif mode == "native_missing":
        monkeypatch.setattr(egress_hook, "_native", None)
        monkeypatch.setattr(egress_hook, "_native_error", "ImportError: test")
        assert interceptor.install(socket_path, "db")
        assert interceptor.stats()["mode"] == "python"
    elif mode == "encoder_raising":
        for name in ("encode_call", "encode_hello", "encode_drops"):
            monkeypatch.setattr(_wire, name, _boom)
        assert interceptor.install(Receiver(directory).path, "db", transport="python")
    elif mode == "transport_raising":
        assert interceptor.install(socket_path, "db", transport=Raising())
    elif mode == "hook_bug":
        receiver = Receiver(directory)
        assert interceptor.install(receiver.path, "db")
        for module, name in ((_core, "capture_stack"), (_net, "_addresses"),
                             (_net, "_dest"), (_http, "_split"), (_mail, "_add_command"),
                             (_mail, "_open"), (_core.Record, "fields")):
            monkeypatch.setattr(module, name, _boom)
        return receiver
    elif mode == "healthy":
        receiver = Receiver(directory)
        assert interceptor.install(receiver.path, "db")
        return receiver
    else:  # pragma: no cover
        raise AssertionError(mode)
    return None


MODES = ["healthy", "collector_absent", "buffer_full", "native_missing", "encoder_raising",
         "transport_raising", "hook_bug"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_the_call_behaves_as_without_the_auditor(scenario, mode, servers, interceptor,
                                                 monkeypatch, capfd, tmpdir_short):
    expected = baseline(scenario, servers)
    capfd.readouterr()
    arrange(mode, interceptor, monkeypatch, tmpdir_short)
    got = outcome(scenario, servers)
    interceptor.uninstall()
    monkeypatch.undo()
    assert got == expected
    assert capfd.readouterr() == ("", ""), "nothing is printed"


def test_a_bug_is_counted_not_raised(servers, interceptor, monkeypatch, tmpdir_short):
    arrange("hook_bug", interceptor, monkeypatch, tmpdir_short)
    before = interceptor.stats()["interceptor_errors"]
    http_requests_get(servers)
    smtp_send(servers)
    assert interceptor.stats()["interceptor_errors"] > before


# -- KeyboardInterrupt ----------------------------------------------------

def _interrupt(signum, frame):
    raise KeyboardInterrupt


def interrupted_http_client(s):
    conn = http.client.HTTPConnection("127.0.0.1", s["silent"], timeout=5)
    conn.request("GET", "/")
    return conn.getresponse()


def interrupted_socket(s):
    sock = socket.create_connection(("127.0.0.1", s["silent"]), timeout=5)
    try:
        return sock.recv(10)
    finally:
        sock.close()


def interrupted_smtp(s):
    return smtplib.SMTP("127.0.0.1", s["silent"], timeout=5)


def interrupted_requests(s):
    return requests.get(f"http://127.0.0.1:{s['silent']}/", timeout=5)


@pytest.mark.parametrize("call", [interrupted_http_client, interrupted_socket,
                                  interrupted_smtp, interrupted_requests],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("installed", [False, True])
def test_keyboard_interrupt_propagates(call, installed, servers, interceptor, receiver,
                                       capfd):
    if installed:
        interceptor.install(receiver.path, "db")
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            call(servers)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert capfd.readouterr() == ("", "")
    if installed:
        interceptor.uninstall()
        calls = receiver.calls()
        assert calls, "the interrupted call is still reported"
        assert calls[-1]["error_class"] == "KeyboardInterrupt"


# -- a non-INET connect that raises ----------------------------------------

def test_a_failing_unix_connect_runs_once_and_is_no_interceptor_error(interceptor, tmpdir_short):
    assert interceptor.install(os.path.join(tmpdir_short, "ingest.sock"), "db")
    calls = []

    def original(sock, address):
        calls.append(address)
        raise FileNotFoundError(2, "No such file or directory")

    connect = _net._wrap_connect(original, False)
    before = interceptor.stats()["interceptor_errors"]
    missing = os.path.join(tmpdir_short, "missing.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        with pytest.raises(FileNotFoundError):
            connect(sock, missing)
    assert calls == [missing], "the original connect() runs exactly once"
    assert interceptor.stats()["interceptor_errors"] == before
