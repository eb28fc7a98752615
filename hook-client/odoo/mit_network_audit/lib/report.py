"""The Trust Report document of docs/REPORT_FORMAT.md (the same JSON that
``egress-collector report --json`` prints), assembled from the rollup views
Odoo's role may read. Never from the journal: the report costs the same on a
journal of a thousand rows or of a billion.

``read(cr, ...)`` runs the queries; ``assemble(...)`` is pure.
"""

import json
import time

from .settings import (KEY_DISABLED_CHANNELS, KEY_ENABLED, KEY_RETENTION, KEY_STRICT,
                       SETTING_KEYS, effective, truthy)

FORMAT, VERSION = "egress-audit-report", 1
DAY_US = 86_400_000_000
TABLE_ROWS = 50

#: The views `egress-collector setup` creates for Odoo's role.
VIEWS = ("network_egress_rollup", "network_egress_rollup_gap", "network_egress_rollup_event",
         "network_egress_verify_result", "network_signed_head")
OPTIONAL_VIEWS = ("network_egress_rollup_state", "network_egress_worker", "network_forensic_state")

_US = "(extract(epoch FROM {0}) * 1000000)::bigint"


def parse_since(text):
    """``7d``, ``24h``, ``2w`` or ``all``: microseconds back from now, or None."""
    text = (text or "7d").strip()
    if text == "all":
        return None
    units = {"h": 3_600_000_000, "d": DAY_US, "w": 7 * DAY_US}
    try:
        number, unit = int(text[:-1]), units[text[-1]]
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"{text!r} is not a period like 7d, 24h, 2w or all") from None
    if number < 0:
        raise ValueError(f"{text!r} is not a period like 7d, 24h, 2w or all")
    return number * unit


def first_day(since_us, now_us):
    return 0 if since_us is None else max(0, (now_us - since_us) // DAY_US)


def views_present(cr):
    """The report's views that exist and Odoo's role may read."""
    cr.execute("""SELECT v FROM unnest(%s::text[]) v
                  WHERE to_regclass('public.' || v) IS NOT NULL
                    AND has_table_privilege('public.' || v, 'SELECT')""",
               [list(VIEWS + OPTIONAL_VIEWS)])
    return {row[0] for row in cr.fetchall()}


def read(cr, database, since="7d", now_us=None):
    """The report of ``database`` (this cursor's) from the rollup views."""
    now_us = now_us if now_us is not None else time.time_ns() // 1000
    day = first_day(parse_since(since), now_us)
    present = views_present(cr)
    since_sql = "DATE '1970-01-01' + %s::int4"
    cr.execute(f"""
        SELECT coalesce(class, 'unknown'), coalesce(component, ''), coalesce(host, ''),
               coalesce(addon, ''), sum(calls)::int8, sum(bytes_out)::int8, sum(bytes_in)::int8,
               sum(errors)::int8, sum(self_egress)::int8, {_US.format('max(last_seen)')}
        FROM public.network_egress_rollup WHERE day >= {since_sql}
        GROUP BY 1, 2, 3, 4""", [day])
    groups = cr.fetchall()
    cr.execute(f"""SELECT reason, sum(entries)::int8, sum(events)::int8
                   FROM public.network_egress_rollup_gap WHERE day >= {since_sql}
                   GROUP BY reason ORDER BY reason""", [day])
    gaps = cr.fetchall()
    cr.execute(f"""SELECT seq, {_US.format('recorded_at')}, kind, detail
                   FROM public.network_egress_rollup_event
                   WHERE recorded_at >= TIMESTAMPTZ 'epoch' + %s::int4 * INTERVAL '1 day'
                   ORDER BY seq""", [day])
    events = cr.fetchall()
    cr.execute(f"""SELECT seq, {_US.format('recorded_at')}, kind, detail
                   FROM public.network_egress_rollup_event WHERE kind = 'vacuum'
                   ORDER BY seq DESC LIMIT 1""")
    last_vacuum = cr.fetchone()
    cr.execute("SELECT seq, signed_at_us FROM public.network_signed_head ORDER BY id DESC LIMIT 1")
    signed_head = cr.fetchone()
    cr.execute(f"""SELECT {_US.format('checked_at')}, verified, rows_checked, first_seq,
                          last_seq, broken_seq, message
                   FROM public.network_egress_verify_result ORDER BY id DESC LIMIT 1""")
    verify = cr.fetchone()
    rollup_state, workers = None, None
    if "network_egress_rollup_state" in present:
        cr.execute(f"SELECT watermark, {_US.format('updated_at')} "
                   "FROM public.network_egress_rollup_state LIMIT 1")
        rollup_state = cr.fetchone()
    if "network_egress_worker" in present:
        cr.execute(f"""SELECT coalesce(hook_mode, ''), count(*)::int8,
                              {_US.format('max(last_seen)')}
                       FROM public.network_egress_worker
                       WHERE last_seen >= TIMESTAMPTZ 'epoch' + %s::int4 * INTERVAL '1 day'
                       GROUP BY 1 ORDER BY 1""", [day])
        workers = cr.fetchall()
    cr.execute(f"""SELECT seq, {_US.format('recorded_at')}, kind, detail
                   FROM public.network_egress_rollup_event WHERE kind = 'alarm'
                   ORDER BY seq DESC LIMIT 1""")
    last_alarm = cr.fetchone()
    cr.execute("SELECT key, value FROM ir_config_parameter WHERE key = ANY(%s)",
               [[KEY_ENABLED, KEY_STRICT, KEY_RETENTION]])
    settings = dict(cr.fetchall())
    forensic_state = None
    if "network_forensic_state" in present:
        cr.execute(f"""SELECT active, host, addon, channel, {_US.format('expires_at')},
                              changed_by, entry_seq FROM public.network_forensic_state""")
        forensic_state = cr.fetchone()
    return assemble(database, groups, gaps, events, last_vacuum, signed_head, verify,
                    settings, rollup_state, day, now_us, workers, last_alarm=last_alarm,
                    boundary_void=boundary_void(cr), forensic_state=forensic_state)


def boundary_void(cr):
    """What Odoo's own role may do that voids the database-level promises
    (docs/SECURITY.md): read from ``pg_roles`` for the role this cursor runs as."""
    cr.execute("""SELECT current_user::text, rolsuper, rolcreaterole, rolbypassrls
                  FROM pg_catalog.pg_roles WHERE rolname = current_user""")
    row = cr.fetchone()
    if row is None:
        return []
    role, powers = row[0], zip(row[1:], ("is a superuser", "may create roles",
                                         "bypasses row-level security"))
    return [f"Odoo's role {role} {what}" for on, what in powers if on]


def signing_alarm(event):
    """The latest ``alarm`` entry, when it is a refusal of the signer (a
    resume by an operator ends it)."""
    if event is None:
        return None
    try:
        d = json.loads(event[3] or "")
    except ValueError:
        return None
    if not isinstance(d, dict) or d.get("alarm") != "signing_refused":
        return None
    bad = d.get("first_bad_seq")
    return {"seq": event[0], "at_us": event[1],
            "first_bad_seq": bad if isinstance(bad, int) else None,
            "reason": d.get("reason") if isinstance(d.get("reason"), str) else ""}


def _totals():
    return {"calls": 0, "bytes_out": 0, "bytes_in": 0}


def assemble(database, groups, gaps, events, last_vacuum, signed_head, verify, settings,
             rollup_state, day, now_us, workers=None, table_rows=TABLE_ROWS, last_alarm=None,
             boundary_void=(), forensic_state=None):
    """Pure: the report from what ``read`` selected (the rules of
    docs/REPORT_FORMAT.md, in the order of its sections)."""
    summary = {"calls": 0, "bytes_out": 0, "bytes_in": 0, "errors": 0}
    classes, by_class, hosts, addons, self_egress = {}, {}, set(), set(), 0
    for g in groups:
        cls, component, host, addon, calls, out, inb, errors, selfe, last = g
        summary["calls"] += calls
        summary["bytes_out"] += out
        summary["bytes_in"] += inb
        summary["errors"] += errors
        self_egress += selfe
        if host:
            hosts.add(host)
        if addon:
            addons.add(addon)
        totals = classes.setdefault(cls, _totals())
        totals["calls"] += calls
        totals["bytes_out"] += out
        totals["bytes_in"] += inb
        by_class.setdefault(cls, []).append(g)
    summary["destinations"], summary["addons"] = len(hosts), len(addons)

    def table(cls):
        rows = sorted(by_class.get(cls, []), key=lambda g: (-g[4], g[1], g[2], g[3]))
        return {
            "rows": [{"component": g[1] or None, "host": g[2] or None, "addon": g[3] or None,
                      "calls": g[4], "bytes_out": g[5], "bytes_in": g[6], "errors": g[7],
                      "last_seen_us": g[9]} for g in rows[:table_rows]],
            "more_rows": max(0, len(rows) - table_rows),
            "totals": dict(classes.get(cls, _totals())),
        }

    gap_info = {"entries": 0, "events": 0, "by_reason": {}}
    for reason, entries, lost in gaps:
        gap_info["entries"] += entries
        gap_info["events"] += lost
        gap_info["by_reason"][reason] = gap_info["by_reason"].get(reason, 0) + lost
    enabled_now = truthy(settings[KEY_ENABLED]) if KEY_ENABLED in settings else True
    strict_now = truthy(settings[KEY_STRICT]) if KEY_STRICT in settings else False
    try:
        retention_days = int(str(settings.get(KEY_RETENTION, "0")).strip())
    except ValueError:
        retention_days = 0
    trust = {
        "self_egress_calls": self_egress,
        "last_verify": None if verify is None else {
            "checked_at_us": verify[0], "verified": verify[1], "rows_checked": verify[2],
            "first_seq": verify[3], "last_seq": verify[4], "broken_seq": verify[5],
            "message": verify[6]},
        "signed_head": None if signed_head is None else {
            "seq": signed_head[0], "signed_at_us": signed_head[1],
            "age_secs": max(0, now_us - signed_head[1]) // 1_000_000},
        "gaps": gap_info,
        "capture": history(events, KEY_ENABLED, enabled_now, True),
        "strict_mode": history(events, KEY_STRICT, strict_now, False),
        "retention": {"days": retention_days, "last_vacuum": _vacuum(last_vacuum)},
        "rollups": None if rollup_state is None else {
            "watermark": rollup_state[0], "updated_at_us": rollup_state[1]},
        "coverage": None if workers is None else coverage(workers),
    }
    alarm = signing_alarm(last_alarm)
    if alarm is not None:
        trust["signing_alarm"] = alarm
    if boundary_void:
        trust["boundary_void"] = list(boundary_void)
    chip = forensic(forensic_state, events, now_us)
    if chip is not None:
        trust["forensic"] = chip
    vendor, third_party, unknown = table("vendor"), table("third_party"), table("unknown")
    return {
        "format": FORMAT,
        "version": VERSION,
        "database": database,
        "generated_at_us": now_us,
        "source": "rollups",
        "period": {"since_us": day * DAY_US, "days": now_us // DAY_US - day + 1},
        "verdict": verdict(summary, vendor, unknown, trust),
        "summary": summary,
        "classes": dict(sorted(classes.items())),
        "vendor": vendor,
        "third_party": third_party,
        "unknown": unknown,
        "local": table("local"),
        "trust": trust,
    }


def config_changes(events, keys):
    """The ``config_change`` entries of ``events`` about one of ``keys``:
    ``{"seq", "at_us", "key", "old", "new", "user", "reported_by"}``."""
    text = lambda v: v if isinstance(v, str) else None  # noqa: E731
    for seq, at_us, kind, detail in events:
        if kind != "config_change":
            continue
        try:
            d = json.loads(detail or "")
        except ValueError:
            continue
        if not isinstance(d, dict) or d.get("key") not in keys:
            continue
        yield {"seq": seq, "at_us": at_us, "key": d["key"], "old": text(d.get("old")),
               "new": text(d.get("new")), "user": text(d.get("user")) or None,
               "reported_by": text(d.get("reported_by"))}


def history(events, key, now, default):
    """A boolean setting's changes in the period and whether it was on or
    off at any time in it (its state at the start: the first change's old
    value, or, without a change, its value now)."""
    changes = []
    for change in config_changes(events, (key,)):
        del change["key"]
        changes.append(change)

    def value(v):
        return default if v is None else truthy(v)

    states = [value(changes[0]["old"]) if changes else now] + [value(c["new"]) for c in changes]
    return {"now": now, "on_in_period": True in states, "off_in_period": False in states,
            "changes": changes}


#: The settings' names as the settings pages show them.
SETTING_LABELS = {KEY_ENABLED: "Network auditing enabled", KEY_STRICT: "Strict redaction",
                  KEY_RETENTION: "Audit retention (days)",
                  KEY_DISABLED_CHANNELS: "Disabled channels"}


def read_settings_in_force(cr, since_us):
    """The four settings now (Odoo's table, the FAQ's defaults) and every
    change of any of them since ``since_us``, oldest first."""
    cr.execute("SELECT key, value FROM ir_config_parameter WHERE key = ANY(%s)",
               [list(SETTING_KEYS)])
    values = dict(cr.fetchall())
    cr.execute(f"""SELECT seq, {_US.format('recorded_at')}, kind, detail
                   FROM public.network_egress_rollup_event
                   WHERE kind = 'config_change'
                     AND recorded_at >= TIMESTAMPTZ 'epoch' + %s * INTERVAL '1 microsecond'
                   ORDER BY seq""", [since_us])
    return settings_in_force(values, cr.fetchall())


def settings_in_force(values, events):
    """Pure: ``{"enabled", "strict", "retention_days", "disabled_channels",
    "changes"}``; ``changes`` lists every change of the four settings by
    time (seq), each with the setting's label, old and new value (None: the
    default), user and who reported it."""
    changes = [dict(c, label=SETTING_LABELS[c["key"]])
               for c in config_changes(events, SETTING_KEYS)]
    changes.sort(key=lambda c: c["seq"])
    return {
        "enabled": effective(KEY_ENABLED, values.get(KEY_ENABLED)),
        "strict": effective(KEY_STRICT, values.get(KEY_STRICT)),
        "retention_days": effective(KEY_RETENTION, values.get(KEY_RETENTION)),
        "disabled_channels": effective(KEY_DISABLED_CHANNELS,
                                       values.get(KEY_DISABLED_CHANNELS)),
        "changes": changes,
    }


def coverage(workers):
    """Workers seen in the period by hook mode (``(mode, count, last_seen_us)``;
    an unknown mode is ``''``)."""
    by_mode, last = {}, None
    for mode, count, last_seen_us in workers:
        mode = mode or "unknown"
        by_mode[mode] = by_mode.get(mode, 0) + count
        last = last_seen_us if last is None else max(last, last_seen_us)
    return {"workers": sum(by_mode.values()), "by_mode": by_mode, "last_seen_us": last}


def _vacuum(event):
    if event is None:
        return None
    try:
        d = json.loads(event[3] or "")
        return {"seq": event[0], "at_us": event[1], "first_seq": int(d["first_seq"]),
                "last_seq": int(d["last_seq"]), "rows": int(d["rows"])}
    except (ValueError, KeyError, TypeError):
        return None


def _plural(n, one, many):
    return f"{n} {one if n == 1 else many}"


def forensic(state, events, now_us):
    """Forensic capture for the report (rollup/src/report.rs ``forensic``):
    on now or not, for what, until when, by whom, and the switches and reads
    in the period; None when it was never switched."""
    def entries(kind):
        out = []
        for seq, at_us, event_kind, detail in events:
            if event_kind != kind:
                continue
            try:
                doc = json.loads(detail or "{}")
            except ValueError:
                doc = {}
            call_seq = doc.get("seq")
            out.append({"seq": seq, "at_us": at_us, "action": doc.get("action") or "",
                        "by": doc.get("by") or "",
                        "call_seq": call_seq if isinstance(call_seq, int) else None})
        return out

    switches, reads = entries("forensic_capture"), entries("forensic_read")
    if state is None and not switches and not reads:
        return None
    chip = {"active": False, "host": None, "addon": None, "channel": None,
            "expires_at_us": None, "changed_by": "", "entry_seq": 0,
            "switches": switches, "reads": reads}
    if state is not None:
        active, host, addon, channel, expires, by, seq = state
        chip.update(active=bool(active and expires is not None and expires > now_us),
                    host=host, addon=addon, channel=channel, expires_at_us=expires,
                    changed_by=by, entry_seq=seq)
    return chip


def verdict(summary, vendor, unknown, trust):
    alerts, warnings = [], []
    if trust["self_egress_calls"] > 0:
        alerts.append("ALERT: the audit addon made "
                      f"{_plural(trust['self_egress_calls'], 'network call', 'network calls')}"
                      " itself.")
    alarm = trust.get("signing_alarm")
    if alarm:
        alerts.append("ALERT: the signer refused to sign: the journal was rewritten or cut"
                      + (f" at or before seq {alarm['first_bad_seq']}."
                         if alarm["first_bad_seq"] is not None else "."))
    chip = trust.get("forensic")
    if chip and chip["active"]:
        scope = " ".join(f"{k}={chip[k]}" for k in ("host", "addon", "channel") if chip[k])
        alerts.append(f"ALERT: forensic body capture is ON for {scope} (enabled by "
                      f"{chip['changed_by']}, journal row {chip['entry_seq']}).")
    if trust.get("boundary_void"):
        alerts.append(f"ALERT: {'; '.join(trust['boundary_void'])}: code in Odoo can rewrite "
                      "unsigned journal rows without a trace.")
    last = trust["last_verify"]
    if last and not last["verified"]:
        alerts.append("ALERT: the last verification found the chain broken"
                      + (f" at seq {last['broken_seq']}." if last["broken_seq"] is not None
                         else "."))
    if unknown["totals"]["calls"] > 0:
        warnings.append(f"{_plural(unknown['totals']['calls'], 'call', 'calls')} went to "
                        "unknown destinations.")
    if trust["gaps"]["events"] > 0:
        warnings.append(f"{_plural(trust['gaps']['events'], 'event', 'events')} could not be "
                        "recorded (gaps): the record of this period is incomplete.")
    if trust["capture"]["off_in_period"]:
        warnings.append("Capture was switched off during this period: calls made meanwhile "
                        "were not recorded.")
    if summary["calls"] == 0:
        fine = "No network calls were recorded in this period."
    elif vendor["totals"]["calls"] == 0:
        fine = "Nothing went to MIT."
    elif unknown["totals"]["calls"] > 0:
        fine = "Of the known destinations, only licence metadata goes to MIT."
    else:
        fine = "Only licence metadata goes to MIT."
    lines = alerts + warnings + [fine]
    level = "alert" if alerts else "warning" if warnings else "ok"
    return {"level": level, "headline": lines[0], "lines": lines}
