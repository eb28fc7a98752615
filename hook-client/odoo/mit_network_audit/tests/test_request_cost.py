"""Nothing per request unless a call happens: the glue around a request, a
cron job or a queue job makes no database query when the settings did not
change, and looks up nothing of the work (database, user, route) until a
call is captured."""

import json
from unittest.mock import patch

from egress_hook import interceptor

from odoo.tests import HttpCase, TransactionCase, tagged

from .. import glue

ROUTE = "/web/session/get_session_info"


@tagged("post_install", "-at_install")
class TestRequestCost(HttpCase):
    def request(self):
        # The test's own request to Odoo is a call of this process too.
        with interceptor.context(self.env.cr.dbname, "test", "url_open"):
            response = self.url_open(ROUTE, data=json.dumps(
                {"jsonrpc": "2.0", "method": "call", "params": {}}),
                headers={"Content-Type": "application/json"})
        self.assertEqual(response.status_code, 200, response.text)

    def queries_of_a_request(self):
        self.env.flush_all()
        before = self.cr.sql_log_count
        self.request()
        return self.cr.sql_log_count - before

    def test_the_dispatch_wrapper_makes_no_query(self):
        self.assertTrue(glue.installed())
        self.authenticate("admin", "admin")
        entered = []
        enter = glue.enter

        def spy(env, kind, *args):
            entered.append(kind)
            return enter(env, kind, *args)

        for _ in range(2):  # caches warm, settings applied
            self.request()
        counts = {}
        for _ in range(2):
            with patch.object(glue, "enter", spy):
                counts.setdefault("with the glue", []).append(self.queries_of_a_request())
            with patch.object(glue, "enter", lambda *args: None):
                counts.setdefault("without", []).append(self.queries_of_a_request())
        self.assertEqual(entered, ["http", "http"])
        self.assertGreater(min(counts["without"]), 0, counts)
        self.assertEqual(counts["with the glue"], counts["without"], counts)


@tagged("post_install", "-at_install")
class TestLazyContext(TransactionCase):
    def setUp(self):
        super().setUp()
        self.assertTrue(glue.installed())
        self.addCleanup(glue._applied_settings.clear)

    def test_enter_and_leave_make_no_query_and_read_nothing_of_the_work(self):
        described = []

        def describe(name):
            described.append(name)
            return name.upper()

        glue.leave(glue.enter(self.env, "cron", "warm"))
        with self.assertQueryCount(0):
            token = glue.enter(self.env, "queue_job", "job", describe)
            self.assertEqual(glue.current_trigger_kind(), "queue_job")
            glue.leave(token)
        self.assertEqual(described, [])
        # What a captured call reads: the work's database, name and user.
        token = glue.enter(self.env, "queue_job", "job", describe)
        try:
            context = interceptor.current_context()
        finally:
            glue.leave(token)
        self.assertEqual(tuple(context), (self.env.cr.dbname, "queue_job", "JOB", self.env.uid))
        self.assertEqual(described, ["job"])
