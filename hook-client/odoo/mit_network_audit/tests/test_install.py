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


@tagged("post_install", "-at_install")
class TestQueueJob(TransactionCase):
    """queue_job is not installed here: a module of the same shape (a Job
    class with ``perform``) stands in for ``odoo.addons.queue_job.job``."""

    def test_a_job_calls_are_the_job_s(self):
        import sys
        import types

        from ..dispatch.queue_job import wrap_queue_job

        seen = []

        class Job:
            def __init__(self, env):
                self.env, self.func_string = env, "res.partner.sync_all()"

            def perform(self):
                seen.append(interceptor.current_context())
                return "done"

        package = types.ModuleType("odoo.addons.queue_job")
        module = types.ModuleType("odoo.addons.queue_job.job")
        module.Job = Job
        package.job = module
        self.addCleanup(sys.modules.pop, "odoo.addons.queue_job", None)
        self.addCleanup(sys.modules.pop, "odoo.addons.queue_job.job", None)
        sys.modules.update({"odoo.addons.queue_job": package, "odoo.addons.queue_job.job": module})
        self.assertTrue(wrap_queue_job())
        self.assertTrue(wrap_queue_job())  # once only
        self.assertEqual(Job(self.env).perform(), "done")
        context = seen[0]
        self.assertEqual((context[0], context[1], context[2]),
                         (self.env.cr.dbname, "queue_job", "res.partner.sync_all()"))
        self.assertEqual(len(seen), 1)
