"""Where this worker's code lives, as its ``Hello`` announces it: the
collector attributes a stack frame by the innermost of these directories
that holds its file (docs/ATTRIBUTION.md §1, docs/WIRE_FORMAT.md ``Hello``).

Read from the modules already imported, never by importing Odoo: a plain
path is an addons path (``odoo.addons.__path__`` and the configured
``addons_path``), ``odoo:<path>`` is Odoo's core package (``odoo.__path__``),
``lib:<path>`` a directory of third-party packages (site-packages) and
``stdlib:<path>`` the standard library."""

import os
import site
import sys
import sysconfig


def _paths(values):
    for value in values or ():
        value = str(value).strip()
        if value and os.path.isabs(value):
            yield os.path.normpath(value)


def announced(addons_paths=()):
    """The entries of the next ``Hello``: ``addons_paths`` given by the glue
    first, then what the imported ``odoo`` says, then Python's own
    directories. Duplicates are left out, order is kept."""
    entries = list(_paths(addons_paths))
    odoo = sys.modules.get("odoo")
    addons = sys.modules.get("odoo.addons")
    entries += _paths(getattr(addons, "__path__", ()))
    tools_config = sys.modules.get("odoo.tools.config")
    config = getattr(tools_config, "config", None)
    try:
        configured = config["addons_path"] if config is not None else ""
    except Exception:
        configured = ""
    if isinstance(configured, str):
        configured = configured.split(",")
    entries += _paths(configured)
    entries += ("odoo:" + p for p in _paths(getattr(odoo, "__path__", ())))
    paths = sysconfig.get_paths()
    entries += ("stdlib:" + p for p in _paths([paths.get("stdlib"), paths.get("platstdlib")]))
    libs = [paths.get("purelib"), paths.get("platlib")]
    try:
        libs += site.getsitepackages()
        libs.append(site.getusersitepackages())
    except Exception:  # a virtualenv's old site module lacks them
        pass
    libs += (p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    entries += ("lib:" + p for p in _paths(libs))
    # The same directory reached through a symlink is announced both ways:
    # a frame's file is the path it was imported by.
    seen = set()
    result = []
    for entry in entries:
        kind, _, path = ("", "", entry) if entry.startswith("/") else entry.partition(":")
        for variant in (path, os.path.realpath(path)):
            item = f"{kind}:{variant}" if kind else variant
            if item not in seen:
                seen.add(item)
                result.append(item)
    return result
