from odoo import api, models

from .. import glue


class IrConfigParameter(models.Model):
    """Every change of an audit setting is journaled with who made it: the
    collector sees the new value in the database too, but only Odoo knows
    the user."""

    _inherit = "ir.config_parameter"

    def _audit_values(self):
        return {p.key: p.value for p in self.sudo() if p.key in glue.SETTING_KEYS}

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        for key, value in records._audit_values().items():
            glue.setting_changed(self.env, key, None, value)
        return records

    def write(self, vals):
        before = self._audit_values()
        result = super().write(vals)
        after = self._audit_values()
        for key in set(before) | set(after):
            glue.setting_changed(self.env, key, before.get(key), after.get(key))
        return result

    def unlink(self):
        for key, value in self._audit_values().items():
            glue.setting_changed(self.env, key, value, None)
        return super().unlink()
