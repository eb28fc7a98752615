{
    "name": "egress-audit benchmark routes",
    "summary": "Benchmark fixture of scripts/bench-odoo.sh: one route that makes no outbound "
               "call and one that makes exactly one. Never install it in production.",
    "version": "1.0.0",
    "category": "Hidden",
    "license": "LGPL-3",
    "depends": ["base", "web"],
    "data": [],
    "installable": True,
}
