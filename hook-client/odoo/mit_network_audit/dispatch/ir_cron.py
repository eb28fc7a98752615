from odoo import models

from .. import glue


class IrCron(models.Model):
    _inherit = "ir.cron"

    # Odoo 17 passes a job id too; 18 and 19 do not.
    def _callback(self, cron_name, server_action_id, *args, **kwargs):
        token = glue.enter(self.env, "cron", cron_name)
        try:
            return super()._callback(cron_name, server_action_id, *args, **kwargs)
        finally:
            glue.leave(token)
