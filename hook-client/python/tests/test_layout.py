"""A worker announces where Odoo's core, its addons and its libraries live
(``interceptor/_layout.py``), and the real collector attributes by that,
whatever the checkout's folder is called (docs/ATTRIBUTION.md §1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from egress_hook.interceptor import _layout

# A source checkout in a folder not named odoo*, with Odoo's own wrapper
# around the call (as odoo/tests/common.py wraps requests in tests), and an
# addon in a custom addons path.
FILES = {
    "src-18/odoo/__init__.py": "",
    "src-18/odoo/addons/__init__.py": "",
    "src-18/odoo/tests/__init__.py": "",
    "src-18/odoo/tests/common.py": "def wrapped(fn, *args):\n    return fn(*args)\n",
    "src-18/odoo/tools/__init__.py": "",
    "src-18/odoo/tools/config.py": "config = {'addons_path': ''}\n",
    "custom/egress_demo/__init__.py": "",
    "custom/egress_demo/models/__init__.py": "",
    "custom/egress_demo/models/caller.py": textwrap.dedent("""\
        import requests
        from odoo.tests.common import wrapped

        def fetch(url):
            return wrapped(requests.get, url).status_code
        """),
}

WORKER = textwrap.dedent("""\
    import sys
    from egress_hook import interceptor
    import odoo, odoo.addons, odoo.tools.config
    root, socket, db, name, url = sys.argv[1:]
    odoo.tools.config.config["addons_path"] = f"{root}/src-18/odoo/addons,{root}/custom"
    odoo.addons.__path__.append(f"{root}/custom")
    from odoo.addons.egress_demo.models import caller
    assert interceptor.install(socket, db, transport=sys.argv[0] and "{transport}")
    with interceptor.context(db, "test", name):
        assert caller.fetch(url) == 200
    interceptor.uninstall()
    """)


@pytest.fixture
def checkout(tmp_path):
    for path, text in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


@pytest.mark.parametrize("transport", ["native", "python"])
def test_a_checkout_in_any_folder_is_attributed_by_what_the_worker_announced(
        transport, checkout, journal, http_srv):
    name = f"layout-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(checkout / "src-18")] + [p for p in sys.path if p]))
    subprocess.run([sys.executable, "-c", WORKER.replace("{transport}", transport),
                    str(checkout), journal.socket, journal.name, name,
                    f"http://127.0.0.1:{http_srv.port}/layout"],
                   check=True, env=env, timeout=60)
    rows = journal.wait_rows(f"kind = 'call' AND trigger_name = '{name}'", 1)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["addon"] == "egress_demo"
    assert row["addon_path"] == ["egress_demo"]
    labels = {line.split(" ", 1)[1].rsplit(":", 2)[0]: line.split(" ", 1)[0]
              for line in row["stack"]}
    assert labels[f"{checkout}/src-18/odoo/tests/common.py"] == "[odoo]", row["stack"]
    assert labels[f"{checkout}/custom/egress_demo/models/caller.py"] == "[egress_demo]"


def test_announces_core_addons_libraries_and_the_standard_library(checkout, monkeypatch):
    monkeypatch.syspath_prepend(str(checkout / "src-18"))
    for module in [m for m in sys.modules if m == "odoo" or m.startswith("odoo.")]:
        monkeypatch.delitem(sys.modules, module)
    import odoo.addons
    import odoo.tools.config

    monkeypatch.setitem(odoo.tools.config.config, "addons_path",
                        f"{checkout}/src-18/odoo/addons, {checkout}/custom")
    entries = _layout.announced([f"{checkout}/given"])
    assert entries[0] == f"{checkout}/given"
    assert f"{checkout}/src-18/odoo/addons" in entries
    assert f"{checkout}/custom" in entries
    assert f"odoo:{checkout}/src-18/odoo" in entries
    assert any(e.startswith("stdlib:") and os.path.exists(e[7:] + "/smtplib.py")
               for e in entries)
    import requests
    lib = os.path.dirname(os.path.dirname(requests.__file__))
    assert f"lib:{lib}" in entries or f"lib:{os.path.realpath(lib)}" in entries
    assert len(entries) == len(set(entries))
