from odoo import api, fields, models

from .. import glue


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    network_audit_enabled = fields.Boolean(
        "Network auditing enabled", default=True,
        help="The master switch. Off = no capture at all: calls made while it is off are not "
             "recorded, and the Trust Report says capture was off.")
    network_audit_strict = fields.Boolean(
        "Strict redaction",
        help="Keeps only host / IP / port / sizes and masks everything else (paths, methods, "
             "header and query key names, stack) at the moment of capture.")
    network_audit_retention_days = fields.Integer(
        "Audit retention (days)",
        help="How long rows are kept. 0 keeps everything. The vacuum never deletes at or "
             "after the signed head, and the Trust Report's sums outlive the rows.")
    network_audit_disabled_channels = fields.Char(
        "Disabled channels",
        help="A comma-separated list of channels to turn off, among http, smtp, imap, pop3, "
             "socket and dns (for example socket,smtp). Empty = capture all.")

    @api.model
    def get_values(self):
        values = super().get_values()
        settings = glue.read_settings(self.env)
        values.update(
            network_audit_enabled=settings["enabled"],
            network_audit_strict=settings["strict"],
            network_audit_retention_days=settings["retention_days"],
            network_audit_disabled_channels=settings["disabled_channels"],
        )
        return values

    def set_values(self):
        super().set_values()
        # Booleans are stored as "True"/"False", never removed: an absent
        # master switch would mean "on", whatever the box said.
        params = self.env["ir.config_parameter"].sudo()
        for key, value in (
            (glue.KEY_ENABLED, str(bool(self.network_audit_enabled))),
            (glue.KEY_STRICT, str(bool(self.network_audit_strict))),
            (glue.KEY_RETENTION, str(max(0, self.network_audit_retention_days))),
            (glue.KEY_DISABLED_CHANNELS,
             glue.normalize_channels(self.network_audit_disabled_channels or "")),
        ):
            if (params.get_param(key) or "") != value:
                params.set_param(key, value)
