"""What every channel shares: settings, the context slot, the event record,
stack capture, the active-record slot that makes one event per logical call,
patching, and the one place events leave (``emit``).

Fail-open rules kept here (DESIGN §1.1):

- the interceptor's own code runs under ``except Exception`` and counts what
  it swallows (``errors``); ``BaseException`` (KeyboardInterrupt, SystemExit)
  is never swallowed;
- an audited call's own exception is re-raised as is (``raise``), after the
  event recorded its class name;
- nothing is printed, ever.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import sys
import threading
import time

from . import _forensic, _layout

#: database → scope while forensic capture is on (``_forensic.SCOPES``, the
#: same dict): empty, the one test a call pays for capture being off.
_SCOPES = _forensic.SCOPES

# The package's own directory: its frames are left out of stacks.
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

CHANNELS = ("http", "smtp", "imap", "pop3", "socket", "dns")
#: The channels whose hooks own a logical call: the connections they open
#: are theirs, never reported as ``socket``. When one is disabled its hooks
#: still claim its calls (so the raw-socket hook stays out) and send nothing.
CLAIMING = ("http", "smtp", "imap", "pop3")


class Settings:
    """What the interceptor does, checked before any work on every call.

    ``enabled``: the master switch (off: nothing is captured or sent).
    ``disabled_channels``: channel names whose calls leave no event of any
    kind (a set, or a comma-separated string as Odoo stores it); a disabled
    high-level channel still owns its connections, so they are not reported
    as ``socket`` either, and disabling ``socket`` stops only raw sockets no
    high-level hook owns. ``strict``: strict redaction at capture (what
    ``Record.fields`` masks, docs/REDACTION.md). ``stack_depth``: frames
    kept per event, innermost first.

    A change made with ``update`` applies to every call that starts after
    ``update`` returns, in every thread (a call already under way keeps the
    settings it started with).
    """

    __slots__ = ("enabled", "disabled_channels", "strict", "stack_depth")

    def __init__(self):
        self.enabled = True
        self.disabled_channels = frozenset()
        self.strict = False
        self.stack_depth = 16

    def update(self, enabled=None, disabled_channels=None, stack_depth=None, strict=None):
        """Changes settings; takes effect on the next call of every thread.
        Unknown channel names raise ``ValueError`` (nothing is changed)."""
        if disabled_channels is not None:
            if isinstance(disabled_channels, str):
                disabled_channels = disabled_channels.replace(";", ",").split(",")
            disabled_channels = frozenset(
                c.strip().lower() for c in disabled_channels if c and c.strip())
            unknown = sorted(disabled_channels - set(CHANNELS))
            if unknown:
                raise ValueError(f"unknown channel(s) {', '.join(unknown)}: "
                                 f"use {', '.join(CHANNELS)}")
        if enabled is not None:
            self.enabled = bool(enabled)
        if strict is not None:
            self.strict = bool(strict)
        if disabled_channels is not None:
            self.disabled_channels = disabled_channels
        if stack_depth is not None:
            self.stack_depth = max(0, min(int(stack_depth), 64))
        _refresh()

    def is_on(self, channel):
        return ON.get(channel, False)

    def __repr__(self):
        return (f"Settings(enabled={self.enabled!r}, disabled_channels="
                f"{sorted(self.disabled_channels)!r}, strict={self.strict!r}, "
                f"stack_depth={self.stack_depth!r})")


settings = Settings()

#: channel → whether its hooks do any work. Read by every hook first; False
#: for every channel while nothing is installed or the master switch is off.
#: A disabled claiming channel stays on here and is ``MUTED``.
ON = dict.fromkeys(CHANNELS + ("bytes",), False)
#: channel → whether its calls are claimed but never sent (disabled).
MUTED = dict.fromkeys(CHANNELS, False)


class _State:
    client = None
    #: ``client.queue_call`` where there is one, else ``client.send_call``.
    send = None
    database = ""
    installed = False
    errors = 0
    pid = os.getpid()
    hello_pid = 0
    hello_at = 0  # time.perf_counter_ns() of the last Hello
    worker_info = ("", [], [])  # odoo_version, addons_paths, databases
    #: ``(key, fields)`` of the last Hello (``_hello_fields``).
    hello_cache = None


state = _State()


def _refresh():
    live = state.installed and state.client is not None and settings.enabled
    for channel in CHANNELS:
        disabled = channel in settings.disabled_channels
        ON[channel] = live and (not disabled or channel in CLAIMING)
        MUTED[channel] = live and disabled
    # Byte counting serves every channel but dns: one look-up per socket I/O.
    ON["bytes"] = any(ON[c] for c in ("http", "smtp", "imap", "pop3", "socket"))


def count_error():
    """An error of the interceptor itself, swallowed."""
    try:
        state.errors += 1
    except Exception:  # pragma: no cover
        pass


# -- context slot ---------------------------------------------------------

class Context(tuple):
    """``(database, trigger_kind, trigger_name, uid)`` of the work in progress."""

    __slots__ = ()

    def __new__(cls, database="", trigger_kind="", trigger_name="", uid=None):
        return tuple.__new__(cls, (database or "", trigger_kind or "",
                                   trigger_name or "", uid))

    database = property(lambda self: self[0])
    trigger_kind = property(lambda self: self[1])
    trigger_name = property(lambda self: self[2])
    uid = property(lambda self: self[3])


class LazyContext:
    """The context of work that may make no call at all (most Odoo requests):
    its trigger kind is known at once, while its database, trigger name and
    user are asked of ``describe(subject)`` only when a call is captured, once
    (``set_lazy_context``). ``describe`` returns ``(database, trigger_name,
    uid)``; if it fails, the call keeps the trigger kind alone."""

    __slots__ = ("trigger_kind", "describe", "subject", "value")

    def __init__(self, trigger_kind, describe, subject):
        self.trigger_kind = trigger_kind
        self.describe = describe
        self.subject = subject
        self.value = None

    def resolve(self):
        value = self.value
        if value is None:
            try:
                database, trigger_name, uid = self.describe(self.subject)
                value = Context(database, self.trigger_kind, trigger_name, uid)
            except Exception:
                count_error()
                value = Context("", self.trigger_kind)
            self.value = value
            self.subject = None  # what it named may now be freed
        return value


_EMPTY = Context()
_context = contextvars.ContextVar("egress_hook_context", default=_EMPTY)


def set_context(database="", trigger_kind="", trigger_name="", uid=None):
    """Sets the database and trigger of the current thread or task (what the
    Odoo glue fills for a request, cron or queue job); returns a token for
    ``reset_context``."""
    return _context.set(Context(database, trigger_kind, trigger_name, uid))


def set_lazy_context(trigger_kind, describe, subject):
    """``set_context`` for work that may make no call: nothing but the
    trigger kind is looked up until a call is captured (``LazyContext``)."""
    return _context.set(LazyContext(trigger_kind, describe, subject))


def reset_context(token):
    _context.reset(token)


def current_context():
    ctx = _context.get()
    return ctx if ctx.__class__ is Context else ctx.resolve()


def current_trigger_kind():
    """The trigger kind of the work in progress, without resolving a lazy
    context."""
    return _context.get().trigger_kind


# -- records --------------------------------------------------------------

class Record:
    """One logical call being observed; becomes one ``Call`` event."""

    __slots__ = ("context", "started_at_us", "t0", "channel", "protocol",
                 "method", "host", "port", "path", "query_keys", "header_names",
                 "src_ip", "src_port", "dst_ip", "dst_port", "tls", "status",
                 "error_class", "bytes_out", "bytes_in", "digest", "stack",
                 "done", "commands", "hasher", "collect_headers", "forensic", "muted",
                 "strict")

    def __init__(self, channel, protocol, method, host, port, stack):
        # The settings in force when the call starts are the call's.
        self.muted = MUTED.get(channel, False)
        self.strict = settings.strict
        ctx = _context.get()
        self.context = ctx if ctx.__class__ is Context else ctx.resolve()
        self.started_at_us = time.time_ns() // 1000
        self.t0 = time.perf_counter_ns()
        self.channel = channel
        self.protocol = protocol
        self.method = method
        self.host = host
        self.port = port
        self.path = ""
        self.query_keys = ()
        self.header_names = ()
        self.src_ip = ""
        self.src_port = 0
        self.dst_ip = ""
        self.dst_port = 0
        self.tls = False
        self.status = None
        self.error_class = ""
        self.bytes_out = 0
        self.bytes_in = 0
        self.digest = None
        self.stack = stack
        self.done = False
        self.commands = None
        self.hasher = None
        self.collect_headers = False
        self.forensic = _forensic.begin(self, state.database) if _SCOPES else None

    def failed(self, error):
        try:
            self.error_class = type(error).__name__
        except Exception:  # pragma: no cover
            count_error()

    def fields(self):
        ctx = self.context
        duration = (time.perf_counter_ns() - self.t0) // 1000
        digest = self.digest
        if digest is None and self.hasher is not None and self.bytes_out:
            digest = self.hasher.digest()
        port = self.port
        if self.strict:
            return self._strict_fields(ctx, duration, port)
        return (
            ctx[0] or state.database, self.started_at_us, duration,
            self.channel, self.protocol, "outbound", self.method,
            self.host or "", port if 0 <= port < 65536 else 0, self.path,
            self.query_keys, self.header_names, self.src_ip, self.src_port,
            self.dst_ip, self.dst_port, self.tls, self.status, self.error_class,
            self.bytes_out, self.bytes_in, digest, self.stack, ctx[1], ctx[2],
            ctx[3],
        )


    def _strict_fields(self, ctx, duration, port):
        """Strict redaction at capture (docs/REDACTION.md): the destination
        (host, IPs, ports), sizes, timing, TLS and the source address are
        sent; method, path, query keys, header names, status, error class,
        payload digest, trigger and Odoo user are not. The stack travels as
        file paths only (no function, no line), because the collector
        attributes the call to its addon from them; it stores no stack."""
        stack = self.stack
        if not isinstance(stack, list):  # a native Stack captured before strict
            stack = []
        return (
            ctx[0] or state.database, self.started_at_us, duration,
            self.channel, self.protocol, "outbound", "",
            self.host or "", port if 0 <= port < 65536 else 0, "", (), (),
            self.src_ip, self.src_port, self.dst_ip, self.dst_port, self.tls,
            None, "", self.bytes_out, self.bytes_in, None,
            [(f[0], "", 0) for f in stack], "", "", None,
        )


def sha256(data):
    """Digest of a request payload, or None when it is not bytes-like/str
    (a file or a generator is never read by the interceptor)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return hashlib.sha256(data).digest()
    return None


# (code, instruction offset) → (file, function, line): the same call sites
# recur, and computing a line number scans the code's line table. The keys
# hold their code objects, so an entry can never describe another function.
_FRAMES_MAX = 8192
_frames = {}


#: ``egress_hook._native.capture_stack`` while the native sender is in use
#: (``install`` sets it): the same frames, found and formatted in Rust, in a
#: ``Stack`` the native sender takes as it is. The pure-Python transport keeps
#: the pure-Python capture below.
native_capture = None


def capture_stack(channel=None):
    """Frames of the caller, innermost first, without the interceptor's own,
    at most ``settings.stack_depth``; none for a muted ``channel``. Under
    strict redaction, file paths only (``Record._strict_fields``)."""
    if channel is not None and MUTED[channel]:
        return []
    depth = settings.stack_depth
    if settings.strict:
        return [(f[0], "", 0) for f in _python_stack(depth)]
    if native_capture is not None:
        return native_capture(depth, _OWN_DIR)
    return _python_stack(depth)


def _python_stack(depth):
    out = []
    if not depth:
        return out
    append = out.append
    frames = _frames
    own = _OWN_DIR
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        key = (code, frame.f_lasti)
        entry = frames.get(key)
        if entry is None:
            file = code.co_filename
            # () marks the interceptor's own frames, left out.
            entry = () if file.startswith(own) else (file, code.co_name, frame.f_lineno or 0)
            if len(frames) >= _FRAMES_MAX:
                frames.clear()
            frames[key] = entry
        if entry:
            append(entry)
            if len(out) >= depth:
                break
        frame = frame.f_back
    return out


# -- the active record: one event per logical call -------------------------

class _Active(threading.local):
    # The default for every thread as a class attribute: a thread that never
    # set one finds it without the AttributeError that getattr(local, "rec",
    # None) raises and catches inside (650 ns against 80 per look-up here).
    rec = None


_local = _Active()


def active():
    """The record of the logical call this thread is inside, if any: lower
    layers add to it instead of reporting calls of their own."""
    return _local.rec


def activate(rec):
    _local.rec = rec


def deactivate():
    _local.rec = None


# -- emitting -------------------------------------------------------------

#: Events of objects the garbage collector reclaimed (a socket or a mail
#: session never closed). A collection can run anywhere, even inside the
#: pure-Python sender while it holds its lock, so those events wait here and
#: leave with the next event, ``flush`` or exit.
_deferred = []


def defer(rec):
    """``emit`` for a garbage-collection callback: never sends from there."""
    try:
        _deferred.append(rec)
    except Exception:  # pragma: no cover
        count_error()


def drain_deferred():
    while _deferred:
        try:
            rec = _deferred.pop()
        except IndexError:  # another thread took the last one
            return
        emit(rec)


def emit(rec):
    """Sends ``rec`` once. Never raises."""
    try:
        if rec.done:
            return
        rec.done = True
        client = state.client
        if client is None or rec.muted:
            return
        if _deferred:
            drain_deferred()
        # state.pid is refreshed after a fork (os.getpid() is a system call,
        # too dear for every event); the call's own start is the clock read.
        if state.hello_pid != state.pid or rec.t0 - state.hello_at > _HELLO_EVERY_NS:
            send_hello(client, state.pid, rec.t0)
        if rec.forensic is not None:
            # Its bodies follow the call, from the forensic sender thread.
            _forensic.submit(client, rec.fields(), rec.forensic)
            return
        # The native sender sends a lone call at once and queues calls that
        # come close together for its sender thread, which sends them in
        # batches (waking a thread per call would cost more than a send).
        state.send(rec.fields())
    except Exception:
        count_error()


#: A ``Hello`` is sent again by the first event this long after the last.
_HELLO_EVERY_NS = 60 * 1_000_000_000


def send_hello(client, pid=None, now=None):
    """A ``Hello`` now, and every minute after (DESIGN §3), with the drops
    not yet reported. ``now``: ``time.perf_counter_ns()``, if known."""
    try:
        state.hello_pid = pid or os.getpid()
        state.hello_at = now or time.perf_counter_ns()
        client.send_hello(_hello_fields())
        client.report_drops()
    except Exception:
        count_error()


def _hello_fields():
    """What a ``Hello`` says, found once per worker information and module
    path: where Odoo's core, addons and libraries live (so that the collector
    knows a frame's origin instead of guessing it from folder names) costs
    a ``realpath`` of every entry, 0.6 ms in an Odoo worker, which the call
    that happens to send the minute's ``Hello`` would otherwise pay."""
    info = state.worker_info
    key = (info, len(sys.path), "odoo" in sys.modules)
    cached = state.hello_cache
    if cached is not None and cached[0] == key:
        return cached[1]
    odoo_version, addons_paths, databases = info
    fields = (odoo_version, sys.version.split()[0], _layout.announced(addons_paths),
              list(databases))
    state.hello_cache = (key, fields)
    return fields


def _wrap_exit(orig):
    """``os._exit`` skips ``atexit``: the calls still queued for the native
    sender thread leave first (a forked child often ends this way)."""

    def _exit(status):
        try:
            client = state.client
            if client is not None and state.installed:
                drain_deferred()
                flush = getattr(client, "flush", None)
                if flush is not None:
                    flush()
        except Exception:
            count_error()
        return orig(status)

    return _exit


# -- patching -------------------------------------------------------------

_patches = []  # (owner, name, original or _ABSENT, wrapper)
_ABSENT = object()


def patch(owner, name, make_wrapper):
    """Replaces ``owner.name`` by ``make_wrapper(original)``, remembering the
    original (or its absence from ``owner.__dict__``) for ``unpatch_all``."""
    try:
        current = getattr(owner, name)
        wrapper = make_wrapper(current)
        wrapper.__egress_original__ = current
        try:
            wrapper.__name__ = getattr(current, "__name__", name)
            wrapper.__qualname__ = getattr(current, "__qualname__", name)
            wrapper.__doc__ = getattr(current, "__doc__", None)
        except Exception:  # pragma: no cover
            pass
        own = owner.__dict__.get(name, _ABSENT) if hasattr(owner, "__dict__") else current
        setattr(owner, name, wrapper)
        _patches.append((owner, name, own, wrapper))
    except Exception:
        count_error()


def unpatch_all():
    while _patches:
        owner, name, original, wrapper = _patches.pop()
        try:
            if getattr(owner, name, None) is not wrapper:
                # Someone patched over us: leave theirs, it holds ours as its
                # original and ours passes through once uninstalled.
                continue
            if original is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        except Exception:
            count_error()
