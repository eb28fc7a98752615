"""List views, made at install and update: their root tag is ``<tree>`` on
Odoo 17 and ``<list>`` on 18 and 19, and a data file cannot choose."""

from odoo import api, models, release

LIST_VIEWS = {
    # At 1440 px the attribution columns (Addon, Component, Trigger) keep
    # their widths; the long path and the rarely read columns are optional.
    # Numbers that are identifiers (seq, port) show no thousands separator.
    "view_egress_log_list": ("network.egress_log", """
        <LIST create="false" edit="false" delete="false" decoration-danger="self_egress"
              decoration-warning="kind == 'gap'" decoration-muted="kind in ('config_change', 'vacuum')">
            <field name="seq" options="{'enable_formatting': false}" width="60px"/>
            <field name="recorded_at" width="140px"/>
            <field name="kind" optional="hide"/>
            <field name="addon" width="160px"/>
            <field name="trigger_kind" string="Trigger" width="90px"/>
            <field name="trigger_name" width="170px" optional="show"/>
            <field name="channel" width="55px"/>
            <field name="method" optional="hide"/>
            <field name="host" width="110px"/>
            <field name="port" options="{'enable_formatting': false}" width="55px" optional="show"/>
            <field name="path" optional="hide"/>
            <field name="status" options="{'enable_formatting': false}" width="55px" optional="hide"/>
            <field name="bytes_out" sum="Bytes out" width="70px"/>
            <field name="bytes_in" sum="Bytes in" width="70px"/>
            <field name="component" width="160px" optional="show"/>
            <field name="egress_class" width="90px"/>
            <field name="gap_count" optional="hide" sum="Events lost"/>
            <field name="gap_reason" optional="hide"/>
            <field name="self_egress" optional="hide"/>
        </LIST>"""),
    "view_egress_rollup_list": ("network.egress_rollup", """
        <LIST create="false" edit="false" delete="false" decoration-danger="self_egress &gt; 0">
            <field name="day"/>
            <field name="addon"/>
            <field name="component"/>
            <field name="egress_class"/>
            <field name="channel"/>
            <field name="host"/>
            <field name="calls" sum="Calls"/>
            <field name="bytes_out" sum="Bytes out"/>
            <field name="bytes_in" sum="Bytes in"/>
            <field name="errors" sum="Errors"/>
            <field name="self_egress" sum="Self-egress"/>
            <field name="last_seen"/>
        </LIST>"""),
    "view_signed_head_list": ("network.signed_head", """
        <LIST create="false" edit="false" delete="false">
            <field name="seq"/>
            <field name="signed_at"/>
            <field name="row_hash"/>
            <field name="collector"/>
            <field name="public_key" optional="hide"/>
        </LIST>"""),
    "view_egress_component_list": ("network.egress_component", """
        <LIST>
            <field name="name"/>
            <field name="egress_class"/>
            <field name="owner"/>
            <field name="hosts"/>
            <field name="cidrs" optional="hide"/>
            <field name="ports" optional="hide"/>
            <field name="purpose" optional="show"/>
        </LIST>"""),
}


class IrUiView(models.Model):
    _inherit = "ir.ui.view"

    @api.model
    def _mit_network_audit_list_views(self):
        tag = "tree" if release.version_info[0] < 18 else "list"
        module = "mit_network_audit"
        self._load_records([
            {"xml_id": f"{module}.{xml_id}", "noupdate": False, "values": {
                "name": f"{model}.list", "model": model, "type": tag,
                "arch": arch.replace("LIST", tag)}}
            for xml_id, (model, arch) in LIST_VIEWS.items()
        ], update=True)
