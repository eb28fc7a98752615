from odoo.tests import TransactionCase, tagged
from odoo.tools import config

from egress_hook import interceptor

from .. import glue


@tagged("post_install", "-at_install")
class TestInstallPaths(TransactionCase):
    def expected_path(self):
        server_wide = "mit_network_audit" in config["server_wide_modules"]
        return "server_wide" if server_wide else "registry"

    def test_installed_once_by_the_configured_path(self):
        # tests/odoo/run.sh runs these tests twice: installed from Apps
        # (--load=base,web) and server-wide (--load=base,web,mit_network_audit).
        self.assertTrue(interceptor.installed())
        self.assertEqual(glue.state["installed_by"], self.expected_path())
        self.assertEqual(glue.state["installs"], 1)

    def test_setup_is_idempotent_whichever_path_calls_it(self):
        for source in ("server_wide", "registry", "registry"):
            self.assertTrue(glue.setup(source))
        self.env["network.egress_log"]._register_hook()
        self.assertEqual(glue.state["installs"], 1)
        self.assertEqual(glue.state["installed_by"], self.expected_path())

    def test_hello_names_this_odoo(self):
        info = interceptor._core.state.worker_info
        self.assertEqual(info[0], __import__("odoo").release.version)
        self.assertTrue(any(path.endswith("/addons") or "odoo" in path for path in info[1]))
        self.assertIn(interceptor.stats().get("mode"), ("native", "python"))
