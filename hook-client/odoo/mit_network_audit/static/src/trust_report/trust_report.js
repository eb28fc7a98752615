/** @odoo-module **/
// The Trust Report: reads the report document (docs/REPORT_FORMAT.md) that
// the server builds from the rollups, and runs the chain check in steps.

import { Component, onWillStart, useState } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";

const CLASS_LABELS = {
    vendor: "MIT-bound",
    third_party: "Third party",
    local: "Local",
    unknown: "Unknown",
};
// As the log's "Errors" filter and the rollups' error count.
const ERROR_DOMAIN = ["|", ["error_class", "!=", false], ["status", ">=", 400]];
const CLASS_COLORS = {
    vendor: "#7c3aed",
    third_party: "#0ea5e9",
    local: "#94a3b8",
    unknown: "#f59e0b",
};

export function formatBytes(n) {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = n || 0;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit += 1;
    }
    return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function formatAge(seconds) {
    if (seconds < 90) {
        return `${seconds} s`;
    }
    if (seconds < 5400) {
        return `${Math.round(seconds / 60)} min`;
    }
    if (seconds < 172800) {
        return `${Math.round(seconds / 3600)} h`;
    }
    return `${Math.round(seconds / 86400)} days`;
}

/** Arcs of a donut, one per class present, as SVG path data. */
export function donutArcs(classes) {
    const entries = Object.entries(classes || {}).filter(([, t]) => t.calls > 0);
    const total = entries.reduce((sum, [, t]) => sum + t.calls, 0);
    const arcs = [];
    let angle = -Math.PI / 2;
    for (const [name, totals] of entries) {
        const share = totals.calls / total;
        const end = angle + share * 2 * Math.PI - (entries.length > 1 ? 0.0001 : 0.0002);
        const [r, x0, y0] = [40, 50 + 40 * Math.cos(angle), 50 + 40 * Math.sin(angle)];
        const [x1, y1] = [50 + r * Math.cos(end), 50 + r * Math.sin(end)];
        const large = share > 0.5 ? 1 : 0;
        arcs.push({
            name,
            label: CLASS_LABELS[name] || name,
            color: CLASS_COLORS[name] || "#64748b",
            calls: totals.calls,
            percent: Math.round(share * 1000) / 10,
            d: `M ${x0} ${y0} A ${r} ${r} 0 ${large} 1 ${x1} ${y1}`,
        });
        angle += share * 2 * Math.PI;
    }
    return arcs;
}

export class TrustReport extends Component {
    static template = "mit_network_audit.TrustReport";
    static props = ["*"];

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.state = useState({
            since: "7d",
            loading: true,
            data: null,
            verify: null,
            verifying: false,
            progress: 0,
            // Local calls (loopback, private networks, this database) are
            // listed, folded until asked for.
            showLocal: false,
        });
        this.formatBytes = formatBytes;
        this.formatAge = formatAge;
        this.formatTime = (us) => new Date(us / 1000).toLocaleString();
        this.classLabels = CLASS_LABELS;
        onWillStart(() => this.load());
    }

    async load() {
        this.state.loading = true;
        this.state.data = await this.orm.call("network.trust_report", "get_report", [], {
            since: this.state.since,
        });
        this.state.loading = false;
    }

    async setPeriod(since) {
        this.state.since = since;
        await this.load();
    }

    get report() {
        return this.state.data && this.state.data.report;
    }

    get status() {
        return this.state.data && this.state.data.status;
    }

    get arcs() {
        return donutArcs(this.report && this.report.classes);
    }

    /** The tables, in order: [class, title, table, folded]. */
    get tables() {
        const r = this.report;
        return [
            ["vendor", "MIT-bound", r.vendor, false],
            ["third_party", "Third party (providers you chose)", r.third_party, false],
            ["unknown", "Unknown destinations", r.unknown, false],
            [
                "local",
                "Local (loopback, private networks, this database)",
                r.local || { rows: [], more_rows: 0, totals: { calls: 0 } },
                !this.state.showLocal,
            ],
        ];
    }

    get addonBars() {
        const addons = (this.state.data && this.state.data.addons) || [];
        const max = Math.max(1, ...addons.map((a) => a.bytes_out + a.bytes_in));
        return addons.map((a) => ({
            ...a,
            outWidth: (100 * a.bytes_out) / max,
            inWidth: (100 * a.bytes_in) / max,
        }));
    }

    get verdictClass() {
        const level = this.report ? this.report.verdict.level : "warning";
        return { ok: "alert-success", warning: "alert-warning", alert: "alert-danger" }[level];
    }

    get forensicScope() {
        const f = this.report.trust.forensic || {};
        return ["host", "addon", "channel"].filter((k) => f[k]).map((k) => `${k}=${f[k]}`).join(" ");
    }

    get forensicUntil() {
        const f = this.report.trust.forensic || {};
        return f.expires_at_us ? new Date(f.expires_at_us / 1000).toISOString().replace(".000Z", "Z") : "";
    }

    get forensicReads() {
        const f = this.report.trust.forensic || { reads: [] };
        return f.reads
            .map((r) => `row ${r.call_seq} read by ${r.by} (journal row ${r.seq})`)
            .join("\n");
    }

    get chainChip() {
        if (this.state.verify && this.state.verify.done) {
            return this.state.verify.verified
                ? { level: "ok", text: "Verified just now" }
                : { level: "bad", text: `Broken at seq ${this.state.verify.broken_seq}` };
        }
        const last = this.report && this.report.trust.last_verify;
        if (!last) {
            return { level: "warn", text: "Not verified yet" };
        }
        return last.verified
            ? { level: "ok", text: `Verified (${last.rows_checked} rows)` }
            : { level: "bad", text: `Broken at seq ${last.broken_seq}` };
    }

    get headChip() {
        const head = this.report && this.report.trust.signed_head;
        if (!head) {
            return { level: "warn", text: "No signed head yet" };
        }
        const level = head.age_secs > 2 * 86400 ? "warn" : "ok";
        return { level, text: `seq ${head.seq}, ${formatAge(head.age_secs)} ago` };
    }

    get coverageChip() {
        const coverage = this.report && this.report.trust.coverage;
        const mode = this.status && this.status.interceptor.mode;
        if (!coverage) {
            return { level: "warn", text: mode ? `this worker: ${mode}` : "unknown" };
        }
        const modes = Object.entries(coverage.by_mode || {})
            .map(([m, n]) => `${n} ${m}`)
            .join(", ");
        return {
            level: coverage.workers ? "ok" : "warn",
            // No nested template literal: Odoo's minifier mangles them.
            text:
                coverage.workers +
                (coverage.workers === 1 ? " worker" : " workers") +
                (modes ? " (" + modes + ")" : ""),
        };
    }

    /** The four settings in force, and every change of them by time. */
    get settings() {
        return this.state.data && this.state.data.settings;
    }

    get settingsChanges() {
        return (this.settings && this.settings.changes) || [];
    }

    /** The period's first instant as Odoo writes a UTC datetime in a domain. */
    get periodStart() {
        const since = this.report ? this.report.period.since_us : 0;
        return new Date(since / 1000).toISOString().slice(0, 19).replace("T", " ");
    }

    /**
     * Opens the log rows behind a number of the report: the period's rows
     * of `kind`, narrowed by `domain`, grouped by `groupBy` when given.
     */
    openRows(name, domain = [], { kind = "call", groupBy = null } = {}) {
        this.action.doAction({
            type: "ir.actions.act_window",
            name,
            res_model: "network.egress_log",
            views: [
                [false, "list"],
                [false, "form"],
            ],
            domain: [["kind", "=", kind], ["recorded_at", ">=", this.periodStart], ...domain],
            context: groupBy ? { group_by: [groupBy] } : {},
            target: "current",
        });
    }

    /** A table's rows: its class, and a row's component, host and addon. */
    openLog(cls, row, extra = []) {
        const domain = [];
        if (cls) {
            domain.push(["egress_class", "=", cls]);
        }
        for (const field of ["host", "addon", "component"]) {
            if (row) {
                domain.push([field, "=", row[field] || false]);
            }
        }
        this.openRows("Network Egress Log", domain.concat(extra));
    }

    openErrors(cls, row) {
        this.openLog(cls, row, ERROR_DOMAIN);
    }

    /** The summary cards: every call of the period, or the ones behind a card. */
    openCard(card) {
        if (card === "Errors") {
            this.openRows("Calls with errors", ERROR_DOMAIN);
        } else if (card === "Destinations") {
            this.openRows("Calls by destination", [], { groupBy: "host" });
        } else if (card === "Addons") {
            this.openRows("Calls by addon", [], { groupBy: "addon" });
        } else {
            this.openRows("Network Egress Log");
        }
    }

    openAddon(addon) {
        this.openRows(`Calls of ${addon || "no addon"}`, [["addon", "=", addon || false]]);
    }

    openSelfEgress() {
        this.openRows("Self-egress", [["self_egress", "=", true]]);
    }

    openGaps() {
        this.openRows("Gaps", [], { kind: "gap" });
    }

    openExport() {
        this.action.doAction("mit_network_audit.action_egress_export");
    }

    async verifyChain() {
        this.state.verifying = true;
        this.state.progress = 0;
        this.state.verify = null;
        try {
            let step = await this.orm.call("network.trust_report", "verify_chain_start", []);
            const total = step.total || 0;
            const first = step.state ? step.state.first_seq : 0;
            while (!step.done) {
                step = await this.orm.call("network.trust_report", "verify_chain_step", [
                    step.state,
                    step.end,
                ]);
                if (!step.done && total) {
                    this.state.progress = Math.round(
                        (100 * (step.state.next_seq - first)) / total
                    );
                }
            }
            this.state.progress = 100;
            this.state.verify = step;
        } finally {
            this.state.verifying = false;
        }
    }
}

registry.category("actions").add("mit_network_audit.trust_report", TrustReport);
