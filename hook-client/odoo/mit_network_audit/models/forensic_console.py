import base64
from datetime import datetime, timezone

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from .. import glue
from ..lib import control

OFFICER = "mit_network_audit.group_forensic_officer"


class ForensicConsole(models.TransientModel):
    """The Forensic page: switch forensic body capture on or off and read a
    captured body, for Network Forensic Officers only (not implied by
    Manager or Administrator). Everything goes through egress-collector,
    which alone holds the keys and journals every switch and every read
    (with this Odoo user's id and name) before it releases a body."""

    _name = "network.forensic_console"
    _description = "Forensic Body Capture"

    host = fields.Char(help="Capture only calls to this host.")
    addon = fields.Char(help="Capture only calls attributed to this addon.")
    channel = fields.Char(help="Capture only calls on this channel (http, smtp, ...).")
    duration = fields.Char("For", default="2h",
                           help="How long: 90s, 30m, 2h, 7d (at most the collector's "
                                "forensic.max_duration). It switches itself off then.")
    status = fields.Text(readonly=True)
    seq = fields.Integer("Journal row", help="The call (journal row) whose body to read.")
    part = fields.Selection([("request", "Request"), ("response", "Response")],
                            default="request")
    body = fields.Binary(readonly=True, attachment=False)
    body_name = fields.Char(readonly=True)
    body_info = fields.Char(readonly=True)

    def _check_officer(self):
        if not self.env.user.has_group(OFFICER):
            raise AccessError(_("Only Network Forensic Officers may use forensic capture."))

    @api.model_create_multi
    def create(self, vals_list):
        self._check_officer()
        return super().create(vals_list)

    def _ask(self, cmd, **fields):
        self._check_officer()
        try:
            return control.forensic(glue.control_socket_path(), cmd, self.env.cr.dbname,
                                    self.env.user.id, self.env.user.login, **fields)
        except control.ControlError as error:
            raise UserError(_("egress-collector: %s", error)) from None

    def _describe(self, state):
        if not state:
            return _("Off (never enabled).")
        def when(us):
            return datetime.fromtimestamp((us or 0) / 1e6, timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC")
        if not state.get("active"):
            return _("Off since %(when)s (by %(by)s).", when=when(state.get("changed_at_us")),
                     by=state.get("changed_by"))
        scope = " ".join(f"{k}={state[k]}" for k in ("host", "addon", "channel") if state.get(k))
        return _("ON for %(scope)s until %(until)s (enabled by %(by)s).", scope=scope,
                 until=when(state.get("expires_at_us")), by=state.get("changed_by"))

    def _reopen(self):
        return {"type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id,
                "view_mode": "form", "target": "current"}

    def action_status(self):
        self.ensure_one()
        self.status = self._describe(self._ask("forensic_status").get("state"))
        return self._reopen()

    def action_enable(self):
        self.ensure_one()
        reply = self._ask("forensic_enable", host=self.host, addon=self.addon,
                          channel=self.channel, duration=self.duration or "")
        self.status = self._describe(reply.get("state"))
        return self._reopen()

    def action_disable(self):
        self.ensure_one()
        self.status = self._describe(self._ask("forensic_disable").get("state"))
        return self._reopen()

    def action_read(self):
        self.ensure_one()
        if not self.seq:
            raise UserError(_("Give the journal row (seq) of the call to read."))
        read = self._ask("forensic_read", seq=self.seq).get("read") or {}
        parts = {p.get("part"): p for p in read.get("parts", [])}
        chosen = parts.get(self.part or "request")
        if chosen is None:
            raise UserError(_("Row %(seq)s has no captured %(part)s body.", seq=self.seq,
                              part=self.part))
        data = bytes.fromhex(chosen.get("body_hex", ""))
        self.write({
            "body": base64.b64encode(data),
            "body_name": f"row-{self.seq}-{chosen['part']}.bin",
            "body_info": _("%(n)s of %(total)s bytes%(cut)s, SHA-256 of the whole %(sha)s; "
                           "this read is journal row %(entry)s.", n=chosen.get("captured_len"),
                           total=chosen.get("total_len"),
                           cut=_(" (truncated)") if chosen.get("truncated") else "",
                           sha=chosen.get("sha256"), entry=read.get("read_entry_seq")),
        })
        return self._reopen()
