"""The Forensic page: only Network Forensic Officers see and use it (not a
Manager, not an Administrator), and a switch and a read made from it are
journaled by the collector with the Odoo user's id and name."""

import http.client
import http.server
import json
import threading
import time
import uuid

from egress_hook import interceptor

from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, tagged
from odoo.tests.common import new_test_user

from .common import max_seq, runner_env, wait_rows


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"stored")

    def log_message(self, *args):
        pass


@tagged("post_install", "-at_install")
class TestForensicPage(TransactionCase):
    def setUp(self):
        super().setUp()
        suffix = uuid.uuid4().hex[:6]
        self.officer = new_test_user(
            self.env, login=f"officer_{suffix}",
            groups="base.group_user,mit_network_audit.group_forensic_officer")
        self.manager = new_test_user(
            self.env, login=f"manager_{suffix}",
            groups="base.group_user,mit_network_audit.group_manager")
        self.admin = self.env.ref("base.user_admin")
        self.menu = self.env.ref("mit_network_audit.menu_forensic")

    def test_only_forensic_officers_see_and_use_the_page(self):
        self.assertFalse(self.admin.has_group("mit_network_audit.group_forensic_officer"))
        for user in (self.manager, self.admin):
            with self.assertRaises(AccessError):
                self.env["network.forensic_console"].with_user(user).create({})
            visible = self.env["ir.ui.menu"].with_user(user)._visible_menu_ids()
            self.assertNotIn(self.menu.id, visible, f"{user.login} must not see the page")
        console = self.env["network.forensic_console"].with_user(self.officer).create({})
        self.assertTrue(console)
        self.assertIn(self.menu.id,
                      self.env["ir.ui.menu"].with_user(self.officer)._visible_menu_ids())
        # The officer's record does not open the page to a Manager either.
        with self.assertRaises(AccessError):
            console.with_user(self.manager).action_status()

    def test_enable_and_read_are_journaled_with_the_odoo_user(self):
        runner_env(self)
        db = self.env.cr.dbname
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        console = self.env["network.forensic_console"].with_user(self.officer).create(
            {"host": "127.0.0.1", "duration": "10m"})
        self.addCleanup(console.action_disable)
        before = max_seq(db)
        console.action_enable()
        self.assertIn("ON for host=127.0.0.1", console.status)
        switch = wait_rows(db, "SELECT detail, odoo_uid FROM public.network_egress_log "
                               "WHERE kind = 'forensic_capture' AND seq > %s", (before,))
        detail = json.loads(switch[-1][0])
        self.assertEqual(detail["action"], "enable")
        self.assertEqual(detail["by"], f"odoo:{self.officer.login} (uid {self.officer.id})")
        self.assertEqual(switch[-1][1], self.officer.id)

        # This worker learns it within 5 s, then a call in scope is captured.
        deadline = time.monotonic() + 5
        while db not in interceptor.stats().get("forensic", {}).get("active", []):
            self.assertLess(time.monotonic(), deadline, "capture did not reach this worker")
            time.sleep(0.1)
        path = f"/f-{uuid.uuid4().hex[:6]}"
        body = f"evidence {uuid.uuid4().hex}".encode()
        # http.client itself: Odoo's test harness wraps `requests` differently
        # when the addon is loaded server-wide.
        with interceptor.context(db, "test", "forensic", self.officer.id):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
            conn.request("POST", path, body=body)
            conn.getresponse().read()
            conn.close()
        interceptor.flush()
        call = wait_rows(db, "SELECT seq FROM public.network_egress_log "
                             "WHERE kind = 'call' AND path = %s", (path,))
        self.assertTrue(call, "the call was not journaled")
        seq = call[0][0]
        console.seq = seq
        deadline = time.monotonic() + 15
        while True:
            try:
                console.action_read()
                break
            except UserError as error:
                self.assertIn("no captured", str(error))
                self.assertLess(time.monotonic(), deadline, "the body was not stored")
                time.sleep(0.2)
        import base64
        self.assertEqual(base64.b64decode(console.body), body)
        read = wait_rows(db, "SELECT detail, odoo_uid FROM public.network_egress_log "
                             "WHERE kind = 'forensic_read' AND seq > %s", (seq,))
        detail = json.loads(read[-1][0])
        self.assertEqual(detail["seq"], seq)
        self.assertEqual(detail["by"], f"odoo:{self.officer.login} (uid {self.officer.id})")
        self.assertEqual(read[-1][1], self.officer.id)
