from odoo import http
from odoo.http import request


class Caller(http.Controller):
    @http.route("/egress_test_caller/fetch", type="http", auth="user")
    def fetch(self, url):
        return request.env["egress.test.caller"].fetch(url)

    @http.route("/egress_test_caller/every", type="http", auth="user")
    def every(self, http_port, smtp_port, imap_port, pop3_port, first=""):
        return request.env["egress.test.caller"].call_every_channel(
            int(http_port), int(smtp_port), int(imap_port), int(pop3_port), first)
