import contextlib
import functools
import http.server
import os
import socketserver
import subprocess
import sys
import threading
import types
from unittest.mock import patch

import odoo
from odoo.addons.egress_test_caller import runner
from odoo.tests import HttpCase, tagged
from odoo.tools import config

from .common import max_seq, runner_env, wait_rows

COLUMNS = ("addon, trigger_kind, trigger_name, odoo_uid, self_egress, channel, path, "
           "query_keys, class, status, component")
# Test servers listen on 127.0.0.1: the seeded catalogue's loopback entry
# (never "PostgreSQL database host", which is the database's own port only).
LOOPBACK = "Loopback"


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
    """Odoo sends no mail while tests run; each version asks differently.
    Only the mail server's question is answered: the test itself stays a
    test (Odoo 19's cursors need ``current_test``)."""
    mail_server = type(env["ir.mail_server"])
    module = sys.modules["odoo.addons.base.models.ir_mail_server"]
    with contextlib.ExitStack() as stack:
        if hasattr(mail_server, "_is_test_mode"):  # 17
            stack.enter_context(patch.object(mail_server, "_is_test_mode", lambda self: False))
        elif hasattr(mail_server, "_disable_send"):  # 19
            stack.enter_context(patch.object(mail_server, "_disable_send",
                                             classmethod(lambda cls: False)))
        else:  # 18 reads odoo.modules.module.current_test itself
            stack.enter_context(patch.object(module, "modules", types.SimpleNamespace(
                module=types.SimpleNamespace(current_test=None))))
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
                                 200, LOOPBACK)])

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
        # The job runs as the cron runner runs it (egress_test_caller's
        # runner.py): a thread and a cursor of its own, so no frame of this
        # test is on the call's stack, and the job may commit.
        self.env.flush_all()
        job = functools.partial(runner.run_cron_job, self.registry, self.env.uid, cron.id)
        # Odoo sends no mail in tests; this one must go out.
        # Odoo 19's test holds the test cursors' lock: a job's cursor waits
        # for it, as a request's does, unless the test lets go of it.
        let_go = getattr(odoo.tests.common, "release_test_lock", contextlib.nullcontext)
        with mail_really_sent(self.env), let_go():
            worker = threading.Thread(target=job)
            worker.start()
            worker.join(60)
        rows = self.smtp_rows(before, port)
        addon, kind, name, uid, self_egress, channel, path, _keys, cls, _status, comp = rows[0]
        self.assertEqual((addon, kind, name, self_egress, channel, cls, comp),
                         ("egress_test_caller", "cron", cron.name, False, "smtp", "local",
                          LOOPBACK))
        self.assertEqual(uid, self.env.uid)
        self.assertIn("DATA:354", path)

    def smtp_rows(self, before, port):
        rows = wait_rows(self.db, f"SELECT {COLUMNS} FROM public.network_egress_log "
                         "WHERE seq > %s AND kind = 'call' AND channel = 'smtp' AND port = %s",
                         (before, port))
        self.assertEqual(len(rows), 1, rows)
        return rows

    def test_mail_sent_by_a_server_action_from_the_web_client(self):
        port = self.start(socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp))
        action = self.env["ir.actions.server"].create({
            "name": "Test: mail from a server action",
            # On contacts, which the user may edit (a code action checks it).
            "model_id": self.env.ref("base.model_res_partner").id,
            "state": "code",
            "code": f"env['egress.test.caller'].send_mail('127.0.0.1', {port})",
        })
        before = max_seq(self.db)
        self.authenticate("admin", "admin")
        with mail_really_sent(self.env):
            self.make_jsonrpc_request("/web/action/run", {"action_id": action.id})
        addon, kind, name, uid, self_egress, channel, _path, _keys, cls, _st, comp = \
            self.smtp_rows(before, port)[0]
        # Started by the action (not by the generic route that ran it).
        self.assertEqual((addon, kind, name, uid, self_egress, channel, cls, comp),
                         ("egress_test_caller", "server_action", action.name, self.admin.id,
                          False, "smtp", "local", LOOPBACK))

    def test_the_mail_server_test_button(self):
        port = self.start(socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp))
        server = self.env["ir.mail_server"].create({
            "name": "Test relay", "smtp_host": "127.0.0.1", "smtp_port": port,
            "smtp_encryption": "none", "from_filter": "odoo@example.com"})
        # The button simulates a mail from the current user's address.
        self.admin.email = "admin@example.com"
        before = max_seq(self.db)
        self.authenticate("admin", "admin")
        with mail_really_sent(self.env):
            self.make_jsonrpc_request("/web/dataset/call_button", {
                "model": "ir.mail_server", "method": "test_smtp_connection",
                "args": [[server.id]], "kwargs": {}})
        addon, kind, name, uid, self_egress, channel, _path, _keys, cls, _st, comp = \
            self.smtp_rows(before, port)[0]
        # Base's own button: base made the call, through the web client.
        self.assertEqual((addon, kind, name, uid, self_egress, channel, cls, comp),
                         ("base", "http", "/web/dataset/call_button", self.admin.id, False,
                          "smtp", "local", LOOPBACK))

    def test_a_call_typed_into_odoo_bin_shell(self):
        port = self.start(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ping))
        before = max_seq(self.db)
        # The same Odoo, database and audit set-up as this run, as a shell.
        command = [sys.executable, sys.argv[0], "shell", "-d", self.db, "--no-http",
                   "--addons-path", config["addons_path"] if isinstance(
                       config["addons_path"], str) else ",".join(config["addons_path"]),
                   "--load", ",".join(config["server_wide_modules"] if not isinstance(
                       config["server_wide_modules"], str) else [config["server_wide_modules"]]),
                   "--log-level", "warn"]
        for option, key in (("--db_host", "db_host"), ("--db_port", "db_port"),
                            ("-r", "db_user"), ("-w", "db_password")):
            if config.get(key):
                command += [option, str(config[key])]
        script = (f"print(env['egress.test.caller'].fetch("
                  f"'http://127.0.0.1:{port}/from-the-shell'))\n")
        out = subprocess.run(command, input=script, capture_output=True, text=True,
                             timeout=180, env=dict(os.environ))
        self.assertEqual(out.returncode, 0, out.stderr[-3000:])
        self.assertIn("200", out.stdout)
        self.assertNotIn("Traceback", out.stderr, out.stderr[-3000:])
        rows = wait_rows(self.db, f"SELECT {COLUMNS} FROM public.network_egress_log "
                         "WHERE seq > %s AND kind = 'call' AND host = '127.0.0.1' AND port = %s",
                         (before, port))
        self.assertEqual(rows, [("egress_test_caller", "shell", "odoo-bin shell",
                                 odoo.SUPERUSER_ID, False, "http", "/from-the-shell",
                                 ["api_key"], "local", 200, LOOPBACK)])
