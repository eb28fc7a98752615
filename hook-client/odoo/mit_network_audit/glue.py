"""The Odoo glue around ``egress_hook.interceptor`` (pure Python, no Odoo):
install it once per process, fill its context (database, trigger, user),
keep its settings in step with ``ir.config_parameter``, and say when an audit
setting changes. Everything here is fail-open: an error of the auditor is
logged and swallowed, never raised into Odoo.
"""

import logging
import os
import threading

# The audit settings' keys, read here and as ``glue.KEY_*`` by the models.
from .lib.settings import (  # noqa: F401
    CHANNELS, HELP, KEY_DISABLED_CHANNELS, KEY_ENABLED, KEY_RETENTION, KEY_STRICT, SETTING_KEYS,
    channels_error, effective, parse_channels, retention_error, truthy,
)

_logger = logging.getLogger(__name__)

try:
    from egress_hook import interceptor
    from egress_hook.interceptor import _core
except ImportError:  # the addon still installs; the Trust Report says so
    interceptor = _core = None

#: The latest signed head, as Odoo shows it (``get_param``): read from the
#: egress view ``public.network_signed_head``, never stored in Odoo's table.
KEY_SIGNED_HEAD = "mit_network_audit.signed_head"
#: Where the collector's sockets are, when not the defaults.
KEY_SOCKET = "mit_network_audit.socket"
KEY_CONTROL = "mit_network_audit.control_socket"
DEFAULT_CONTROL_SOCKET = "/run/egress-collector/control.sock"

_lock = threading.Lock()
#: How this process got its interceptor: ``server_wide`` (post_load) or
#: ``registry`` (an Apps install), and how many times ``setup`` installed it.
state = {"installed_by": None, "installs": 0, "error": None}
#: What ``sync_settings`` last did: ``applied``, the switches given to the
#: interceptor; ``key``, the settings tuple they came from; ``seen``, the
#: registry and its cache sequences they were read under.
_applied_settings = {}
#: How many times an audit setting was written in this process (a list, so
#: that the count is changed in place).
_setting_changes = [0]


def socket_path():
    """``$EGRESS_SOCKET``, then ``egress_socket`` in odoo.conf, then the
    interceptor's default."""
    from odoo.tools import config

    return os.environ.get("EGRESS_SOCKET") or config.get("egress_socket") or None


def control_socket_path():
    from odoo.tools import config

    return (os.environ.get("EGRESS_CONTROL") or config.get("egress_control_socket")
            or DEFAULT_CONTROL_SOCKET)


def addons_paths():
    """Where this Odoo's addons live: the collector attributes a stack frame
    under one of these to the addon directory it is in."""
    import odoo.addons

    return [os.path.abspath(p) for p in odoo.addons.__path__]


def setup(source):
    """Installs the interceptor in this process, once, whichever of the two
    install paths comes first. Returns whether it is installed. Never raises."""
    if interceptor is None:
        state["error"] = "the Python package egress_hook is not installed"
        return False
    try:
        with _lock:
            if state["installed_by"] is not None and interceptor.installed():
                return True
            from odoo import release

            if not interceptor.install(socket=socket_path()):
                state["error"] = "the interceptor could not be installed (see the log)"
                return False
            interceptor.set_worker_info(odoo_version=release.version,
                                        addons_paths=addons_paths())
            from .dispatch import shell

            shell.wrap_shell()
            state.update(installed_by=source, installs=state["installs"] + 1, error=None)
            _follow_registries()
            _logger.info("mit_network_audit: network audit installed (%s, %s sender)",
                         source, interceptor.stats().get("mode", "?"))
            return True
    except Exception as error:  # fail-open: Odoo starts without the audit
        state["error"] = f"{type(error).__name__}: {error}"
        _logger.exception("mit_network_audit: could not install the interceptor")
        return False


def installed():
    return interceptor is not None and interceptor.installed()


def enter(env, trigger_kind, trigger_name, describe=None):
    """Fills the interceptor's context for the work about to run (an HTTP
    request, a cron job) and brings its settings in step with this
    database's. Returns the token for ``leave``, or None.

    Nothing but the trigger kind is looked up now: the database, the user
    and the trigger name are read from ``env`` (and ``trigger_name``, or
    ``describe(trigger_name)`` when given) only if a call is captured
    (``interceptor.set_lazy_context``), and the settings cost one compare
    when they did not change (``sync_settings``). Work that makes no call,
    nearly every request, pays for nothing else."""
    if interceptor is None or not _core.state.installed:
        return None
    try:
        sync_settings(env)
        return _core.set_lazy_context(trigger_kind, _describe, (env, trigger_name, describe))
    except Exception:
        _logger.debug("mit_network_audit: context not set", exc_info=True)
        return None


def _describe(subject):
    """``(database, trigger_name, uid)`` of a captured call's work
    (``enter``)."""
    env, name, describe = subject
    if describe is not None:
        name = describe(name)
    return env.cr.dbname, str(name or ""), env.uid or None


def current_trigger_kind():
    """The trigger of the work running now (``""`` when none)."""
    if interceptor is None:
        return ""
    try:
        return _core.current_trigger_kind()
    except Exception:
        return ""


def leave(token):
    if token is not None:
        try:
            interceptor.reset_context(token)
        except Exception:
            _logger.debug("mit_network_audit: context not reset", exc_info=True)


def read_settings(env):
    """This database's audit settings, with the defaults the FAQ promises."""
    enabled, strict, retention, channels = env["ir.config_parameter"]._network_audit_settings()
    return {"enabled": enabled, "strict": strict, "retention_days": retention,
            "disabled_channels": channels}


def settings_fields(env):
    """The four settings as the settings pages' fields."""
    settings = read_settings(env)
    return {"network_audit_enabled": settings["enabled"],
            "network_audit_strict": settings["strict"],
            "network_audit_retention_days": settings["retention_days"],
            "network_audit_disabled_channels": settings["disabled_channels"]}


def normalize_channels(text):
    """The known channel names of ``text``, sorted, comma-joined."""
    return parse_channels(text)[0]


def sync_settings(env):
    """The interceptor's switches (master switch, disabled channels, strict
    redaction) follow this database's settings, from the start of every
    request, cron job or queue job.

    Free when nothing changed: the settings are an ``ormcache`` entry of
    ``ir.config_parameter``, and an ormcache entry can only have changed if
    the registry is another one, if Odoo's signalling moved one of the
    registry's cache sequences (a worker committed a change; checked by
    Odoo at the start of each request), if this thread invalidated a cache
    in the transaction under way (``cache_invalidated``, until its commit
    moves the sequence or its rollback clears it), or if another thread of
    this process wrote an audit setting (``setting_written``). Those four
    are compared first; only when one differs is the entry read (a lookup that
    costs 9 to 15 µs on Odoo 18, through its ``decorator`` wrappers) and the
    interceptor touched if the settings differ from those it applies. (A
    worker serving several databases follows the one it serves now.)"""
    registry = env.registry
    applied = _applied_settings
    seen = applied.get("seen")
    changes = _setting_changes[0]
    if (seen is not None and seen[0] is registry and seen[2] == changes
            and seen[1] == registry.cache_sequences and not registry.cache_invalidated):
        return
    wanted = env["ir.config_parameter"]._network_audit_settings()
    enabled, strict, _retention, channels = wanted
    key = (enabled, strict, channels)
    if applied.get("applied") != key:
        interceptor.settings.update(enabled=enabled, strict=strict, disabled_channels=channels)
        applied["applied"] = key
    applied["key"] = wanted
    # Read within a transaction that changed a cache, the settings are not
    # ones to keep: its rollback would move no sequence. (One tuple, so that
    # another thread never sees a registry with another's sequences.)
    applied["seen"] = (None if registry.cache_invalidated
                       else (registry, dict(registry.cache_sequences), changes))


def setting_written():
    """Called by ``ir.config_parameter`` whenever an audit setting is
    written in this process, in any thread: the next ``sync_settings`` of
    every thread reads the settings again (a thread's own cache
    invalidations are invisible to the others until a commit moves the
    sequences; a test's HTTP requests share its uncommitted transaction)."""
    _setting_changes[0] += 1


def validate(channels, retention_days):
    """Raises ``UserError`` with the one clear message when the Disabled
    channels or the Audit retention cannot be saved as typed."""
    from odoo.exceptions import UserError

    message = channels_error(channels) or retention_error(retention_days)
    if message:
        raise UserError(message)


def save_settings(env, enabled, strict, retention_days, disabled_channels):
    """Writes the four settings (validated first), each only when its
    meaning changes: saving the defaults unchanged journals nothing. Each
    write goes through ``ir.config_parameter``, which hands it over to the
    collector and journals it with the user who made it."""
    validate(disabled_channels, retention_days)
    params = env["ir.config_parameter"].sudo()
    # Booleans are stored as "True"/"False", never removed: an absent
    # master switch would mean "on", whatever the box said.
    for key, value in (
        (KEY_ENABLED, str(bool(enabled))),
        (KEY_STRICT, str(bool(strict))),
        (KEY_RETENTION, str(int(retention_days or 0))),
        (KEY_DISABLED_CHANNELS, normalize_channels(disabled_channels or "")),
    ):
        current = params.get_param(key)
        if effective(key, current) != effective(key, value):
            params.set_param(key, value)


def setting_changed(env, key, old, new):
    """Journals a change of an audit setting (a ``ConfigChange`` message,
    with who made it), once the transaction that made it has committed."""
    if interceptor is None or key not in SETTING_KEYS or effective(key, old) == effective(key, new):
        return
    dbname, uid = env.cr.dbname, env.uid
    login = env.user.sudo().login or ""

    def send():
        try:
            interceptor.config_changed(dbname, key, old, new, user_login=login, uid=uid)
            interceptor.flush()
        except Exception:
            _logger.debug("mit_network_audit: config change not sent", exc_info=True)

    env.cr.postcommit.add(send)


def hand_over(env, key, value):
    """Hands a changed audit setting to the collector: one INSERT into the
    egress inbox ``public.network_egress_setting`` (Odoo's role may only
    insert there), in the transaction that changes it, so that a change
    rolled back is not handed over. The collector never reads Odoo's own
    tables: code planted there would run with its rights (docs/SECURITY.md).
    Fail-open: without the inbox (setup not run yet) Odoo saves anyway."""
    if key not in SETTING_KEYS:
        return
    try:
        with env.cr.savepoint(flush=False):
            env.cr.execute("INSERT INTO public.network_egress_setting (key, value, odoo_uid) "
                           "VALUES (%s, %s, %s)", [key, value, env.uid or None])
    except Exception:
        _logger.warning("mit_network_audit: %s was not handed to the collector "
                        "(has `egress-collector setup` run on this database?)", key,
                        exc_info=True)


def hand_over_all(env):
    """Hands over every audit setting whose value differs from the one the
    collector holds (after an upgrade from a version that read Odoo's table,
    or a change made with raw SQL). Never raises."""
    try:
        cr = env.cr
        cr.execute("SELECT to_regclass('public.network_egress_setting') IS NOT NULL")
        if not cr.fetchone()[0]:
            return
        cr.execute("""SELECT DISTINCT ON (key) key, value FROM public.network_egress_setting
                      ORDER BY key, id DESC""")
        held = dict(cr.fetchall())
        params = env["ir.config_parameter"].sudo()
        for key in SETTING_KEYS:
            value = params.get_param(key) or None
            if effective(key, held.get(key)) != effective(key, value):
                hand_over(env, key, value)
    except Exception:
        _logger.warning("mit_network_audit: settings not handed to the collector", exc_info=True)


def signed_head_json(cr):
    """The latest signed head as the collector's JSON (``SignedHead``), from
    the egress view; None before the first signature or without the view."""
    try:
        cr.execute("SELECT to_regclass('public.network_signed_head') IS NOT NULL")
        if not cr.fetchone()[0]:
            return None
        cr.execute("""SELECT database, seq, encode(row_hash, 'hex'), signed_at_us,
                             encode(hmac, 'hex'), encode(signature, 'hex'),
                             encode(public_key, 'hex')
                      FROM public.network_signed_head ORDER BY id DESC LIMIT 1""")
        row = cr.fetchone()
    except Exception:
        _logger.debug("mit_network_audit: no signed head to show", exc_info=True)
        return None
    if row is None:
        return None
    import json

    keys = ("database", "seq", "row_hash", "signed_at_us", "hmac", "signature", "public_key")
    return json.dumps(dict(zip(keys, row)), separators=(",", ":"))


def _follow_registries():
    """Uninstalling the addon from Apps stops capture in every worker of
    this Odoo, without a restart: each worker loads the database's new
    registry at its next request (Odoo's signalling), and once no registry
    of this process has the addon, the interceptor is uninstalled here.
    Server-wide (`server_wide_modules`), the addon cannot be uninstalled
    (README: how to leave server-wide mode)."""
    try:
        from odoo.modules.registry import Registry
    except ImportError:
        return
    original = getattr(Registry.__dict__.get("new"), "__func__", None)
    if original is None or getattr(original, "_mit_network_audit", False):
        return

    def wrapped(cls, *args, **kwargs):
        registry = original(cls, *args, **kwargs)
        try:
            registry_loaded(registry)
        except Exception:
            _logger.debug("mit_network_audit: registry not followed", exc_info=True)
        return registry

    wrapped._mit_network_audit = True
    Registry.new = classmethod(wrapped)


def registry_loaded(registry):
    """Called after Odoo loaded a registry in this process."""
    if state["installed_by"] != "registry" or not installed():
        return
    if "network.egress_log" in registry:
        return
    from odoo.modules.registry import Registry

    loaded = Registry.registries
    # Odoo 17's LRU keeps its mapping in ``d``; 18 and 19's is a mapping.
    loaded = getattr(loaded, "d", loaded)
    if any("network.egress_log" in r for r in list(loaded.values()) if r is not registry):
        return
    stop(f"the addon is no longer installed in {registry.db_name}")


def stop(reason):
    """Uninstalls the interceptor in this process (capture stops at once)."""
    with _lock:
        if interceptor is not None and interceptor.installed():
            interceptor.uninstall()
            _logger.info("mit_network_audit: network audit stopped in this process: %s", reason)
        state.update(installed_by=None, error=None)
        _applied_settings.clear()
