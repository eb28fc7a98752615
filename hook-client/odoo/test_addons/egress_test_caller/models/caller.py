import imaplib
import poplib
import smtplib
import socket
from email.message import EmailMessage

import requests

from odoo import api, models


class Caller(models.AbstractModel):
    """Outbound calls made the way addons make them."""

    _name = "egress.test.caller"
    _description = "egress-audit test caller"

    @api.model
    def fetch(self, url):
        """An HTTP GET with requests, as connectors do."""
        response = requests.get(url, params={"api_key": "not-journaled"}, timeout=10)
        return f"{response.status_code}"

    @api.model
    def send_mail(self, host, port):
        """A mail through Odoo's own mail server model (base), as the mail
        queue does."""
        message = EmailMessage()
        message["From"] = "odoo@example.com"
        message["To"] = "someone@example.com"
        message["Subject"] = "egress-audit test"
        message.set_content("A body the audit never stores.")
        self.env["ir.mail_server"].send_email(message, smtp_server=host, smtp_port=port,
                                              smtp_encryption="none")
        return True

    @api.model
    def call_every_channel(self, http_port, smtp_port, imap_port, pop3_port, first=""):
        """One call of every channel, in the order http, smtp, imap, pop3,
        socket, dns, except that the channel named ``first`` comes first:
        a test that waits for the rows of the later calls then knows that
        the first one would have arrived too."""
        def http():
            requests.get(f"http://127.0.0.1:{http_port}/ping", params={"api_key": "k"},
                         headers={"X-Egress-Test": "v"}, timeout=10)

        def smtp():
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as session:
                session.sendmail("odoo@example.com", ["someone@example.com"],
                                 "Subject: egress-audit test\r\n\r\nbody\r\n")

        def imap():
            imaplib.IMAP4("127.0.0.1", imap_port, timeout=10).logout()

        def pop3():
            poplib.POP3("127.0.0.1", pop3_port, timeout=10).quit()

        def raw():
            with socket.create_connection(("127.0.0.1", http_port), timeout=10) as sock:
                sock.sendall(b"GET /raw HTTP/1.0\r\n\r\n")
                while sock.recv(4096):
                    pass

        def dns():
            socket.getaddrinfo("localhost", 0)

        calls = {"http": http, "smtp": smtp, "imap": imap, "pop3": pop3, "socket": raw,
                 "dns": dns}
        order = sorted(calls, key=lambda c: c != first)
        for channel in order:
            calls[channel]()
        return ",".join(order)
