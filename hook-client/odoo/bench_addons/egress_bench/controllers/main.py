"""The routes scripts/bench-odoo.sh loads Odoo with: one that makes no
outbound call and one that makes exactly one (``requests.get`` to the
benchmark's responder), each twice: with ``auth="none"`` (Odoo's lightest
request on a database: the audit's per-request cost shows most) and with
``auth="public"`` (the public user's usual database work)."""

import os

import requests

from odoo import http

#: The benchmark's responder (scripts/bench_odoo/responder.py).
TARGET = os.environ.get("EGRESS_BENCH_TARGET", "http://127.0.0.1:9/")


def _one_call():
    response = requests.get(TARGET, timeout=10)
    return "ok %d" % response.status_code


class Bench(http.Controller):
    @http.route("/egress_bench/none/nocall", type="http", auth="none", methods=["GET"])
    def none_nocall(self):
        return "ok"

    @http.route("/egress_bench/none/onecall", type="http", auth="none", methods=["GET"])
    def none_onecall(self):
        return _one_call()

    @http.route("/egress_bench/public/nocall", type="http", auth="public", methods=["GET"])
    def public_nocall(self):
        return "ok"

    @http.route("/egress_bench/public/onecall", type="http", auth="public", methods=["GET"])
    def public_onecall(self):
        return _one_call()
