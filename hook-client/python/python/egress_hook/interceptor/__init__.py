"""egress_hook.interceptor: captures every outbound network call of this
Python process as metadata and hands it to egress-collector. Pure Python,
with no Odoo import: the Odoo addon only fills the context and settings.

Layout:

- ``_core``: settings, the context slot, the event record, stack capture,
  the active-record slot (one event per logical call), patching, ``emit``;
- ``_http``: ``requests``, ``urllib3``, ``http.client`` (so ``urllib.request``
  and ``xmlrpc.client`` too);
- ``_mail``: ``smtplib``, ``imaplib``, ``poplib`` sessions;
- ``_net``: raw ``socket`` connections and UDP, ``getaddrinfo`` (``dns``),
  TLS wrapping, and the byte counting every channel relies on;
- ``_forensic``: forensic body capture, off unless the collector's state
  file for the database says otherwise.

Public API (stable, see the package README): ``install``, ``uninstall``,
``installed``, ``settings``, ``set_context``, ``set_lazy_context``,
``reset_context``, ``current_context``, ``current_trigger_kind``,
``context``, ``set_worker_info``, ``config_changed``, ``flush``, ``stats``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time

from . import _core, _forensic, _http, _mail, _net
from ._core import (CHANNELS, Context, LazyContext, current_context, current_trigger_kind,
                    reset_context, set_context, set_lazy_context, settings, state)

__all__ = ["CHANNELS", "Context", "LazyContext", "config_changed", "context",
           "current_context", "current_trigger_kind", "flush", "install", "installed",
           "reset_context", "set_context", "set_lazy_context", "set_worker_info", "settings",
           "stats", "uninstall"]

_lock = threading.RLock()
_fork_registered = False


def install(socket=None, database=None, *, transport=None):
    """Patches every channel and starts sending events; idempotent.

    ``socket``: the collector's ingest socket (default ``$EGRESS_SOCKET``,
    then ``/run/egress-collector/ingest.sock``); nothing fails if it is
    absent. ``database``: the database named by events whose context names
    none. ``transport``: ``"native"`` (default when available), ``"python"``,
    or a client object with the same methods (tests). Returns whether the
    interceptor is installed; it never raises.
    """
    global _fork_registered
    try:
        with _lock:
            import egress_hook

            if transport is None or transport == "native":
                client = egress_hook.client(socket)
            elif transport == "python":
                client = egress_hook.PythonClient(
                    os.fspath(socket or os.environ.get("EGRESS_SOCKET")
                              or egress_hook.DEFAULT_SOCKET_PATH))
            else:
                client = transport
            state.send = getattr(client, "queue_call", None) or client.send_call
            state.client = client
            native = egress_hook._native
            _core.native_capture = (
                native.capture_stack
                if native is not None and isinstance(client, native.Client) else None)
            if database is not None:
                state.database = database
            _forensic.start(_forensic.default_dir(
                socket or os.environ.get("EGRESS_SOCKET") or egress_hook.DEFAULT_SOCKET_PATH))
            if not state.installed:
                _core.patch(os, "_exit", _core._wrap_exit)
                _net.install()
                _http.install()
                _mail.install()
                state.installed = True
            if not _fork_registered:
                os.register_at_fork(after_in_child=_after_fork)
                atexit.register(_at_exit)
                _fork_registered = True
            _core._refresh()
            _core.send_hello(client)
            return True
    except Exception:
        _core.count_error()
        return False


def uninstall():
    """Restores every original; idempotent. Events already sent stay sent."""
    try:
        with _lock:
            if state.installed:
                state.installed = False
                _core._refresh()
                _core.unpatch_all()
                _net._tracked.clear()
                _forensic.stop()
            client = state.client
            if client is not None:
                _core.drain_deferred()
                client.report_drops()
    except Exception:
        _core.count_error()


def installed():
    return state.installed


def _after_fork():
    # The client starts a new worker by itself (pid check); the child also
    # forgets the parent's raw connections and says hello on its first event.
    try:
        _net._tracked.clear()
        _core._deferred.clear()
        state.pid = os.getpid()
        state.hello_pid = 0
        _core.deactivate()
        _forensic.after_fork()
    except Exception:
        _core.count_error()


def _at_exit():
    client = state.client
    if client is not None and state.installed:
        try:
            _core.drain_deferred()
            _forensic.drain()
            client.report_drops()
        except Exception:
            pass


@contextlib.contextmanager
def context(database="", trigger_kind="", trigger_name="", uid=None):
    """``with context("db", "cron", "Mail: queue", uid=1): ...``"""
    token = set_context(database, trigger_kind, trigger_name, uid)
    try:
        yield
    finally:
        reset_context(token)


def set_worker_info(odoo_version=None, addons_paths=None, databases=None):
    """What the next ``Hello`` says about this worker (sent now if installed)."""
    try:
        old = state.worker_info
        state.worker_info = (
            old[0] if odoo_version is None else str(odoo_version),
            old[1] if addons_paths is None else [str(p) for p in addons_paths],
            old[2] if databases is None else [str(d) for d in databases],
        )
        if state.installed and state.client is not None:
            _core.send_hello(state.client)
    except Exception:
        _core.count_error()


def config_changed(database, key, old_value, new_value, user_login="", uid=None):
    """Journals a change of an audit setting (DESIGN §3 ``ConfigChange``)."""
    try:
        client = state.client
        if client is not None:
            client.send_config_change((database or state.database,
                                       time.time_ns() // 1000, key, old_value,
                                       new_value, user_login or "", uid))
    except Exception:
        _core.count_error()


def flush():
    """Sends the drops not yet reported (and every sequence cursor) now;
    returns whether the collector's socket took them. Never raises."""
    try:
        _core.drain_deferred()
        _forensic.drain()
        client = state.client
        return bool(client is not None and client.report_drops())
    except Exception:
        _core.count_error()
        return False


def stats():
    """The transport's counters plus ``interceptor_errors`` (swallowed
    errors of the interceptor) and ``mode`` (native or python)."""
    out = {}
    try:
        client = state.client
        if client is not None:
            out.update(client.stats())
            out["mode"] = getattr(client, "hook_mode", "native")
            out["worker_id"] = client.worker_id()
        out["interceptor_errors"] = state.errors
        out["forensic"] = dict(_forensic.stats, active=sorted(_forensic.SCOPES))
        import egress_hook

        native = getattr(egress_hook, "_native", None)
        out["native_errors"] = native.errors() if native is not None else 0
    except Exception:
        _core.count_error()
    return out
