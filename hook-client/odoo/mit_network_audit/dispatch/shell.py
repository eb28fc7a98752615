"""``odoo-bin shell``: what is typed (or piped) into its console runs with
the trigger ``shell``. The command is plain Python (no model method to
inherit), so its console is wrapped once, when the audit is set up in that
process."""

import sys

from .. import glue

_WRAPPED = "_mit_network_audit_wrapped"
NAME = "odoo-bin shell"


def wrap_shell():
    """Wraps ``odoo.cli.shell.Shell.console`` when this process runs the
    shell command; idempotent. Returns whether it is wrapped."""
    module = sys.modules.get("odoo.cli.shell")
    shell = getattr(module, "Shell", None)
    original = getattr(shell, "console", None)
    if original is None:
        return False
    if getattr(original, _WRAPPED, False):
        return True

    def console(self, local_vars):
        env = local_vars.get("env")
        token = glue.enter(env, "shell", NAME) if env is not None else None
        try:
            return original(self, local_vars)
        finally:
            glue.leave(token)

    setattr(console, _WRAPPED, True)
    shell.console = console
    return True
