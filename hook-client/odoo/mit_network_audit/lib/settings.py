"""The audit settings in ``ir.config_parameter``: their keys and how a
boolean is read. The addon's one copy of ``proto/src/settings.rs`` (the
collector's, the report's and the vacuum's), held to it by
``tests/odoo/test_addon_lib.py``. Pure Python, no Odoo import."""

#: The settings an administrator changes (Configuration → Settings).
KEY_ENABLED = "mit_network_audit.enabled"
KEY_STRICT = "mit_network_audit.strict_redaction"
KEY_RETENTION = "mit_network_audit.retention_days"
KEY_DISABLED_CHANNELS = "mit_network_audit.disabled_channels"
SETTING_KEYS = (KEY_ENABLED, KEY_STRICT, KEY_RETENTION, KEY_DISABLED_CHANNELS)


def truthy(value, default=False):
    """Odoo stores booleans as "True"/"False", or removes the key (then
    ``default``)."""
    if value is None or value is False:
        return default
    return str(value).strip().lower() in ("true", "1", "yes", "on")


#: The channels a call is captured on (``egress_hook.interceptor.CHANNELS``).
CHANNELS = ("http", "smtp", "imap", "pop3", "socket", "dns")


def parse_channels(text):
    """``(normalized, unknown)``: the known channel names of ``text`` (comma,
    semicolon or space separated, any case) sorted and comma-joined, and the
    names that are no channel."""
    parts = str(text or "").replace(";", ",").replace(" ", ",").split(",")
    names = {p.strip().lower() for p in parts if p.strip()}
    return ",".join(sorted(names & set(CHANNELS))), sorted(names - set(CHANNELS))


def channels_error(text):
    """The message that refuses ``text`` as Disabled channels, or None."""
    _normalized, unknown = parse_channels(text)
    if not unknown:
        return None
    return (f"Disabled channels: {', '.join(repr(u) for u in unknown)} "
            f"{'is no channel' if len(unknown) == 1 else 'are no channels'}. "
            f"Use a comma-separated list of {', '.join(CHANNELS)} "
            "(for example socket,smtp), or leave it empty to capture all.")


def retention_error(days):
    """The message that refuses ``days`` as Audit retention, or None."""
    try:
        value = int(str(days).strip())
    except (TypeError, ValueError):
        value = None
    if value is None or value < 0:
        return (f"Audit retention (days): {days!r} is not a number of days. Use 0 to keep "
                "everything, or the number of days rows are kept (1 or more).")
    return None


def effective(key, value):
    """What a stored value means, defaults applied: two values with the same
    meaning ("False" and an absent strict flag) are no change."""
    if key == KEY_ENABLED:
        return truthy(value, True)
    if key == KEY_STRICT:
        return truthy(value, False)
    if key == KEY_RETENTION:
        try:
            return max(0, int(str(value).strip()))
        except (TypeError, ValueError):
            return 0
    if key == KEY_DISABLED_CHANNELS:
        return parse_channels(value or "")[0]
    return value


#: The settings' help, shown on both settings pages (held to the views and
#: to docs/CONFIGURATION.md by tests/odoo/test_addon_lib.py).
HELP = {
    KEY_ENABLED: (
        "The master switch. Off = no capture at all: each worker stops capturing at the "
        "start of its next request, cron job or queue job, and calls made while it is off "
        "leave no row. The Trust Report says capture was off."),
    KEY_STRICT: (
        "Masks at the moment of capture, in the worker (and again in the collector): "
        "method, path, query and header names, status, error, payload fingerprint, stack, "
        "trigger and Odoo user. Keeps host, IP, port, sizes, timing, TLS, the source "
        "address and the worker, and the attribution (addon, component, class): the "
        "stack's file names travel to the collector for it, and are not stored."),
    KEY_RETENTION: (
        "How long rows are kept, in days; 0 keeps everything (never negative). The vacuum "
        "never deletes at or after the signed head, and the Trust Report's sums outlive "
        "the rows."),
    KEY_DISABLED_CHANNELS: (
        "Channels to turn off, comma-separated, among http, smtp, imap, pop3, socket and "
        "dns (for example socket,smtp); empty = capture all. A disabled channel's calls "
        "leave no row of any kind (not even as socket). Disabling socket alone stops only "
        "raw sockets that no HTTP, SMTP, IMAP or POP3 call owns."),
}
