from . import dispatch
from . import models
from . import wizard
from .glue import setup


def post_load():
    """Odoo calls this when it imports the addon: at startup in the master
    for a server-wide module (`server_wide_modules`, before the workers
    fork, so every worker is covered), else when a database's registry loads
    it (an Apps install; a model's `_register_hook` calls setup too)."""
    from odoo.tools import config

    setup("server_wide" if "mit_network_audit" in config["server_wide_modules"] else "registry")
