from odoo import api, fields, models

from .. import glue
from . import audit_settings


class ResConfigSettings(models.TransientModel):
    """The four audit settings on Odoo's Settings page (administrators);
    Network Audit Managers change the same four through Network Audit →
    Configuration → Settings (``network.audit.settings``)."""

    _inherit = "res.config.settings"

    network_audit_enabled = fields.Boolean(
        "Network auditing enabled", default=True, help=audit_settings.HELP_ENABLED)
    network_audit_strict = fields.Boolean(
        "Strict redaction", help=audit_settings.HELP_STRICT)
    network_audit_retention_days = fields.Integer(
        "Audit retention (days)", help=audit_settings.HELP_RETENTION)
    network_audit_disabled_channels = fields.Char(
        "Disabled channels", help=audit_settings.HELP_CHANNELS)

    @api.model
    def get_values(self):
        values = super().get_values()
        values.update(glue.settings_fields(self.env))
        return values

    def set_values(self):
        glue.validate(self.network_audit_disabled_channels, self.network_audit_retention_days)
        super().set_values()
        glue.save_settings(self.env, self.network_audit_enabled, self.network_audit_strict,
                           self.network_audit_retention_days,
                           self.network_audit_disabled_channels)
