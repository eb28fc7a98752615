from odoo import _, api, fields, models
from odoo.exceptions import AccessError

from .. import glue

HELP_ENABLED = glue.HELP[glue.KEY_ENABLED]
HELP_STRICT = glue.HELP[glue.KEY_STRICT]
HELP_RETENTION = glue.HELP[glue.KEY_RETENTION]
HELP_CHANNELS = glue.HELP[glue.KEY_DISABLED_CHANNELS]


class NetworkAuditSettings(models.TransientModel):
    """The four audit settings for Network Audit Managers (Network Audit →
    Configuration → Settings): Odoo's own Settings page is for
    administrators only (``res.config.settings.execute`` refuses others),
    and the Manager group's description promises this page."""

    _name = "network.audit.settings"
    _description = "Network Audit Settings"

    network_audit_enabled = fields.Boolean("Network auditing enabled", help=HELP_ENABLED)
    network_audit_strict = fields.Boolean("Strict redaction", help=HELP_STRICT)
    network_audit_retention_days = fields.Integer("Audit retention (days)", help=HELP_RETENTION)
    network_audit_disabled_channels = fields.Char("Disabled channels", help=HELP_CHANNELS)

    def _require_manager(self):
        if not self.env.user.has_group("mit_network_audit.group_manager"):
            raise AccessError(_("Only Network Audit Managers may change the audit settings."))

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        values.update(glue.settings_fields(self.env))
        return {key: value for key, value in values.items() if key in fields_list}

    def execute(self):
        """Saves the four settings (validated; only real changes are written
        and journaled, with this user)."""
        self.ensure_one()
        self._require_manager()
        glue.save_settings(self.env, self.network_audit_enabled, self.network_audit_strict,
                           self.network_audit_retention_days,
                           self.network_audit_disabled_channels)
        return {"type": "ir.actions.client", "tag": "reload"}
