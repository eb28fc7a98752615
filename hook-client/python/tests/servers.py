"""Real local servers for the tests, all on 127.0.0.1 and ephemeral ports:
HTTP and HTTPS (a self-signed certificate made at test time), SMTP
(aiosmtpd, plain, STARTTLS and implicit TLS), small IMAP and POP3 servers,
a UDP sink, and a TCP server that accepts and never answers (timeouts)."""

from __future__ import annotations

import datetime
import http.server
import os
import socket
import socketserver
import ssl
import subprocess
import threading

BODY = b"hello from the test server\n"


def make_certificate(directory):
    """``(certfile, keyfile)`` of a self-signed certificate for 127.0.0.1 and
    localhost, with ``cryptography`` or else the ``openssl`` command."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    try:
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext",
             "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", key, "-out", cert],
            check=True, capture_output=True)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(private, hashes.SHA256()))
    with open(cert, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return cert, key


def server_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def client_context(cert):
    return ssl.create_default_context(cafile=cert)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle on, the body can wait for
    # an ACK that loopback delays, stalling keep-alive clients.
    disable_nagle_algorithm = True

    def _reply(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status = 404 if self.path.startswith("/missing") else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = do_PUT = _reply

    def log_message(self, *args):
        pass


class _HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # tests check that nothing is printed: keep the servers quiet too


class Server:
    """A server on a thread; ``port``; ``close()``."""

    def __init__(self, server):
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def http_server(tls_context=None):
    server = _HTTPServer(("127.0.0.1", 0), _Handler)
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    return Server(server)


# -- IMAP and POP3: just enough of each protocol for imaplib and poplib ----

class _Lines(socketserver.StreamRequestHandler):
    def send(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()


class _IMAPHandler(_Lines):
    def handle(self):
        self.send("* OK [CAPABILITY IMAP4rev1] test server ready")
        for raw in self.rfile:
            parts = raw.decode().rstrip("\r\n").split(" ")
            tag, command = parts[0], parts[1].upper() if len(parts) > 1 else ""
            if command == "CAPABILITY":
                self.send("* CAPABILITY IMAP4rev1 AUTH=PLAIN")
                self.send(f"{tag} OK CAPABILITY completed")
            elif command == "LOGIN":
                if parts[3].strip('"') == "wrong":
                    self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
                else:
                    self.send(f"{tag} OK LOGIN completed")
            elif command == "SELECT":
                self.send("* 1 EXISTS")
                self.send(f"{tag} OK [READ-WRITE] SELECT completed")
            elif command == "FETCH":
                message = b"Subject: private subject\r\n\r\nprivate body\r\n"
                self.wfile.write(b"* 1 FETCH (RFC822 {%d}\r\n" % len(message) + message
                                 + b")\r\n")
                self.send(f"{tag} OK FETCH completed")
            elif command == "LOGOUT":
                self.send("* BYE logging out")
                self.send(f"{tag} OK LOGOUT completed")
                return
            else:
                self.send(f"{tag} BAD unknown command")


class _POP3Handler(_Lines):
    def handle(self):
        self.send("+OK test POP3 server ready")
        for raw in self.rfile:
            line = raw.decode().rstrip("\r\n")
            command = line.split(" ")[0].upper()
            if command == "PASS" and line.endswith(" wrong"):
                self.send("-ERR [AUTH] invalid password")
            elif command in ("USER", "PASS", "NOOP"):
                self.send("+OK")
            elif command == "STAT":
                self.send("+OK 1 42")
            elif command == "RETR":
                self.send("+OK 42 octets")
                self.send("Subject: private subject")
                self.send("")
                self.send("private body")
                self.send(".")
            elif command == "QUIT":
                self.send("+OK bye")
                return
            else:
                self.send("-ERR unknown command")


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


def imap_server():
    return Server(_TCPServer(("127.0.0.1", 0), _IMAPHandler))


def pop3_server():
    return Server(_TCPServer(("127.0.0.1", 0), _POP3Handler))


class SilentServer:
    """Accepts connections and never answers: reads time out."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def close(self):
        self.stop = True
        self.thread.join(2)
        for conn in self.held:
            conn.close()
        self.sock.close()


class UDPSink:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class SMTPServer:
    """aiosmtpd on a thread; ``messages`` holds what it received.
    ``implicit_tls``: SMTP_SSL; ``starttls``: offers STARTTLS."""

    def __init__(self, tls_context=None, implicit_tls=False):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages = []

        class Handler:
            async def handle_DATA(inner, server, session, envelope):
                self.messages.append(envelope.content)
                return "250 OK message accepted"

        kwargs = {"authenticator": lambda *args: AuthResult(success=True),
                  "auth_require_tls": False}
        if implicit_tls:
            kwargs["ssl_context"] = tls_context
        elif tls_context is not None:
            kwargs["tls_context"] = tls_context
            kwargs["require_starttls"] = False
        port = _free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port,
                                     ready_timeout=10, **kwargs)
        self.controller.start()
        self.port = port

    def close(self):
        self.controller.stop()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
