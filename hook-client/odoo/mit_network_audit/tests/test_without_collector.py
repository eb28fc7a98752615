from egress_hook import interceptor

from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged

from .. import glue


# Run by tests/odoo/run.sh alone, in its first pass: the addon installed from
# Apps on a database where `egress-collector setup` has not run and no
# collector listens. Not part of the standard run, where both are there.
@tagged("-standard", "mit_network_audit_without_collector")
class TestWithoutCollector(TransactionCase):
    def test_odoo_works_and_the_report_says_what_is_missing(self):
        self.assertTrue(interceptor.installed())
        self.assertEqual(self.env["network.egress_log"].search([]).ids, [])
        self.assertEqual(self.env["network.egress_log"].search_count([]), 0)
        self.assertEqual(self.env["network.egress_rollup"].read_group(
            [], ["calls:sum"], ["addon"]), [])
        got = self.env["network.trust_report"].get_report("7d")
        self.assertIsNone(got["report"])
        problems = "\n".join(got["status"]["problems"])
        self.assertIn("egress-collector setup has not been run on database "
                      f"{self.env.cr.dbname}", problems)
        self.assertIn("No collector is listening", problems)
        result = self.env["network.trust_report"].verify_chain()
        self.assertFalse(result["verified"])
        self.assertIn("run egress-collector setup", result["message"])

    def test_export_and_catalogue_say_so_plainly(self):
        wizard = self.env["network.egress_export"].create({})
        with self.assertRaisesRegex(UserError, "run egress-collector setup"):
            wizard.action_export()
        with self.assertRaisesRegex(UserError, "egress-collector setup"):
            self.env["network.egress_component"].create({"name": "x", "egress_class": "local"})

    def test_a_call_without_a_collector_is_not_disturbed(self):
        # The audited call proceeds unchanged; the hook counts the event it
        # could not send as lost (reported as a gap once a collector runs).
        import socket

        before = interceptor.stats().get("dropped", 0)
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname()) as client:
                client.sendall(b"ping")
                peer, _ = server.accept()
                with peer:
                    self.assertEqual(peer.recv(4), b"ping")
        self.assertTrue(glue.installed())
        self.assertGreater(interceptor.stats().get("dropped", 0), before)
