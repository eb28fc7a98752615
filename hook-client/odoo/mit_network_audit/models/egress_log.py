from odoo import fields, models

from .. import glue
from ..dispatch import queue_job
from .view_backed import column

CLASSES = [("vendor", "MIT-bound"), ("third_party", "Third party"), ("local", "Local"),
           ("unknown", "Unknown")]
KINDS = [("call", "Call"), ("gap", "Gap"), ("duplicate", "Duplicate"), ("config_change", "Settings change"),
         ("vacuum", "Retention vacuum")]


class EgressLog(models.Model):
    """The journal, as Odoo's role sees it through ``public.network_egress_log``:
    one row per outbound call, gap, settings change or vacuum, hash-chained."""

    _name = "network.egress_log"
    _inherit = "network.audit.view_backed"
    _description = "Network egress log"
    _order = "seq desc"
    _rec_name = "seq"
    _source_view = "network_egress_log"
    _table = "mit_network_audit_egress_log"
    _auto = False
    _log_access = False
    _refusal = ("The network egress log is append-only: %(operation)s is refused, for every "
                "user including the superuser. Rows are written by egress-collector only, "
                "and only its retention vacuum removes old ones.")
    _source_columns = (
        column("id", "int8"), column("seq", "int8"), column("kind", "text"),
        column("recorded_at", "timestamp", "src.recorded_at AT TIME ZONE 'UTC'"),
        column("day", "date", "(src.recorded_at AT TIME ZONE 'UTC')::date"),
        column("collector", "text"), column("worker_id", "text", "src.worker_id::text"),
        column("worker_pid", "int8"), column("worker_uid", "int8"), column("worker_seq", "int8"),
        column("started_at", "timestamp", "src.started_at AT TIME ZONE 'UTC'"),
        column("duration_ms", "float8", "src.duration_us / 1000.0"),
        column("channel", "text"), column("protocol", "text"), column("direction", "text"),
        column("method", "text"), column("host", "text"), column("port", "int8"), column("path", "text"),
        column("query_keys", "text", "array_to_string(src.query_keys, ', ')"),
        column("header_names", "text", "array_to_string(src.header_names, ', ')"),
        column("src_ip", "text"), column("src_port", "int8"), column("dst_ip", "text"),
        column("dst_port", "int8"), column("tls", "bool"), column("status", "int8"),
        column("error_class", "text"), column("bytes_out", "int8"), column("bytes_in", "int8"),
        column("fingerprint", "text", "encode(src.fingerprint, 'hex')"),
        column("addon", "text"),
        column("addon_path", "text", "array_to_string(src.addon_path, ' > ')"),
        column("stack", "text", "array_to_string(src.stack, chr(10))"),
        column("trigger_kind", "text"), column("trigger_name", "text"), column("odoo_uid", "int8"),
        column("component", "text"), column("egress_class", "text", "src.class"),
        column("self_egress", "bool"), column("gap_count", "int8"), column("gap_reason", "text"),
        column("detail", "text"),
        column("prev_hash", "text", "encode(src.prev_hash, 'hex')"),
        column("row_hash", "text", "encode(src.row_hash, 'hex')"),
    )

    seq = fields.Integer("Seq", readonly=True, help="Position in this database's chain.")
    kind = fields.Selection(KINDS, readonly=True)
    recorded_at = fields.Datetime("Recorded at", readonly=True,
                                  help="When egress-collector appended the row.")
    day = fields.Date(readonly=True)
    collector = fields.Char(readonly=True, help="Host name of the collector that wrote it.")
    worker_id = fields.Char("Worker", readonly=True)
    worker_pid = fields.Integer("Worker PID", readonly=True)
    worker_uid = fields.Integer("Worker OS uid", readonly=True)
    worker_seq = fields.Integer("Worker seq", readonly=True)
    started_at = fields.Datetime("Started at", readonly=True)
    duration_ms = fields.Float("Duration (ms)", readonly=True, digits=(16, 3))
    channel = fields.Char(readonly=True)
    protocol = fields.Char(readonly=True)
    direction = fields.Char(readonly=True)
    method = fields.Char(readonly=True)
    host = fields.Char(readonly=True)
    port = fields.Integer(readonly=True)
    path = fields.Char(readonly=True)
    query_keys = fields.Char("Query keys", readonly=True, help="Names only, never values.")
    header_names = fields.Char("Header names", readonly=True, help="Names only, never values.")
    src_ip = fields.Char("Source IP", readonly=True)
    src_port = fields.Integer("Source port", readonly=True)
    dst_ip = fields.Char("Destination IP", readonly=True)
    dst_port = fields.Integer("Destination port", readonly=True)
    tls = fields.Boolean("TLS", readonly=True)
    status = fields.Integer(readonly=True)
    error_class = fields.Char("Error", readonly=True)
    bytes_out = fields.Integer("Bytes out", readonly=True)
    bytes_in = fields.Integer("Bytes in", readonly=True)
    fingerprint = fields.Char(readonly=True,
                              help="Salted HMAC of the payload's digest: equal fingerprints "
                                   "mean equal payloads; the payload itself is never stored.")
    addon = fields.Char("Addon", readonly=True, help="The addon the call is attributed to.")
    addon_path = fields.Char("Addons on the stack", readonly=True)
    stack = fields.Text(readonly=True)
    trigger_kind = fields.Char("Trigger", readonly=True)
    trigger_name = fields.Char("Trigger name", readonly=True,
                               help="The HTTP route, cron job or queue job that made the call.")
    odoo_uid = fields.Integer("Odoo user id", readonly=True)
    component = fields.Char(readonly=True, help="The Egress Components entry of the destination.")
    egress_class = fields.Selection(CLASSES, "Class", readonly=True)
    self_egress = fields.Boolean("Self-egress", readonly=True,
                                 help="Made by the audit addon itself: an alarm.")
    gap_count = fields.Integer("Events lost", readonly=True)
    gap_reason = fields.Char("Gap reason", readonly=True)
    detail = fields.Text(readonly=True)
    prev_hash = fields.Char("Previous hash", readonly=True)
    row_hash = fields.Char("Row hash", readonly=True)

    def _register_hook(self):
        # Apps install (no server-wide module): install the interceptor when
        # this database's registry loads; a no-op when post_load did it.
        glue.setup("registry")
        queue_job.wrap_queue_job()
        return super()._register_hook()
