"""The four settings at the moment of capture, on a live registry: each is
changed through ``res.config.settings`` (as an administrator saves Odoo's
Settings page), then a request dispatched by Odoo (``ir.http``) makes one
call of every channel, and the rows of each channel are read back from the
journal the real collector wrote. The settings are never committed (a test
never commits), so the collector never sees them: what the rows show is
what the worker did at capture."""

import http.server
import json
import os
import socket
import socketserver
import tempfile

from egress_hook import interceptor

from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, TransactionCase, new_test_user, tagged

from .. import glue
from .common import max_seq, runner_env, wait_rows
from .test_outbound import _Ping, _Smtp, serve

CHANNELS = ("http", "smtp", "imap", "pop3", "socket", "dns")
ROUTE = "/egress_test_caller/every"


class _Lines(socketserver.StreamRequestHandler):
    """Just enough IMAP (``imap``) or POP3 to greet and say goodbye."""

    def handle(self):
        imap = self.server.protocol == "imap"
        self.wfile.write(b"* OK ready\r\n" if imap else b"+OK ready\r\n")
        for line in self.rfile:
            if not imap:
                self.wfile.write(b"+OK bye\r\n")
                return
            tag, _, command = line.decode().strip().partition(" ")
            if command.upper().startswith("CAPABILITY"):
                self.wfile.write(f"* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n".encode())
            else:
                self.wfile.write(f"* BYE\r\n{tag} OK done\r\n".encode())
                return


def line_server(protocol):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Lines)
    server.protocol = protocol
    return server


@tagged("post_install", "-at_install")
class TestSettingsAtCapture(HttpCase):
    def setUp(self):
        super().setUp()
        runner_env(self)
        self.db = self.env.cr.dbname
        self.admin = self.env.ref("base.user_admin")
        self.ports = {}
        for name, server in (
            ("http_port", http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ping)),
            ("smtp_port", socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)),
            ("imap_port", line_server("imap")),
            ("pop3_port", line_server("pop3")),
        ):
            self.addCleanup(server.server_close)
            self.addCleanup(server.shutdown)
            self.ports[name] = serve(server)
        # Every test starts from the defaults (rolled back with the test).
        params = self.env["ir.config_parameter"].sudo()
        params.search([("key", "in", list(glue.SETTING_KEYS))]).unlink()
        self.addCleanup(glue._applied_settings.clear)
        self.addCleanup(interceptor.settings.update, enabled=True, strict=False,
                        disabled_channels="")
        self.authenticate("admin", "admin")

    def save(self, **values):
        settings = self.env["res.config.settings"].with_user(self.admin).create(values)
        settings.execute()

    def call_every_channel(self, first=""):
        before = max_seq(self.db)
        # The test's own request to Odoo is a call of this process too: it
        # is made in this database's context, as Odoo's own calls are. (A
        # call without a database goes to the collector's default database
        # with a sequence of its own, which a call naming that database may
        # repeat: the collector journals the second as a duplicate.)
        with interceptor.context(self.db, "test", "url_open"):
            response = self.url_open(f"{ROUTE}?first={first}&"
                                     + "&".join(f"{k}={v}" for k, v in self.ports.items()))
        self.assertEqual(response.status_code, 200, response.text)
        return before

    def rows_of(self, before, expected, columns="channel"):
        """The rows of the calls (by their ports; dns by its name), once the
        ``expected`` channels' rows are in."""
        ports = tuple(self.ports.values())
        rows = wait_rows(self.db, f"SELECT {columns} FROM public.network_egress_log "
                         "WHERE seq > %s AND kind = 'call' AND (port IN %s "
                         "OR (channel = 'dns' AND host = 'localhost')) ORDER BY seq",
                         (before, ports), count=len(expected))
        return rows

    def assert_channels(self, before, expected):
        rows = self.rows_of(before, expected)
        everything = wait_rows(self.db, "SELECT seq, kind, channel, host, port, trigger_name "
                               "FROM public.network_egress_log WHERE seq > %s ORDER BY seq",
                               (before,), count=0)
        self.assertEqual(sorted(r[0] for r in rows), sorted(expected),
                         (rows, everything, self.ports, interceptor.settings))

    def test_every_channel_is_captured_by_default(self):
        before = self.call_every_channel()
        self.assert_channels(before, CHANNELS)

    def test_each_disabled_channel_leaves_no_row_of_any_kind(self):
        for channel in CHANNELS:
            with self.subTest(disabled=channel):
                self.save(network_audit_disabled_channels=channel)
                # The disabled channel's call comes first: once the rows of
                # the later calls are in, its row would be too.
                before = self.call_every_channel(first=channel)
                self.assert_channels(before, [c for c in CHANNELS if c != channel])
        self.save(network_audit_disabled_channels="smtp,http")
        before = self.call_every_channel(first="smtp")
        # Not even as socket: the raw socket row is the raw call's own.
        rows = self.rows_of(before, ["imap", "pop3", "socket", "dns"], "channel, path")
        self.assertEqual(sorted(r[0] for r in rows), ["dns", "imap", "pop3", "socket"], rows)

    def test_capture_off_then_on_loses_nothing(self):
        self.save(network_audit_enabled=False)
        before = self.call_every_channel()
        self.save(network_audit_enabled=True)
        # Right after the switch is back on: every call of the next request.
        self.call_every_channel()
        self.assert_channels(before, CHANNELS)
        gaps = wait_rows(self.db, "SELECT seq FROM public.network_egress_log "
                         "WHERE seq > %s AND kind = 'gap'", (before,), count=0)
        self.assertEqual(gaps, [])

    def test_retention_changes_nothing_at_capture(self):
        self.save(network_audit_retention_days=30)
        self.assertEqual(glue.read_settings(self.env)["retention_days"], 30)
        before = self.call_every_channel()
        self.assert_channels(before, CHANNELS)

    def test_strict_redaction_in_the_datagram_and_in_the_row(self):
        import egress_hook

        directory = tempfile.mkdtemp(prefix="eh-")
        path = os.path.join(directory, "tee.sock")
        tee = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        tee.bind(path)
        tee.settimeout(2)
        self.addCleanup(tee.close)
        # Every event the worker sends also goes, encoded by the hook's own
        # client, to this test socket.
        core = interceptor._core
        copy = egress_hook.PythonClient(path)
        original = core.state.send

        def send(fields):
            copy.send_call(fields)
            original(fields)

        core.state.send = send
        self.addCleanup(setattr, core.state, "send", original)
        self.save(network_audit_strict=True)
        before = self.call_every_channel()
        datagrams = []
        while True:
            try:
                datagrams.append(tee.recv(70000))
            except (socket.timeout, BlockingIOError):
                break
        # The calls of the route (its file on their stacks); the test's own
        # request to Odoo is captured too, before the route turns strict on.
        ours = [d for d in datagrams if b"models/caller.py" in d]
        self.assertGreaterEqual(len(ours), len(CHANNELS), datagrams)
        for data in ours:
            for masked in (b"/ping", b"api_key", b"X-Egress-Test", b"GET", b"EHLO", ROUTE.encode(),
                           b"call_every_channel", b"Subject"):
                self.assertNotIn(masked, data)
            # The destination stays.
            self.assertIn(b"127.0.0.1", data)
        rows = self.rows_of(before, CHANNELS,
                            "channel, method, path, query_keys, header_names, status, "
                            "error_class, fingerprint, stack, trigger_kind, trigger_name, "
                            "odoo_uid, addon, host, bytes_out")
        self.assertEqual(sorted(r[0] for r in rows), sorted(CHANNELS))
        for row in rows:
            self.assertEqual(row[1:12], (None,) * 11, row)
            # Attribution is what strict mode keeps.
            self.assertEqual(row[12], "egress_test_caller", row)
            self.assertTrue(row[13])


@tagged("post_install", "-at_install")
class TestSettingsInput(TransactionCase):
    def setUp(self):
        super().setUp()
        params = self.env["ir.config_parameter"].sudo()
        params.search([("key", "in", list(glue.SETTING_KEYS))]).unlink()
        self.params = params
        self.admin = self.env.ref("base.user_admin")

    def save(self, user=None, model="res.config.settings", **values):
        settings = self.env[model].with_user(user or self.admin).create(values)
        settings.execute()

    def test_unknown_channels_are_refused_with_a_clear_message(self):
        with self.assertRaisesRegex(UserError, r"'bogus' is no channel\. Use a comma-separated "
                                               r"list of http, smtp, imap, pop3, socket, dns"):
            self.save(network_audit_disabled_channels="SMTP; bogus")
        self.assertFalse(self.params.get_param(glue.KEY_DISABLED_CHANNELS))
        self.save(network_audit_disabled_channels="SMTP; socket ,smtp")
        self.assertEqual(self.params.get_param(glue.KEY_DISABLED_CHANNELS), "smtp,socket")

    def test_a_negative_retention_is_refused(self):
        with self.assertRaisesRegex(UserError, r"Audit retention \(days\): -5 is not a number "
                                               r"of days\. Use 0 to keep everything"):
            self.save(network_audit_retention_days=-5)
        self.assertFalse(self.params.get_param(glue.KEY_RETENTION))

    def test_saving_the_defaults_changes_and_journals_nothing(self):
        self.env.cr.postcommit.clear()
        self.save()
        self.assertFalse(self.params.search([("key", "in", list(glue.SETTING_KEYS))]))
        self.assertFalse(self.env.cr.postcommit._funcs)
        # A real change is written, and journaled once its transaction commits.
        self.save(network_audit_strict=True)
        self.assertEqual(self.params.get_param(glue.KEY_STRICT), "True")
        self.assertEqual(len(self.env.cr.postcommit._funcs), 1)

    def test_managers_change_the_settings_on_their_page(self):
        manager = new_test_user(self.env, "audit_manager_20",
                                groups="base.group_user,mit_network_audit.group_manager")
        self.assertFalse(manager.has_group("base.group_system"))
        self.save(user=manager, model="network.audit.settings", network_audit_strict=True,
                  network_audit_retention_days=7, network_audit_disabled_channels="dns")
        self.assertEqual((self.params.get_param(glue.KEY_STRICT),
                          self.params.get_param(glue.KEY_RETENTION),
                          self.params.get_param(glue.KEY_DISABLED_CHANNELS)),
                         ("True", "7", "dns"))
        page = self.env["network.audit.settings"].with_user(manager).create({})
        self.assertTrue(page.network_audit_strict)
        self.assertEqual(page.network_audit_retention_days, 7)
        reader = new_test_user(self.env, "audit_reader_20",
                               groups="base.group_user,mit_network_audit.group_user")
        with self.assertRaises(AccessError):
            self.save(user=reader, model="network.audit.settings", network_audit_strict=False)
        self.assertEqual(self.params.get_param(glue.KEY_STRICT), "True")

    def test_the_settings_reach_this_worker_without_a_query_when_unchanged(self):
        glue.sync_settings(self.env)
        applied = glue._applied_settings["key"]
        with self.assertQueryCount(0):
            glue.sync_settings(self.env)
        self.assertIs(glue._applied_settings["key"], applied)
        self.save(network_audit_strict=True, network_audit_disabled_channels="dns")
        glue.sync_settings(self.env)
        self.addCleanup(interceptor.settings.update, strict=False, disabled_channels="")
        self.addCleanup(glue._applied_settings.clear)
        self.assertTrue(interceptor.settings.strict)
        self.assertEqual(set(interceptor.settings.disabled_channels), {"dns"})

    def test_uninstall_hands_back_the_settings_and_keeps_the_members(self):
        from .. import post_init_hook, uninstall_hook

        manager = new_test_user(self.env, "audit_manager_u20",
                                groups="base.group_user,mit_network_audit.group_manager")
        group = self.env.ref("mit_network_audit.group_manager")
        self.save(network_audit_strict=True, network_audit_retention_days=3)
        uninstall_hook(self.env)
        self.env.cr.execute("""SELECT DISTINCT ON (key) key, value
                               FROM public.network_egress_setting WHERE key = ANY(%s)
                               ORDER BY key, id DESC""", [list(glue.SETTING_KEYS)])
        held = dict(self.env.cr.fetchall())
        self.assertEqual(held.get(glue.KEY_STRICT, "missing"), None, held)
        self.assertEqual(held.get(glue.KEY_RETENTION, "missing"), None, held)
        saved = json.loads(self.params.get_param("mit_network_audit.group_members"))
        self.assertIn(manager.id, saved["group_manager"])
        # What Odoo's uninstall does to the group's members, then a reinstall.
        field = "users" if "users" in group._fields else "user_ids"
        group.sudo().write({field: [(3, manager.id)]})
        self.assertFalse(manager.has_group("mit_network_audit.group_manager"))
        post_init_hook(self.env)
        self.env.invalidate_all()
        self.assertTrue(manager.has_group("mit_network_audit.group_manager"))
        self.assertFalse(self.params.get_param("mit_network_audit.group_members"))
        # The settings Odoo still holds are handed over again.
        self.env.cr.execute("""SELECT value FROM public.network_egress_setting
                               WHERE key = %s ORDER BY id DESC LIMIT 1""", [glue.KEY_STRICT])
        self.assertEqual(self.env.cr.fetchone()[0], "True")

    def test_refusals_name_the_operation(self):
        for model in ("network.egress_log", "network.egress_rollup", "network.signed_head"):
            with self.assertRaises(UserError) as caught:
                self.env[model].create({})
            message = str(caught.exception)
            self.assertIn("create", message)
            self.assertNotRegex(message, r"\{\w*\}|%\(\w+\)s", message)

    def test_the_trust_report_shows_every_setting_in_force(self):
        self.save(network_audit_strict=True, network_audit_retention_days=30,
                  network_audit_disabled_channels="socket,smtp")
        data = self.env["network.trust_report"].with_user(self.admin).get_report("7d")
        settings = data["settings"]
        self.assertEqual((settings["enabled"], settings["strict"], settings["retention_days"],
                          settings["disabled_channels"]), (True, True, 30, "smtp,socket"))
