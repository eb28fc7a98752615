from odoo import http
from odoo.http import request


class Caller(http.Controller):
    @http.route("/egress_test_caller/fetch", type="http", auth="user")
    def fetch(self, url):
        return request.env["egress.test.caller"].fetch(url)
