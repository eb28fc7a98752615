import json

from egress_hook import interceptor

from odoo import SUPERUSER_ID, api, sql_db
from odoo.tests import TransactionCase, tagged

from .. import glue
from .common import max_seq, runner_env, send_calls, sign_now, wait_rows


@tagged("post_install", "-at_install")
class TestSettings(TransactionCase):
    def setUp(self):
        super().setUp()
        self.addCleanup(interceptor.settings.update, enabled=True, strict=False,
                        disabled_channels="")
        self.addCleanup(glue._applied_settings.clear)
        self.admin = self.env.ref("base.user_admin")

    def save(self, **values):
        settings = self.env["res.config.settings"].with_user(self.admin).create(values)
        settings.execute()

    def test_round_trip(self):
        self.save(network_audit_enabled=False, network_audit_strict=True,
                  network_audit_retention_days=30,
                  network_audit_disabled_channels="SMTP; socket ,smtp")
        get = self.env["ir.config_parameter"].sudo().get_param
        self.assertEqual(get(glue.KEY_ENABLED), "False")
        self.assertEqual(get(glue.KEY_STRICT), "True")
        self.assertEqual(get(glue.KEY_RETENTION), "30")
        self.assertEqual(get(glue.KEY_DISABLED_CHANNELS), "smtp,socket")
        values = self.env["res.config.settings"].create({})
        self.assertFalse(values.network_audit_enabled)
        self.assertTrue(values.network_audit_strict)
        self.assertEqual(values.network_audit_retention_days, 30)
        self.assertEqual(values.network_audit_disabled_channels, "smtp,socket")
        # The interceptor in this worker follows on its next request.
        glue.sync_settings(self.env)
        self.assertFalse(interceptor.settings.enabled)
        self.assertEqual(set(interceptor.settings.disabled_channels), {"smtp", "socket"})
        self.save(network_audit_enabled=True, network_audit_disabled_channels="")
        glue.sync_settings(self.env)
        self.assertTrue(interceptor.settings.enabled)
        self.assertFalse(interceptor.settings.disabled_channels)

    def test_defaults_capture_everything(self):
        values = self.env["res.config.settings"].create({})
        self.assertTrue(values.network_audit_enabled)
        self.assertFalse(values.network_audit_strict)
        self.assertEqual(values.network_audit_retention_days, 0)
        self.assertFalse(values.network_audit_disabled_channels)

    def test_a_change_is_journaled_with_its_user(self):
        runner_env(self)
        db = self.env.cr.dbname
        before = max_seq(db)
        self.save(network_audit_strict=True)
        # The change is reported once its transaction commits; a test never
        # commits, so run what commit would run.
        self.env.cr.postcommit.run()
        rows = wait_rows(db, "SELECT detail FROM public.network_egress_log "
                             "WHERE seq > %s AND kind = 'config_change'", (before,))
        details = [json.loads(d) for (d,) in rows]
        strict = [d for d in details if d["key"] == glue.KEY_STRICT]
        self.assertEqual(len(strict), 1, details)
        self.assertEqual(strict[0]["new"], "True")
        self.assertEqual(strict[0]["user"], self.admin.login)
        self.assertEqual(strict[0]["reported_by"], "odoo")

    def test_settings_are_handed_to_the_collector_in_the_same_transaction(self):
        # The collector reads the egress inbox, never ir_config_parameter
        # (docs/SECURITY.md): every change lands there, with Odoo's role as
        # its author, in the transaction that makes it.
        self.save(network_audit_strict=True, network_audit_retention_days=12)
        self.env.cr.execute("""SELECT DISTINCT ON (key) key, value, db_user
                               FROM public.network_egress_setting ORDER BY key, id DESC""")
        held = {key: (value, who) for key, value, who in self.env.cr.fetchall()}
        self.env.cr.execute("SELECT session_user::text")
        me = self.env.cr.fetchone()[0]
        self.assertEqual(held[glue.KEY_STRICT], ("True", me))
        self.assertEqual(held[glue.KEY_RETENTION], ("12", me))

    def test_the_signed_head_is_shown_from_the_egress_view(self):
        runner_env(self)
        db = self.env.cr.dbname
        before = max_seq(db)
        send_calls(db, [{"host": "head.example", "addon": "egress_head_test"}])
        wait_rows(db, "SELECT seq FROM public.network_egress_log WHERE seq > %s", (before,))
        head = sign_now(db)
        # The head was committed after this test's transaction took its
        # snapshot (REPEATABLE READ): read it as the next request would, on
        # a cursor of its own.
        with sql_db.db_connect(db).cursor() as cr:
            params = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"]
            shown = params.get_param(glue.KEY_SIGNED_HEAD)
        self.assertEqual(json.loads(shown), head)
        self.env.cr.execute("SELECT count(*) FROM ir_config_parameter WHERE key = %s",
                            [glue.KEY_SIGNED_HEAD])
        self.assertEqual(self.env.cr.fetchone()[0], 0, "the collector writes no Odoo table")
