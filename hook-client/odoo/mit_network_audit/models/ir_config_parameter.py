from odoo import api, models, tools
from odoo.exceptions import ValidationError

from .. import glue


class IrConfigParameter(models.Model):
    """Every change of an audit setting is handed to the collector through
    the egress inbox (in the same transaction) and journaled with who made
    it: the collector never reads this table, and only Odoo knows the user.
    ``mit_network_audit.signed_head`` is shown from the egress view of
    signed heads: the collector no longer writes this table."""

    _inherit = "ir.config_parameter"

    def _audit_values(self):
        return {p.key: p.value for p in self.sudo() if p.key in glue.SETTING_KEYS}

    @api.model
    @tools.ormcache()
    def _network_audit_settings(self):
        """``(enabled, strict, retention_days, disabled_channels)`` with the
        FAQ's defaults: one cache entry, cleared with the parameters' own
        cache in every worker when any parameter changes."""
        get = self.sudo().get_param
        return (glue.effective(glue.KEY_ENABLED, get(glue.KEY_ENABLED)),
                glue.effective(glue.KEY_STRICT, get(glue.KEY_STRICT)),
                glue.effective(glue.KEY_RETENTION, get(glue.KEY_RETENTION)),
                glue.effective(glue.KEY_DISABLED_CHANNELS, get(glue.KEY_DISABLED_CHANNELS)))

    @api.model
    def _check_audit_value(self, key, value):
        if key == glue.KEY_DISABLED_CHANNELS:
            message = glue.channels_error(value or "")
        elif key == glue.KEY_RETENTION:
            message = glue.retention_error(value if value not in (None, False, "") else 0)
        else:
            message = None
        if message:
            raise ValidationError(message)

    @api.model
    def get_param(self, key, default=False):
        if key == glue.KEY_SIGNED_HEAD:
            return glue.signed_head_json(self.env.cr) or default
        return super().get_param(key, default)

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        created = records._audit_values()
        if created:
            glue.setting_written()
        for key, value in created.items():
            self._check_audit_value(key, value)
            if glue.effective(key, None) != glue.effective(key, value):
                glue.hand_over(self.env, key, value)
            glue.setting_changed(self.env, key, None, value)
        return records

    def write(self, vals):
        before = self._audit_values()
        result = super().write(vals)
        after = self._audit_values()
        if before or after:
            glue.setting_written()
        for key in set(before) | set(after):
            self._check_audit_value(key, after.get(key))
            if glue.effective(key, before.get(key)) != glue.effective(key, after.get(key)):
                glue.hand_over(self.env, key, after.get(key))
            glue.setting_changed(self.env, key, before.get(key), after.get(key))
        return result

    def unlink(self):
        removed = self._audit_values()
        for key, value in removed.items():
            glue.setting_changed(self.env, key, value, None)
        result = super().unlink()
        if removed:
            glue.setting_written()
        for key in removed:
            glue.hand_over(self.env, key, None)
        return result

    def _register_hook(self):
        # Once per registry load: what the collector holds follows this
        # table (an upgrade from a version where it read this table itself).
        glue.hand_over_all(self.env)
        return super()._register_hook()
