{
    "name": "Network Audit",
    "summary": "Proves what this Odoo talks to: every outbound call, attributed to its "
               "addon, in a signed, tamper-evident journal kept by egress-collector",
    "description": """
Captures the metadata of every outbound network call (HTTP, SMTP, IMAP, POP3,
raw sockets, DNS) made by this Odoo, attributes it to the addon that caused it,
and shows it in the Trust Report. The journal itself is kept, hash-chained and
signed, by the egress-collector service outside Odoo; this addon reads it and
can never change it. It makes no network call of its own.
""",
    "version": "1.0.0",
    "category": "Administration",
    "author": "egress-audit developers",
    "license": "LGPL-3",
    "depends": ["base", "web"],
    # The interceptor and its sender: `pip install ./hook-client/python`.
    "external_dependencies": {"python": ["egress_hook"]},
    "data": [
        "security/groups.xml",
        "security/ir.model.access.csv",
        "data/list_views.xml",
        "views/egress_log_views.xml",
        "views/egress_rollup_views.xml",
        "views/signed_head_views.xml",
        "views/egress_component_views.xml",
        "views/res_config_settings_views.xml",
        "wizard/export_wizard_views.xml",
        "views/trust_report_action.xml",
        "views/forensic_console_views.xml",
        "views/menus.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "mit_network_audit/static/src/trust_report/*",
        ],
    },
    # Server-wide (`--load=base,web,mit_network_audit`): installed in the
    # master before the workers fork. From Apps: a model's _register_hook.
    "post_load": "post_load",
    # Group members survive an uninstall; the collector stops applying the
    # settings (README: Uninstalling).
    "post_init_hook": "post_init_hook",
    "uninstall_hook": "uninstall_hook",
    "application": True,
    "installable": True,
}
