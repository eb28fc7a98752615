from odoo import models
from odoo.http import request

from .. import glue


def _path(httprequest):
    return httprequest.path


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _dispatch(cls, endpoint):
        # Calls made while serving this request are the route's. Its path is
        # read only if a call is captured (glue.enter).
        token = glue.enter(request.env, "http", request.httprequest, _path)
        try:
            return super()._dispatch(endpoint)
        finally:
            glue.leave(token)
