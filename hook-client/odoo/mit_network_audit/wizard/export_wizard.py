from datetime import datetime

from odoo import _, fields, models
from odoo.exceptions import UserError

from .. import glue
from ..lib import control
from ..models.view_backed import source_ready


class ExportWizard(models.TransientModel):
    """Export Signed Audit: the journal rows of a period, with the signed
    heads they cover, signed by the collector (docs/EXPORT_FORMAT.md), for
    anyone to check with `egress-verify` or `verify_export.py`, no software
    of ours needed."""

    _name = "network.egress_export"
    _description = "Export Signed Audit"

    date_from = fields.Datetime("From", help="Empty: from the first row kept.")
    date_to = fields.Datetime("To", help="Empty: to the end of the journal (the export then "
                                         "also proves nothing after it was cut off).")
    filename = fields.Char(readonly=True)
    rows = fields.Integer("Rows exported", readonly=True)

    def _seq_range(self):
        """The seqs of the rows recorded in the period: (first, last or None
        for "to the end")."""
        cr = self.env.cr
        conditions, params = ["true"], []
        if self.date_from:
            conditions.append("recorded_at >= %s::timestamp AT TIME ZONE 'UTC'")
            params.append(self.date_from)
        if self.date_to:
            conditions.append("recorded_at <= %s::timestamp AT TIME ZONE 'UTC'")
            params.append(self.date_to)
        cr.execute("SELECT min(seq), max(seq), count(*) FROM public.network_egress_log WHERE "
                   + " AND ".join(conditions), params)
        first, last, count = cr.fetchone()
        if not count:
            raise UserError(_("No journal row was recorded in this period."))
        return first, (last if self.date_to else None), count

    def action_export(self):
        self.ensure_one()
        if not self.env.user.has_group("mit_network_audit.group_user"):
            raise UserError(_("Only Network Audit Users may export the audit."))
        if not source_ready(self.env.cr, "network_egress_log"):
            raise UserError(_("There is no journal: run egress-collector setup on this "
                              "database first."))
        first, last, count = self._seq_range()
        try:
            data = control.export(glue.control_socket_path(), self.env.cr.dbname, first, last)
        except control.ControlError as error:
            raise UserError(_("The signed export needs egress-collector (only it holds the "
                              "signing keys): %s", error)) from None
        stamp = datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
        name = f"egress-audit-{self.env.cr.dbname}-{stamp}.json"
        self.write({"filename": name, "rows": count})
        attachment = self.env["ir.attachment"].create({
            "name": name, "raw": data, "mimetype": "application/json",
            "res_model": self._name, "res_id": self.id,
        })
        return {"type": "ir.actions.act_url", "target": "self",
                "url": f"/web/content/{attachment.id}?download=true"}
