# Run by tests/odoo/run.sh through `odoo-bin shell` (``env`` is the shell's):
# a real uninstall of mit_network_audit from Apps, then a reinstall, in one
# Odoo process. Prints "UNINSTALL CHECK PASSED" or raises.
import json

import odoo
from odoo.addons.mit_network_audit import glue

KEYS = glue.SETTING_KEYS


def held(cr):
    cr.execute("""SELECT DISTINCT ON (key) key, value FROM public.network_egress_setting
                  WHERE key = ANY(%s) ORDER BY key, id DESC""", [list(KEYS)])
    return dict(cr.fetchall())


dbname = env.cr.dbname  # noqa: F821 (the shell's)
assert glue.installed(), "the interceptor is installed before the uninstall"
manager = env["res.users"].create({  # noqa: F821
    "name": "Uninstall check", "login": "egress_uninstall_check",
    "groups_id" if "groups_id" in env["res.users"]._fields else "group_ids": [  # noqa: F821
        (4, env.ref("base.group_user").id),  # noqa: F821
        (4, env.ref("mit_network_audit.group_manager").id)],  # noqa: F821
})
env["ir.config_parameter"].set_param(glue.KEY_STRICT, "True")  # noqa: F821
env.cr.commit()  # noqa: F821
assert held(env.cr).get(glue.KEY_STRICT) == "True"  # noqa: F821

module = env["ir.module.module"].search([("name", "=", "mit_network_audit")])  # noqa: F821
module.button_immediate_uninstall()

# This process loaded the registry without the addon: capture stopped here
# without a restart, as it does in every worker at its next request.
assert not glue.installed(), "capture still on after the uninstall"
registry = odoo.modules.registry.Registry(dbname)
with registry.cursor() as cr:
    env2 = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    assert "network.egress_log" not in env2.registry
    # The collector no longer holds the addon's settings.
    assert held(cr).get(glue.KEY_STRICT, "unset") is None, held(cr)
    saved = json.loads(env2["ir.config_parameter"].get_param(
        "mit_network_audit.group_members"))
    assert manager.id in saved["group_manager"], saved
    env2["ir.module.module"].search(
        [("name", "=", "mit_network_audit")]).button_immediate_install()

assert glue.installed(), "capture back on after the reinstall"
registry = odoo.modules.registry.Registry(dbname)
with registry.cursor() as cr:
    env3 = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
    user = env3["res.users"].browse(manager.id)
    assert user.has_group("mit_network_audit.group_manager"), "membership lost"
    # Odoo's table kept the setting: handed over again.
    assert held(cr).get(glue.KEY_STRICT) == "True", held(cr)
    env3["ir.config_parameter"].set_param(glue.KEY_STRICT, "False")
    user.unlink()
    cr.commit()
print("UNINSTALL CHECK PASSED")
