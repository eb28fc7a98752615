from odoo import models
from odoo.http import request

from .. import glue


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _dispatch(cls, endpoint):
        # Calls made while serving this request are the route's.
        token = glue.enter(request.env, "http", request.httprequest.path)
        try:
            return super()._dispatch(endpoint)
        finally:
            glue.leave(token)
