{
    "name": "egress-audit test caller",
    "summary": "Test fixture of mit_network_audit's tests: an addon that makes outbound "
               "calls, so they can be attributed to an addon other than the audit's own",
    "version": "1.0.0",
    "category": "Hidden",
    "license": "LGPL-3",
    "depends": ["base", "web"],
    "data": [],
    "installable": True,
}
