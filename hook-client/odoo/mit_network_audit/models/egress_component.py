from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from .view_backed import column

COMPONENT_CLASSES = [("vendor", "MIT-bound"), ("third_party", "Third party"),
                     ("local", "Local")]
#: The catalogue is keyed by name; Odoo needs an integer id: 60 bits of the
#: name's MD5, stable for as long as the name (which is why it cannot be
#: renamed: delete and create instead).
ID_SQL = "('x' || substr(md5(src.name), 1, 15))::bit(60)::int8"


def _list(text):
    parts = (text or "").replace("\n", ",").replace(" ", ",").split(",")
    return [p.strip() for p in parts if p.strip()]


class EgressComponent(models.Model):
    """The Egress Components catalogue: which destinations are MIT's own
    (``vendor``), providers you chose (``third_party``) or local. The
    collector classifies every call with it and journals each edit."""

    _name = "network.egress_component"
    _inherit = "network.audit.view_backed"
    _description = "Egress component"
    _order = "egress_class, name"
    _source_view = "network_egress_component"
    _table = "mit_network_audit_egress_component"
    _auto = False
    _log_access = False
    _source_columns = (
        column("id", "int8", ID_SQL), column("name", "text"), column("owner", "text"),
        column("purpose", "text"), column("egress_class", "text", "src.class"),
        column("hosts", "text", "array_to_string(src.hosts, ', ')"),
        column("cidrs", "text", "array_to_string(src.cidrs, ', ')"),
        column("ports", "text", "array_to_string(src.ports, ', ')"),
        column("updated_at", "timestamp", "src.updated_at AT TIME ZONE 'UTC'"),
    )

    name = fields.Char(required=True)
    owner = fields.Char()
    purpose = fields.Char()
    egress_class = fields.Selection(COMPONENT_CLASSES, "Class", required=True,
                                    default="third_party")
    hosts = fields.Char(help="Host names, comma-separated; '*.example.com' matches subdomains.")
    cidrs = fields.Char("Networks", help="Address ranges (CIDR), comma-separated.")
    ports = fields.Char(help="Ports, comma-separated; empty = any port.")
    updated_at = fields.Datetime("Updated", readonly=True)

    def _check_editable(self, operation):
        if not self._source_ready():
            raise UserError(_("The Egress Components catalogue is not there yet: run "
                              "`egress-collector setup` on this database first."))
        self.env["ir.model.access"].check(self._name, operation)

    @api.model
    def _row(self, vals, old=None):
        row = dict(old or {}, **vals)
        if not (row.get("name") or "").strip():
            raise ValidationError(_("A component needs a name."))
        ports = []
        for port in _list(row.get("ports")):
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValidationError(_("%s is not a port number.", port))
            ports.append(int(port))
        return [row["name"].strip(), row.get("owner") or "", row.get("purpose") or "",
                row.get("egress_class") or "third_party", _list(row.get("hosts")),
                _list(row.get("cidrs")), ports]

    @api.model_create_multi
    def create(self, vals_list):
        self._check_editable("create")
        names = []
        for vals in vals_list:
            row = self._row(vals)
            self.env.cr.execute(
                "INSERT INTO public.network_egress_component "
                "(name, owner, purpose, class, hosts, cidrs, ports) "
                "VALUES (%s, %s, %s, %s, %s::text[], %s::text[], %s::int4[])", row)
            names.append(row[0])
        self.env.invalidate_all()
        return self.search([("name", "in", names)])

    def write(self, vals):
        self._check_editable("write")
        if "name" in vals and any(rec.name != vals["name"] for rec in self):
            raise UserError(_("A component cannot be renamed: create a new one and delete "
                              "this one."))
        for rec in self:
            old = {f: rec[f] for f in ("name", "owner", "purpose", "egress_class", "hosts",
                                       "cidrs", "ports")}
            row = self._row(vals, old)
            self.env.cr.execute(
                "UPDATE public.network_egress_component SET owner = %s, purpose = %s, "
                "class = %s, hosts = %s::text[], cidrs = %s::text[], ports = %s::int4[], "
                "updated_at = now() WHERE name = %s", row[1:] + [row[0]])
        self.env.invalidate_all()
        return True

    def unlink(self):
        self._check_editable("unlink")
        self.env.cr.execute("DELETE FROM public.network_egress_component WHERE name = ANY(%s)",
                            [self.mapped("name")])
        self.env.invalidate_all()
        return True
