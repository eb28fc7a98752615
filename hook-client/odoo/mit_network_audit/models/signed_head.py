from odoo import fields, models


class SignedHead(models.Model):
    """Chain heads signed by egress-collector (HMAC and Ed25519): each says
    "at this instant, row N had this hash", which outlives any row deleted
    after it and so makes truncation detectable."""

    _name = "network.signed_head"
    _inherit = "network.audit.view_backed"
    _description = "Signed chain head"
    _order = "id desc"
    _rec_name = "seq"
    _source_view = "network_signed_head"
    _table = "mit_network_audit_signed_head"
    _auto = False
    _log_access = False
    _refusal = "Signed heads are append-only and written by egress-collector: %(operation)s is refused."
    _source_columns = (
        ("src.id", "int8", "id"), ("src.database", "text", "database"),
        ("src.seq", "int8", "seq"), ("encode(src.row_hash, 'hex')", "text", "row_hash"),
        ("src.signed_at AT TIME ZONE 'UTC'", "timestamp", "signed_at"),
        ("src.signed_at_us::text", "text", "signed_at_us"),
        ("encode(src.hmac, 'hex')", "text", "hmac"),
        ("encode(src.signature, 'hex')", "text", "signature"),
        ("encode(src.public_key, 'hex')", "text", "public_key"),
        ("src.collector", "text", "collector"),
    )

    database = fields.Char(readonly=True)
    seq = fields.Integer("Seq", readonly=True)
    row_hash = fields.Char("Row hash", readonly=True)
    signed_at = fields.Datetime("Signed at", readonly=True)
    signed_at_us = fields.Char("Signed at (µs)", readonly=True)
    hmac = fields.Char("HMAC", readonly=True)
    signature = fields.Char("Ed25519 signature", readonly=True)
    public_key = fields.Char("Public key", readonly=True)
    collector = fields.Char(readonly=True)
