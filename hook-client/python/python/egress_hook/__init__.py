"""egress_hook: hands the metadata of a Python process's outbound network
calls to egress-collector, without ever disturbing the calls.

Layout:

- ``_native``: the Rust sender (``egress_hook::HookClient``, via PyO3), when
  it could be built and loaded;
- ``_transport``: the pure-Python sender with the same semantics, used
  otherwise (the fallback is logged once, never printed);
- ``_wire``: the pure-Python encoder of the datagram frame;
- ``interceptor``: the patches that capture calls (pure Python, no Odoo).

Public API: ``client(socket_path)``, ``native_available()``,
``DEFAULT_SOCKET_PATH`` and ``egress_hook.interceptor``.
"""

from __future__ import annotations

import atexit
import logging
import os

from ._transport import HOOK_VERSION, PythonClient, weak_method

__all__ = ["DEFAULT_SOCKET_PATH", "PythonClient", "client", "native_available",
           "__version__"]
__version__ = HOOK_VERSION

#: Where the collector listens unless configured otherwise.
DEFAULT_SOCKET_PATH = "/run/egress-collector/ingest.sock"

_log = logging.getLogger("egress_hook")
# A library must not print: without this, Python's last-resort handler would
# write our one warning to stderr of an application that configured nothing.
_log.addHandler(logging.NullHandler())

try:
    from . import _native
except Exception as error:  # ImportError, or a broken build
    _native = None
    _native_error = f"{type(error).__name__}: {error}"
else:
    _native_error = None

_fallback_logged = False


def native_available() -> bool:
    """Whether the native (Rust) sender was loaded."""
    return _native is not None


def client(socket_path=None, prefer_native=True):
    """A sender for ``socket_path`` (default: ``$EGRESS_SOCKET``, then
    ``DEFAULT_SOCKET_PATH``): the native one when available and preferred,
    else the pure-Python one. Never raises for a missing socket: nothing is
    opened until the first send."""
    global _fallback_logged
    path = os.fspath(socket_path or os.environ.get("EGRESS_SOCKET") or DEFAULT_SOCKET_PATH)
    reason = None
    if prefer_native:
        if _native is not None:
            try:
                native = _native.Client(path, HOOK_VERSION)
            except Exception as error:  # pragma: no cover - a broken build
                reason = f"{type(error).__name__}: {error}"
            else:
                _keep_queue_safe(native)
                return native
        else:
            reason = _native_error
    if reason and not _fallback_logged:
        _fallback_logged = True
        _log.warning("egress_hook: native module unavailable (%s); using the "
                     "pure-Python transport.", reason)
    return PythonClient(path, HOOK_VERSION)


def _keep_queue_safe(native):
    """Calls queued with ``queue_call`` leave at exit, and the sender thread
    is ended before a fork (the child inherits no thread, and Python 3.12+
    sees a single-threaded process), restarting on the next queued call."""
    try:
        os.register_at_fork(before=weak_method(native, "stop_sender"))
        atexit.register(weak_method(native, "flush"))
    except Exception:  # pragma: no cover - not on this platform
        pass
