from datetime import datetime

from odoo import _, fields, models
from odoo.exceptions import UserError

from .. import glue
from ..lib import control
from ..models.view_backed import source_ready

#: System parameter: the most rows the wizard exports. The export passes
#: through the Odoo worker whole (reply, attachment, download), at about
#: 1.6 kB of JSON a row; past this a worker's memory and time limits
#: (limit_memory_hard, limit_time_real) would end it half-way, so the wizard
#: says how to export from the collector's host instead.
KEY_EXPORT_MAX_ROWS = "mit_network_audit.export_max_rows"
DEFAULT_EXPORT_MAX_ROWS = 100_000


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

    def _export_max_rows(self):
        value = self.env["ir.config_parameter"].sudo().get_param(KEY_EXPORT_MAX_ROWS)
        try:
            return max(1, int(value)) if value else DEFAULT_EXPORT_MAX_ROWS
        except ValueError:
            return DEFAULT_EXPORT_MAX_ROWS

    def _check_size(self, first, last, count):
        limit = self._export_max_rows()
        if count <= limit:
            return
        to = f" --to {last}" if last is not None else ""
        raise UserError(_(
            "This period holds %(count)s journal rows, more than the %(limit)s an export "
            "from Odoo may hold (system parameter %(key)s): the whole file would pass "
            "through this Odoo worker's memory. Choose a shorter period, or export it on "
            "the collector's host, where it is streamed to a file:\n\n"
            "egress-collector export --db %(db)s --from %(first)s%(to)s -o audit.json",
            count=count, limit=limit, key=KEY_EXPORT_MAX_ROWS, db=self.env.cr.dbname,
            first=first, to=to))

    def action_export(self):
        self.ensure_one()
        if not self.env.user.has_group("mit_network_audit.group_user"):
            raise UserError(_("Only Network Audit Users may export the audit."))
        if not source_ready(self.env.cr, "network_egress_log"):
            raise UserError(_("There is no journal: run egress-collector setup on this "
                              "database first."))
        first, last, count = self._seq_range()
        self._check_size(first, last, count)
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
