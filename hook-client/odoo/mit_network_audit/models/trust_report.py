import os

from odoo import _, api, models
from odoo.exceptions import AccessError

from .. import glue
from ..lib import chain, report
from .view_backed import source_ready

#: Rows per Verify step: a few MB of memory whatever the journal's size.
VERIFY_BATCH = 20_000
HEAD_DOMAIN = b"egress-audit signed head"

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # the heads' Ed25519 signatures are then not checked (said so)
    Ed25519PublicKey = None


class TrustReport(models.AbstractModel):
    """What the Trust Report client action asks the server: the report
    document (from the rollup views), what is missing for the audit to work,
    and the chain check, in steps."""

    _name = "network.trust_report"
    _description = "Network Audit Trust Report"

    def _require_user(self):
        if not self.env.user.has_group("mit_network_audit.group_user"):
            raise AccessError(_("Only Network Audit Users may read the Trust Report."))

    @api.model
    def get_report(self, since="7d"):
        """``{"report": the document of docs/REPORT_FORMAT.md or None,
        "status": what works and what to fix}``."""
        self._require_user()
        status = self._status()
        doc = settings = None
        if status["setup_done"]:
            doc = report.read(self.env.cr, self.env.cr.dbname, since)
            addons, more = self._bytes_per_addon(doc["period"]["since_us"] // report.DAY_US)
            settings = report.read_settings_in_force(self.env.cr, doc["period"]["since_us"])
        return {"report": doc, "status": status, "addons": addons if doc else [],
                "addons_more": more if doc else 0, "settings": settings}

    @api.model
    def _bytes_per_addon(self, first_day, limit=15):
        """The byte bars: the busiest addons of the period over every class
        (local included), from the rollups; and how many more addons there
        are beyond ``limit``."""
        self.env.cr.execute("""
            SELECT addon, sum(calls)::int8, sum(bytes_out)::int8, sum(bytes_in)::int8,
                   count(*) OVER ()
            FROM public.network_egress_rollup
            WHERE day >= DATE '1970-01-01' + %s::int4
            GROUP BY addon ORDER BY sum(bytes_out) + sum(bytes_in) DESC, addon LIMIT %s""",
            [first_day, limit])
        rows = self.env.cr.fetchall()
        bars = [{"addon": a, "calls": c, "bytes_out": o, "bytes_in": i}
                for a, c, o, i, _ in rows]
        return bars, (rows[0][4] - len(rows)) if rows else 0

    @api.model
    def _status(self):
        cr = self.env.cr
        setup_done = all(source_ready(cr, view) for view in report.VIEWS + ("network_egress_log",))
        stats = {}
        if glue.installed():
            try:
                stats = glue.interceptor.stats()
            except Exception:
                stats = {}
        socket = glue.socket_path() or "/run/egress-collector/ingest.sock"
        problems = []
        if glue.interceptor is None:
            problems.append(_("The Python package egress_hook is not installed in Odoo's "
                              "Python: nothing is captured. Install it (pip install "
                              "egress-hook) and restart Odoo."))
        elif not glue.installed():
            problems.append(_("The interceptor is not installed in this Odoo process (%s). "
                              "Restart Odoo; see its log.", glue.state.get("error") or "?"))
        if not setup_done:
            problems.append(_("egress-collector setup has not been run on database %s: there "
                              "is no journal to read. Run, as a PostgreSQL superuser: "
                              "egress-collector setup --database-url \"dbname=%s\" "
                              "--odoo-role <Odoo's role>", cr.dbname, cr.dbname))
        if not os.path.exists(socket):
            problems.append(_("No collector is listening at %s on this host: calls are "
                              "counted as lost until egress-collector runs. Start it "
                              "(egress-collector run).", socket))
        return {
            "setup_done": setup_done,
            "interceptor": {
                "installed": glue.installed(),
                "installed_by": glue.state["installed_by"],
                "mode": stats.get("mode"),
                "sent": stats.get("sent"),
                "dropped": stats.get("dropped"),
            },
            "socket": socket,
            "problems": problems,
            "can_manage": self.env.user.has_group("mit_network_audit.group_manager"),
        }

    # ---- Verify chain ---------------------------------------------------

    @api.model
    def verify_chain_start(self):
        """The range to check; then call ``verify_chain_step`` until done."""
        self._require_user()
        if not source_ready(self.env.cr, "network_egress_log"):
            return {"done": True, "verified": False,
                    "message": _("There is no journal to verify: run egress-collector setup "
                                 "on this database.")}
        self.env.cr.execute("SELECT min(seq), max(seq) FROM public.network_egress_log")
        first, last = self.env.cr.fetchone()
        return {"done": False, "state": chain.new_state(first or 1), "end": last or 0,
                "total": (last - first + 1) if first else 0}

    @api.model
    def verify_chain_step(self, state, end, batch=VERIFY_BATCH):
        self._require_user()
        cr = self.env.cr
        cr.execute(f"SELECT {chain.SELECT_COLUMNS} FROM public.network_egress_log "
                   "WHERE seq >= %s AND seq <= %s ORDER BY seq LIMIT %s",
                   [state["next_seq"], end, batch])
        rows = cr.fetchall()
        chain.check_batch(state, rows)
        if state["broken_seq"] is None and rows and state["next_seq"] <= end:
            return {"done": False, "state": state, "end": end}
        return self._verify_finish(state, end)

    @api.model
    def _verify_finish(self, state, end):
        cr = self.env.cr
        cr.execute("""SELECT h.seq, h.row_hash, j.row_hash
                      FROM public.network_signed_head h
                      LEFT JOIN public.network_egress_log j ON j.seq = h.seq
                      ORDER BY h.seq""")
        heads = cr.fetchall()
        if state["broken_seq"] is None:
            chain.check_heads(state, [h for h in heads if h[0] <= end])
        verified, message = chain.finish(state, end, [h[0] for h in heads])
        latest = self._latest_head()
        signature = self._head_signature(latest)
        if latest is None:
            truncation = _("No signed head yet: truncation of the newest rows cannot be "
                           "detected until the collector signs one.")
        elif latest["seq"] > end:
            truncation = _("Truncated: the latest signed head vouches for seq %s, the journal "
                           "ends at seq %s.", latest["seq"], end)
        else:
            truncation = _("Not truncated: the latest signed head (seq %s) is in the chain.",
                           latest["seq"])
        if signature is False:
            verified = False
            message = _("The latest signed head's Ed25519 signature does not verify: it was "
                        "not made by the collector's key.")
        return {"done": True, "verified": verified, "message": message,
                "rows_checked": state["rows"], "first_seq": state["first_seq"],
                "last_seq": state["last_seq"], "broken_seq": state["broken_seq"],
                "truncation": truncation, "signature_checked": signature is True}

    @api.model
    def _latest_head(self):
        self.env.cr.execute("""SELECT database, seq, row_hash, signed_at_us, signature,
                                      public_key
                               FROM public.network_signed_head ORDER BY id DESC LIMIT 1""")
        row = self.env.cr.fetchone()
        if row is None:
            return None
        keys = ("database", "seq", "row_hash", "signed_at_us", "signature", "public_key")
        return dict(zip(keys, row))

    @api.model
    def _head_signature(self, head):
        """True: valid; False: invalid; None: not checked (no head, or no
        ``cryptography`` package). docs/EXPORT_FORMAT.md §2."""
        if head is None or Ed25519PublicKey is None:
            return None
        text = lambda b: len(b).to_bytes(4, "big") + b  # noqa: E731
        message = (b"\x01" + text(HEAD_DOMAIN) + text(head["database"].encode())
                   + head["seq"].to_bytes(8, "big", signed=True) + bytes(head["row_hash"])
                   + head["signed_at_us"].to_bytes(8, "big", signed=True))
        try:
            Ed25519PublicKey.from_public_bytes(bytes(head["public_key"])).verify(
                bytes(head["signature"]), message)
            return True
        except (InvalidSignature, ValueError):
            return False

    @api.model
    def verify_chain(self):
        """The whole check in one call (tests, server actions)."""
        step = self.verify_chain_start()
        while not step["done"]:
            step = self.verify_chain_step(step["state"], step["end"])
        return step
