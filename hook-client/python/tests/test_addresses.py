"""A call on a kept-alive connection reuses the addresses its connection's
last request found (no system call to ask again), and only those: a
redirect to another host never lends its first connection's addresses to
the second."""

from __future__ import annotations

import http.server
import socketserver
import threading

import requests


class _Redirect(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.server.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def test_kept_alive_and_redirected_calls_name_their_own_connection(interceptor, receiver,
                                                                   http_srv):
    redirect = _Server(("127.0.0.1", 0), _Redirect)
    redirect.target = f"http://127.0.0.1:{http_srv.port}/landed"
    threading.Thread(target=redirect.serve_forever, daemon=True).start()
    try:
        assert interceptor.install(receiver.path, "db", transport="python")
        with interceptor.context("db", "test", "addresses"), requests.Session() as session:
            session.get(f"http://127.0.0.1:{redirect.server_address[1]}/away")
            for _ in range(2):
                session.get(f"http://127.0.0.1:{http_srv.port}/direct")
    finally:
        redirect.shutdown()
        redirect.server_close()
    calls = {}
    for call in receiver.calls():
        calls.setdefault(call["path"], []).append(call)
    (away,) = calls["/away"]
    assert away["dst_port"] == redirect.server_address[1]
    direct = calls["/direct"]
    assert len(direct) == 2
    ports = set()
    for call in direct:
        assert (call["dst_ip"], call["dst_port"]) == ("127.0.0.1", http_srv.port), call
        assert call["src_ip"] == "127.0.0.1" and call["src_port"] > 0
        ports.add(call["src_port"])
    assert len(ports) == 1  # one kept-alive connection, the same addresses
