import base64
import json
import re
import subprocess
import tempfile

import psycopg2

from odoo import api
from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged

from ..lib import chain, control
from .common import (committed, max_seq, report_json, runner_env, send_calls, sign_now,
                     unique, wait_rows)

VENDOR_HOST = "license.maildesk.mit-odoo.example"  # a vendor entry of the seed catalogue
THIRD_PARTY_HOST = "api.openai.com"


@tagged("post_install", "-at_install")
class TestTrustReport(TransactionCase):
    """The Trust Report, Verify chain and the export, against a journal the
    real collector wrote from events the real hook client sent."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = cls.env.cr.dbname

    def setUp(self):
        super().setUp()
        self.runner = runner_env(self)

    def fresh(self, method, *args, **kwargs):
        """Calls the trust report model in a new transaction, which sees
        what the collector committed after this test's began."""
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.env.ref("base.user_admin").id, {})
            return getattr(env["network.trust_report"], method)(*args, **kwargs)

    def send_known_journal(self):
        maildesk, ai, audit = unique("maildesk"), unique("ai_connector"), "mit_network_audit"
        before = max_seq(self.db)
        send_calls(self.db, [
            {"host": VENDOR_HOST, "addon": maildesk, "bytes_out": 300, "bytes_in": 200},
            {"host": VENDOR_HOST, "addon": maildesk, "bytes_out": 300, "bytes_in": 200},
            {"host": THIRD_PARTY_HOST, "addon": ai, "bytes_out": 5000, "bytes_in": 9000},
            {"host": THIRD_PARTY_HOST, "addon": ai, "bytes_out": 5000, "bytes_in": 9000,
             "status": 500},
            {"host": THIRD_PARTY_HOST, "addon": ai, "bytes_out": 5000, "bytes_in": 9000},
            # The audit addon's own code calling out: the self-egress alarm.
            {"host": "exfil.example.net", "addon": audit, "bytes_out": 64, "bytes_in": 0},
            # A local call (a relay on this host): counted, and listed too.
            {"host": "127.0.0.1", "addon": ai, "port": 2525, "channel": "smtp",
             "bytes_out": 700, "bytes_in": 70},
        ])
        rows = wait_rows(self.db, "SELECT seq, addon, class, self_egress FROM "
                         "public.network_egress_log WHERE seq > %s AND kind = 'call' AND "
                         "addon IN %s", (before, (maildesk, ai, audit)), count=7)
        self.assertEqual(len(rows), 7, rows)
        return maildesk, ai, rows

    def test_report_matches_the_journal_and_the_collector(self):
        maildesk, ai, rows = self.send_known_journal()
        self.assertEqual({(r[1], r[2], r[3]) for r in rows},
                         {(maildesk, "vendor", False), (ai, "third_party", False),
                          (ai, "local", False), ("mit_network_audit", "unknown", True)})
        expected = report_json(self.db)  # brings the rollups up to the head
        got = self.fresh("get_report", "7d")
        self.assertEqual(got["status"]["problems"], [])
        doc = got["report"]
        vendor = [r for r in doc["vendor"]["rows"] if r["addon"] == maildesk]
        self.assertEqual(vendor, [{"component": vendor[0]["component"], "host": VENDOR_HOST,
                                   "addon": maildesk, "calls": 2, "bytes_out": 600,
                                   "bytes_in": 400, "errors": 0,
                                   "last_seen_us": vendor[0]["last_seen_us"]}])
        third = [r for r in doc["third_party"]["rows"] if r["addon"] == ai]
        self.assertEqual([(r["host"], r["calls"], r["bytes_out"], r["bytes_in"], r["errors"])
                          for r in third], [(THIRD_PARTY_HOST, 3, 15000, 27000, 1)])
        self.assertGreaterEqual(doc["trust"]["self_egress_calls"], 1)
        self.assertEqual(doc["verdict"]["level"], "alert")
        self.assertRegex(doc["verdict"]["headline"],
                         r"^ALERT: the audit addon made \d+ network calls? itself\.$")
        local = [r for r in doc["local"]["rows"] if r["addon"] == ai]
        self.assertEqual([(r["host"], r["component"], r["calls"], r["bytes_out"])
                          for r in local], [("127.0.0.1", "Loopback", 1, 700)])
        # Every call of the summary is in one of the four tables.
        self.assertEqual(sum(doc[t]["totals"]["calls"]
                             for t in ("vendor", "third_party", "unknown", "local")),
                         doc["summary"]["calls"])
        # Bytes per addon covers every class: the local call's bytes count.
        bar = next(a for a in got["addons"] if a["addon"] == ai)
        self.assertEqual((bar["calls"], bar["bytes_out"], bar["bytes_in"]),
                         (4, 15700, 27070))
        # The same document as `egress-collector report --json`, but for
        # what depends on the instant it was made.
        for report in (doc, expected):
            report.pop("generated_at_us")
            if report["trust"]["signed_head"]:
                report["trust"]["signed_head"].pop("age_secs")
        self.assertEqual(doc, expected)

    def test_verify_clean_journal(self):
        self.send_known_journal()
        sign_now(self.db)
        result = self.fresh("verify_chain")
        self.assertTrue(result["verified"], result)
        self.assertEqual(result["message"], "Audit chain verified OK — no tampering detected.")
        count = committed(self.db, "SELECT count(*) FROM public.network_egress_log")[0][0]
        self.assertGreaterEqual(result["rows_checked"], count)
        self.assertRegex(result["truncation"], "^Not truncated")
        self.assertTrue(result["signature_checked"])
        # In steps of any size, the same answer.
        step = self.fresh("verify_chain_start")
        while not step["done"]:
            step = self.fresh("verify_chain_step", step["state"], step["end"], 7)
        self.assertTrue(step["verified"], step)

    def superuser(self):
        conn = psycopg2.connect(self.runner["EGRESS_SUPERUSER_DSN"])
        conn.autocommit = True
        self.addCleanup(conn.close)
        return conn.cursor()

    def test_verify_names_the_tampered_row_and_truncation(self):
        self.send_known_journal()
        su = self.superuser()
        su.execute("SELECT seq, host FROM egress.journal WHERE kind = 'call' ORDER BY seq DESC "
                   "LIMIT 1 OFFSET 2")
        seq, host = su.fetchone()
        # A superuser (the one who could) edits a row, then puts it back.
        su.execute("ALTER TABLE egress.journal DISABLE TRIGGER journal_refuse_update")
        try:
            su.execute("UPDATE egress.journal SET host = 'innocent.example' WHERE seq = %s",
                       [seq])
            result = self.fresh("verify_chain")
        finally:
            su.execute("UPDATE egress.journal SET host = %s WHERE seq = %s", [host, seq])
            su.execute("ALTER TABLE egress.journal ENABLE TRIGGER journal_refuse_update")
        self.assertFalse(result["verified"])
        self.assertEqual(result["broken_seq"], seq)
        self.assertIn(f"Chain broken at seq {seq}", result["message"])
        # Truncation: the newest row, signed, removed and then restored.
        head = sign_now(self.db)
        su.execute("SELECT * FROM egress.journal WHERE seq = %s", [head["seq"]])
        saved = su.fetchone()
        su.execute("ALTER TABLE egress.journal DISABLE TRIGGER journal_refuse_delete")
        try:
            su.execute("DELETE FROM egress.journal WHERE seq = %s", [head["seq"]])
            result = self.fresh("verify_chain")
        finally:
            placeholders = ", ".join(["%s"] * len(saved))
            su.execute(f"INSERT INTO egress.journal VALUES ({placeholders})", saved)
            su.execute("ALTER TABLE egress.journal ENABLE TRIGGER journal_refuse_delete")
        self.assertFalse(result["verified"])
        self.assertIn("truncated", result["message"])
        self.assertRegex(result["truncation"], f"^Truncated: .*seq {head['seq']}")
        self.assertTrue(self.fresh("verify_chain")["verified"])

    def test_export_is_signed_and_verifies_without_us(self):
        self.send_known_journal()
        sign_now(self.db)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.env.ref("base.user_admin").id, {})
            wizard = env["network.egress_export"].create({})
            action = wizard.action_export()
            attachment_id = int(action["url"].split("/web/content/")[1].split("?")[0])
            data = base64.b64decode(env["ir.attachment"].browse(attachment_id).datas)
        doc = json.loads(data)
        self.assertEqual(doc["format"], "egress-audit-export")
        self.assertTrue(doc["range"]["to_end"])
        self.assertTrue(doc["signed_heads"])
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            f.write(data)
            f.flush()
            # The key pinned from the collector, not the file's own.
            key = json.loads(control.request(self.runner["EGRESS_CONTROL"],
                                             {"cmd": "pubkey", "db": self.db}))["public_key"]
            out = subprocess.run([self.runner["EGRESS_VERIFY_BIN"], f.name, "--pubkey", key],
                                 capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_an_export_too_large_for_a_worker_says_how_to_export_it_instead(self):
        self.send_known_journal()
        (count, first), = committed(self.db, "SELECT count(*), min(seq) "
                                             "FROM public.network_egress_log")
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.env.ref("base.user_admin").id, {})
            params = env["ir.config_parameter"].sudo()
            params.set_param("mit_network_audit.export_max_rows", "1")
            exports = [("res_model", "=", "network.egress_export")]
            attachments = env["ir.attachment"].search_count(exports)
            try:
                with self.assertRaises(UserError) as raised:
                    env["network.egress_export"].create({}).action_export()
                message = str(raised.exception)
                rows = int(re.search(r"holds (\d+) journal rows", message).group(1))
                self.assertGreaterEqual(rows, count)
                self.assertIn(f"egress-collector export --db {self.db} --from {first} -o",
                              message)
                self.assertEqual(env["ir.attachment"].search_count(exports), attachments)
                # Under the limit it exports.
                params.set_param("mit_network_audit.export_max_rows", str(count + 1000))
                action = env["network.egress_export"].create({}).action_export()
                self.assertEqual(action["type"], "ir.actions.act_url")
            finally:
                params.set_param("mit_network_audit.export_max_rows", False)

    def test_chain_encoding_matches_the_stored_hashes(self):
        # The independent Python encoding gives every stored row's hash.
        self.send_known_journal()
        rows = committed(self.db, f"SELECT {chain.SELECT_COLUMNS} FROM public.network_egress_log "
                                  "ORDER BY seq DESC LIMIT 50")
        for row in rows:
            self.assertEqual(chain.row_hash(row[1], row), bytes(row[2]), row[0])
