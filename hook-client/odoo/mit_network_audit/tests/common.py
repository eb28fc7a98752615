"""What the tests share: the collector the runner started (tests/odoo/run.sh
passes its sockets and binaries in EGRESS_* variables), crafted events sent
through the real hook client, and reads of what the collector committed."""

import json
import os
import subprocess
import time
import uuid

import odoo
from odoo.tests import BaseCase

from ..lib import control

ENV_KEYS = ("EGRESS_SOCKET", "EGRESS_CONTROL", "EGRESS_COLLECTOR_BIN", "EGRESS_VERIFY_BIN",
            "EGRESS_SUPERUSER_DSN")


def runner_env(case: BaseCase):
    """The collector's settings, or the test is skipped with the reason."""
    missing = [key for key in ENV_KEYS if not os.environ.get(key)]
    if missing:
        case.skipTest(f"needs a running egress-collector (tests/odoo/run.sh sets {missing})")
    return {key: os.environ[key] for key in ENV_KEYS}


def committed(dbname, query, params=()):
    """Runs ``query`` in a new transaction: it sees what the collector
    committed since the test's own transaction began."""
    with odoo.sql_db.db_connect(dbname).cursor() as cr:
        cr.execute(query, params)
        return cr.fetchall()


def wait_rows(dbname, query, params=(), count=1, timeout=30):
    """Polls until ``query`` returns at least ``count`` rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = committed(dbname, query, params)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def max_seq(dbname):
    return committed(dbname, "SELECT coalesce(max(seq), 0) FROM public.network_egress_log")[0][0]


def send_calls(dbname, calls, addons_root="/srv/egress-test-addons"):
    """Sends ``Call`` events through the real hook client, as a worker whose
    addons live under ``addons_root``; each call is a dict with host, addon
    (the directory its frame is in), and optionally bytes_out, bytes_in,
    status, channel, port. Returns the worker's client."""
    import egress_hook

    client = egress_hook.client(os.environ["EGRESS_SOCKET"])
    client.send_hello((odoo.release.version, "3", [addons_root], [dbname]))
    now_us = time.time_ns() // 1000
    for call in calls:
        frame = (f"{addons_root}/{call['addon']}/models/connector.py", "sync", 42)
        client.send_call((
            dbname, now_us, 1500, call.get("channel", "http"), "https", "outbound", "POST",
            call["host"], call.get("port", 443), "/v1/check", (), ("Authorization",), "", 0,
            "", 0, True, call.get("status", 200), "", call.get("bytes_out", 100),
            call.get("bytes_in", 50), None,
            [frame, ("/usr/lib/python3/site-packages/requests/api.py", "post", 10)],
            "cron", "Test: sync", 2))
    client.report_drops()
    return client


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def collector_cli(*args):
    """Runs the real egress-collector binary; returns its stdout."""
    out = subprocess.run([os.environ["EGRESS_COLLECTOR_BIN"], *args], capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise AssertionError(f"egress-collector {' '.join(args)} exited {out.returncode}: "
                             f"{out.stderr.strip()}")
    return out.stdout


def report_json(dbname, since="7d"):
    """The terminal report through the collector, which brings the rollups
    up to the journal's head first."""
    return json.loads(collector_cli("report", "--control", os.environ["EGRESS_CONTROL"],
                                    "--db", dbname, "--since", since, "--json"))


def sign_now(dbname):
    reply = json.loads(control.request(os.environ["EGRESS_CONTROL"],
                                       {"cmd": "sign_now", "db": dbname}))
    if reply.get("type") != "signed_head":
        raise AssertionError(f"sign_now failed: {reply}")
    return reply["head"]
