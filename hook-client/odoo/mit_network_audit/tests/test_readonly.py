import psycopg2

from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

INSUFFICIENT_PRIVILEGE = "42501"


@tagged("post_install", "-at_install")
class TestReadOnly(TransactionCase):
    """The journal cannot be changed from Odoo: not through the ORM, not with
    sudo, and not with raw SQL as Odoo's database role."""

    def test_odoo_role_is_not_a_superuser(self):
        # Otherwise the raw SQL refusals below would prove nothing.
        self.env.cr.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        self.assertFalse(self.env.cr.fetchone()[0],
                         "run Odoo's tests as Odoo's own role, not a superuser")

    def test_orm_refuses_changes_even_with_sudo(self):
        for model in ("network.egress_log", "network.egress_rollup", "network.signed_head"):
            for env in (self.env, self.env(su=True)):
                records = env[model].search([], limit=1) or env[model].browse(1)
                with self.subTest(model=model, sudo=env.su):
                    with self.assertRaisesRegex(UserError, "refused"):
                        env[model].create({})
                    with self.assertRaisesRegex(UserError, "refused"):
                        records.write({"host": "elsewhere.example"}
                                      if model == "network.egress_log" else {})
                    with self.assertRaisesRegex(UserError, "refused"):
                        records.unlink()

    def assert_refused(self, query):
        with self.subTest(query=query):
            with self.assertRaises(psycopg2.Error) as caught, mute_logger("odoo.sql_db"), \
                    self.env.cr.savepoint():
                self.env.cr.execute(query)
            self.assertEqual(caught.exception.pgcode, INSUFFICIENT_PRIVILEGE,
                             caught.exception.pgerror)

    def test_raw_sql_as_odoo_role_is_refused(self):
        for query in (
            "INSERT INTO public.network_egress_log (seq, prev_hash, row_hash, database, kind, "
            "recorded_at, collector) VALUES (999999, '', '', 'x', 'call', now(), 'x')",
            "UPDATE public.network_egress_log SET host = 'elsewhere.example'",
            "DELETE FROM public.network_egress_log",
            "UPDATE egress.journal SET host = 'elsewhere.example'",
            "DELETE FROM egress.journal",
            "TRUNCATE egress.journal",
            "DELETE FROM public.network_signed_head",
            "UPDATE public.network_egress_rollup SET calls = 0",
            "DROP TABLE egress.journal",
            "SELECT egress.vacuum_journal(now(), 1000)",
        ):
            self.assert_refused(query)

    def test_reading_is_allowed(self):
        self.env.cr.execute("SELECT count(*) FROM public.network_egress_log")
        self.assertGreaterEqual(self.env.cr.fetchone()[0], 0)
        self.assertGreaterEqual(self.env["network.egress_log"].search_count([]), 0)
