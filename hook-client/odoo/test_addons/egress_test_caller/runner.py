"""Runs a cron job the way Odoo's cron runner does: in a thread of its own,
with a cursor of its own, and nothing of the test that asked for it on the
stack. (In test mode the registry's cursor commits to a savepoint, so the
job may commit as it does in production.)"""

from odoo import api, release


def run_cron_job(registry, uid, cron_id):
    with registry.cursor() as cr:
        env = api.Environment(cr, uid, {})
        cron = env["ir.cron"].browse(cron_id)
        if release.version_info[0] < 18:
            env["ir.cron"]._callback(cron.name, cron.ir_actions_server_id.id, cron.id)
        else:
            cron._callback(cron.name, cron.ir_actions_server_id.id)
