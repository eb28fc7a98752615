import json
import logging

from . import dispatch
from . import models
from . import wizard
from . import glue
from .glue import setup

_logger = logging.getLogger(__name__)

#: The addon's groups whose members are kept across an uninstall and a
#: reinstall (Odoo deletes a module's groups, and their memberships, with it).
GROUPS = ("group_user", "group_manager", "group_forensic_officer")
#: Where the members wait meanwhile: a parameter created by code has no
#: external id of this addon, so Odoo does not delete it on uninstall.
KEY_MEMBERS = "mit_network_audit.group_members"


def post_load():
    """Odoo calls this when it imports the addon: at startup in the master
    for a server-wide module (`server_wide_modules`, before the workers
    fork, so every worker is covered), else when a database's registry loads
    it (an Apps install; a model's `_register_hook` calls setup too)."""
    from odoo.tools import config

    setup("server_wide" if "mit_network_audit" in config["server_wide_modules"] else "registry")


def _members_field(group):
    return "users" if "users" in group._fields else "user_ids"  # 17, 18 / 19


def uninstall_hook(env):
    """Before Odoo removes the addon: the collector stops applying its
    settings (each one it holds is handed over as unset, so the collector's
    defaults apply, and journaled with the user who uninstalled), and the
    groups' members are kept for a reinstall. Capture stops in every worker
    as it loads the registry without the addon (``glue.registry_loaded``)."""
    members = {}
    for name in GROUPS:
        group = env.ref(f"mit_network_audit.{name}", raise_if_not_found=False)
        if group:
            members[name] = group.sudo()[_members_field(group)].ids
    env["ir.config_parameter"].sudo().set_param(KEY_MEMBERS, json.dumps(members))
    params = env["ir.config_parameter"].sudo()
    for key in glue.SETTING_KEYS:
        value = params.get_param(key) or None
        if value is not None:
            glue.hand_over(env, key, None)
            glue.setting_changed(env, key, value, None)


def post_init_hook(env):
    """After an install: the members the groups had before the last
    uninstall are members again; what Odoo's table holds is handed over."""
    params = env["ir.config_parameter"].sudo()
    saved = params.get_param(KEY_MEMBERS)
    if saved:
        try:
            members = json.loads(saved)
        except ValueError:
            members = {}
        for name, user_ids in members.items():
            group = env.ref(f"mit_network_audit.{name}", raise_if_not_found=False)
            if group and name in GROUPS:
                users = env["res.users"].sudo().browse(user_ids).exists()
                group.sudo().write({_members_field(group): [(4, uid) for uid in users.ids]})
        params.search([("key", "=", KEY_MEMBERS)]).unlink()
    glue.hand_over_all(env)
