"""The two routes scripts/bench-odoo.sh loads Odoo with. Both are public
(Odoo's public user, its usual database work for such a request) and answer
a few bytes, so what is measured is Odoo's own cost per request, plus, for
``onecall``, exactly one outbound HTTP call to the benchmark's responder."""

import os

import requests

from odoo import http

#: The benchmark's responder (scripts/bench_odoo_responder.py).
TARGET = os.environ.get("EGRESS_BENCH_TARGET", "http://127.0.0.1:9/")


class Bench(http.Controller):
    @http.route("/egress_bench/nocall", type="http", auth="public", methods=["GET"])
    def nocall(self):
        return "ok"

    @http.route("/egress_bench/onecall", type="http", auth="public", methods=["GET"])
    def onecall(self):
        response = requests.get(TARGET, timeout=10)
        return "ok %d" % response.status_code
