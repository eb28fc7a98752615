from odoo import models

from .. import glue

# Work a cron job or a queue job started stays theirs: they started it.
_KEEP = ("cron", "queue_job")


class IrActionsServer(models.Model):
    _inherit = "ir.actions.server"

    def run(self):
        # A server action run from the web client, an automation or the
        # shell: its calls are the action's, named by the action rather than
        # by the generic route that ran it.
        if len(self) != 1 or glue.current_trigger_kind() in _KEEP:
            return super().run()
        token = glue.enter(self.env, "server_action", self.name)
        try:
            return super().run()
        finally:
            glue.leave(token)
