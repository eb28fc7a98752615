from odoo import models
from odoo.http import _request_stack

from .. import glue


def _path(httprequest):
    return httprequest.path


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _dispatch(cls, endpoint):
        # Calls made while serving this request are the route's. Its path is
        # read only if a call is captured (glue.enter). The request is taken
        # from Odoo's stack once: each use of the ``request`` proxy resolves
        # it anew, through five calls of werkzeug's.
        current = _request_stack.top
        if current is None:
            return super()._dispatch(endpoint)
        token = glue.enter(current.env, "http", current.httprequest, _path)
        try:
            return super()._dispatch(endpoint)
        finally:
            glue.leave(token)
