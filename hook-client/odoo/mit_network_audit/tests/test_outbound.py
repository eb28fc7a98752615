import contextlib
import functools
import http.server
import socketserver
import threading
from unittest.mock import patch

import odoo
from odoo import release
from odoo.tests import HttpCase, tagged

from .common import max_seq, runner_env, wait_rows

COLUMNS = ("addon, trigger_kind, trigger_name, odoo_uid, self_egress, channel, path, "
           "query_keys, class, status")


class _Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"pong"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP to take one message."""

    def handle(self):
        self.wfile.write(b"220 localhost ESMTP test\r\n")
        in_data = False
        for line in self.rfile:
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    self.wfile.write(b"250 OK queued\r\n")
                continue
            verb = line.split(b" ")[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 localhost\r\n")
            elif verb == b"DATA":
                in_data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@contextlib.contextmanager
def mail_really_sent(env):
    """Odoo sends no mail while tests run; each version asks differently."""
    mail_server = type(env["ir.mail_server"])
    with contextlib.ExitStack() as stack:
        if hasattr(mail_server, "_is_test_mode"):  # 17
            stack.enter_context(patch.object(mail_server, "_is_test_mode", lambda self: False))
        if hasattr(mail_server, "_disable_send"):  # 19
            stack.enter_context(patch.object(mail_server, "_disable_send", classmethod(lambda cls: False)))
        if hasattr(odoo.modules.module, "current_test"):  # 18, 19
            stack.enter_context(patch.object(odoo.modules.module, "current_test", None))
        yield


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


@tagged("post_install", "-at_install")
class TestOutboundCalls(HttpCase):
    """Real calls made inside Odoo by another addon appear in the log,
    attributed to that addon, with the trigger that caused them."""

    def setUp(self):
        super().setUp()
        runner_env(self)
        self.db = self.env.cr.dbname
        self.admin = self.env.ref("base.user_admin")

    def start(self, server):
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return serve(server)

    def test_requests_call_in_an_http_route(self):
        port = self.start(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ping))
        before = max_seq(self.db)
        self.authenticate("admin", "admin")
        response = self.url_open(f"/egress_test_caller/fetch?url=http://127.0.0.1:{port}/ping")
        self.assertEqual(response.text, "200")
        rows = wait_rows(self.db, f"SELECT {COLUMNS} FROM public.network_egress_log "
                         "WHERE seq > %s AND kind = 'call' AND host = '127.0.0.1' AND port = %s",
                         (before, port))
        self.assertEqual(rows, [("egress_test_caller", "http", "/egress_test_caller/fetch",
                                 self.admin.id, False, "http", "/ping", ["api_key"], "local",
                                 200)])

    def test_mail_sent_by_a_cron_job(self):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
        port = self.start(server)
        cron = self.env["ir.cron"].create({
            "name": "Test: send the audit test mail",
            "model_id": self.env.ref("egress_test_caller.model_egress_test_caller").id,
            "state": "code",
            "code": f"model.send_mail('127.0.0.1', {port})",
            "interval_number": 1,
            "interval_type": "days",
        })
        before = max_seq(self.db)
        if release.version_info[0] < 18:
            job = functools.partial(self.env["ir.cron"]._callback, cron.name,
                                    cron.ir_actions_server_id.id, cron.id)
        else:
            job = functools.partial(cron._callback, cron.name, cron.ir_actions_server_id.id)
        # Odoo sends no mail in tests; this one must go out. The job runs in
        # a thread of its own (as the cron runner's), so the test's frames
        # are not on the call's stack.
        with mail_really_sent(self.env):
            worker = threading.Thread(target=job)
            worker.start()
            worker.join(60)
        rows = wait_rows(self.db, f"SELECT {COLUMNS} FROM public.network_egress_log "
                         "WHERE seq > %s AND kind = 'call' AND channel = 'smtp' AND port = %s",
                         (before, port))
        self.assertEqual(len(rows), 1, rows)
        addon, kind, name, uid, self_egress, channel, path, _keys, cls, _status = rows[0]
        self.assertEqual((addon, kind, name, self_egress, channel, cls),
                         ("egress_test_caller", "cron", cron.name, False, "smtp", "local"))
        self.assertEqual(uid, self.env.uid)
        self.assertIn("DATA:354", path)
