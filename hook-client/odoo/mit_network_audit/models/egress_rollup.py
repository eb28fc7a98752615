from odoo import fields, models

from .egress_log import CLASSES
from .view_backed import column


class EgressRollup(models.Model):
    """Sums of the journal per UTC day, addon, component, class, channel and
    host, kept by egress-collector: what the Trust Report reads."""

    _name = "network.egress_rollup"
    _inherit = "network.audit.view_backed"
    _description = "Network egress rollup"
    _order = "day desc, calls desc"
    _source_view = "network_egress_rollup"
    _table = "mit_network_audit_egress_rollup"
    _auto = False
    _log_access = False
    _refusal = "Rollups are kept by egress-collector: %(operation)s is refused."
    _source_columns = (
        column("id", "int8"), column("day", "date"), column("addon", "text"),
        column("component", "text"), column("egress_class", "text", "src.class"),
        column("channel", "text"), column("host", "text"), column("calls", "int8"),
        column("bytes_out", "int8"), column("bytes_in", "int8"), column("errors", "int8"),
        column("self_egress", "int8"),
        column("first_seen", "timestamp", "src.first_seen AT TIME ZONE 'UTC'"),
        column("last_seen", "timestamp", "src.last_seen AT TIME ZONE 'UTC'"),
    )

    day = fields.Date(readonly=True)
    addon = fields.Char(readonly=True)
    component = fields.Char(readonly=True)
    egress_class = fields.Selection(CLASSES, "Class", readonly=True)
    channel = fields.Char(readonly=True)
    host = fields.Char(readonly=True)
    calls = fields.Integer(readonly=True)
    bytes_out = fields.Integer("Bytes out", readonly=True)
    bytes_in = fields.Integer("Bytes in", readonly=True)
    errors = fields.Integer(readonly=True)
    self_egress = fields.Integer("Self-egress calls", readonly=True)
    first_seen = fields.Datetime("First seen", readonly=True)
    last_seen = fields.Datetime("Last seen", readonly=True)
