"""The pure-Python sender, used when the native module cannot be loaded.

It mirrors ``egress_hook::HookClient`` (hook-client/src/client.rs, state.rs)
rule for rule, so the collector cannot tell the two apart except by
``Hello.hook_mode``:

- sequence numbers are per (worker, database), from 1, and consumed only when
  the kernel accepted the datagram;
- an event that cannot be sent is counted per (database, reason) and reported
  in a ``Drops`` message, with a cursor per database, on the next accepted
  send once ``drops_report_interval`` has passed, or by ``report_drops()``;
- the socket is non-blocking and unbound; it is connected to the path (a send
  on a connected socket skips the path look-up of every ``sendto``), and a
  send refused because that collector went away (``ECONNREFUSED``,
  ``ENOTCONN``) connects again, to the collector bound at the path by then,
  and is tried once more;
- a forked child starts a new worker (new id, socket, lock, sequences)
  without touching what it inherited (``os.register_at_fork``; the Rust
  client counts forks with ``pthread_atfork``, hook-client/src/forks.rs);
- the socket asks for a 1 MiB send buffer (``SEND_BUFFER_BYTES``), as the
  Rust client does.

No method raises: what goes wrong is counted.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
import weakref

from . import _wire

#: Drop reasons, in the order of ``DropReason`` (reports are sorted by it).
SOCKET_MISSING = "socket_missing"
BUFFER_FULL = "buffer_full"
TOO_LARGE = "too_large"
PERMISSION_DENIED = "permission_denied"
SEND_ERROR = "send_error"
# A sequence number stays at the top of its u64 range, never wraps (the
# collector counts a repeat there as a duplicate).
_SEQ_MAX = 2**64 - 1

_REASON_ORDER = {
    SOCKET_MISSING: 0,
    BUFFER_FULL: 1,
    TOO_LARGE: 2,
    PERMISSION_DENIED: 3,
    SEND_ERROR: 4,
}
_ERRNO_REASON = {
    errno.ENOENT: SOCKET_MISSING,
    errno.ECONNREFUSED: SOCKET_MISSING,
    errno.EAGAIN: BUFFER_FULL,
    errno.EWOULDBLOCK: BUFFER_FULL,
    errno.ENOBUFS: BUFFER_FULL,
    errno.EMSGSIZE: TOO_LARGE,
    errno.EACCES: PERMISSION_DENIED,
    errno.EPERM: PERMISSION_DENIED,
}
#: Entries (counts plus cursors) per ``Drops`` datagram, as state.rs.
REPORT_CHUNK = 40
#: ``SO_SNDBUF`` asked for, as state.rs (``SEND_BUFFER_BYTES``): a datagram
#: stays charged to its sender until the collector reads it, and the kernel's
#: default holds only about 90 calls in flight.
SEND_BUFFER_BYTES = 1 << 20

HOOK_VERSION = "0.1.0"


#: A send on a connected socket whose collector went away (restarted).
_PEER_GONE = (errno.ECONNREFUSED, errno.ENOTCONN)


class _PeerGone(Exception):
    pass


class _Failed(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _random_worker_id():
    while True:
        value = int.from_bytes(os.urandom(8), "little")
        if value:
            return value


def _now_us():
    return time.time_ns() // 1000


def weak_method(obj, name):
    """A function calling ``obj.name()`` while ``obj`` lives: for hooks
    (``os.register_at_fork``, ``atexit``) whose registration cannot be
    undone and must not keep a client alive."""
    ref = weakref.ref(obj)

    def call():
        target = ref()
        if target is not None:
            getattr(target, name)()

    return call


def _count_drop(worker, database, reason):
    key = (database, reason)
    worker.drop_totals[key] = worker.drop_totals.get(key, 0) + 1
    worker.pending[key] = worker.pending.get(key, 0) + 1


class _Worker:
    """One process's sending state; replaced, never reused, after a fork."""

    __slots__ = ("pid", "worker_id", "lock", "sock", "connected", "last_seq", "pending",
                 "drop_totals", "last_report", "sent", "dropped", "dropped_by_reason",
                 "other_sent", "other_dropped", "reports_sent")

    def __init__(self, pid):
        self.pid = pid
        self.worker_id = _random_worker_id()
        self.lock = threading.Lock()
        self.sock = None
        self.connected = False
        self.last_seq = {}
        # Drops not yet carried by an accepted report: they make one due.
        self.pending = {}
        # Running totals since the worker started, never cleared: every
        # report carries them, so a report lost on the way is made good by
        # the next (the Rust client does the same).
        self.drop_totals = {}
        self.last_report = None
        self.sent = 0
        self.dropped = 0
        self.dropped_by_reason = {}
        self.other_sent = 0
        self.other_dropped = 0
        self.reports_sent = 0


class PythonClient:
    """Same interface and semantics as ``egress_hook._native.Client``."""

    hook_mode = "python"

    def __init__(self, socket_path, hook_version=HOOK_VERSION,
                 drops_report_interval=0.1):
        self.socket_path = os.fspath(socket_path)
        self.hook_version = hook_version or HOOK_VERSION
        self.drops_report_interval = drops_report_interval
        self._worker = _Worker(os.getpid())
        # A forked child starts a new worker at once, without touching the
        # inherited state.
        try:
            os.register_at_fork(after_in_child=weak_method(self, "_after_fork"))
        except Exception:  # pragma: no cover - not on this platform
            pass

    # -- worker and fork --------------------------------------------------

    def _after_fork(self):
        # A child must not use its parent's lock (another thread may have
        # held it at fork time) nor its socket and sequences.
        self._worker = _Worker(os.getpid())

    def _current(self):
        # Replaced in a forked child by the at-fork hook registered in
        # __init__ (every fork that runs Python code runs it): no getpid()
        # system call per event.
        return self._worker

    def worker_id(self):
        return self._current().worker_id

    # -- sending ----------------------------------------------------------

    def _transmit(self, worker, data):
        fresh = not worker.connected
        try:
            self._send_connected(worker, data)
        except _PeerGone:
            if fresh:
                raise _Failed(SOCKET_MISSING) from None
            # The collector this socket was connected to is gone: connect to
            # the one bound at the path now, if any, and try once more.
            worker.connected = False
            try:
                self._send_connected(worker, data)
            except _PeerGone:
                raise _Failed(SOCKET_MISSING) from None

    def _send_connected(self, worker, data):
        sock = worker.sock
        if sock is None:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
            except Exception:
                raise _Failed(SEND_ERROR) from None
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            except OSError:
                pass  # the kernel's default still works
            worker.sock = sock
        try:
            if not worker.connected:
                sock.connect(self.socket_path)
                worker.connected = True
            sent = sock.send(data)
        except OSError as e:
            if worker.connected and e.errno in _PEER_GONE:
                raise _PeerGone() from None
            raise _Failed(_ERRNO_REASON.get(e.errno, SEND_ERROR)) from None
        except Exception:
            raise _Failed(SEND_ERROR) from None
        if sent != len(data):
            raise _Failed(SEND_ERROR)

    def _target(self, fields):
        """The worker and the database name as the wire carries it."""
        worker = self._current()
        database = fields[0]
        # 63 characters are at most 252 bytes: no cut, no copy (the
        # common case; PostgreSQL names are at most 63 bytes).
        if not (type(database) is str and len(database) <= 63):
            database = _wire.utf8(database, _wire.DATABASE_MAX).decode("utf-8")
            fields = (database,) + tuple(fields[1:])
        return worker, database, fields

    def send_call(self, fields):
        """``fields``: the ``Call`` fields after ``worker_id`` and ``seq``, in
        wire order, the trigger flattened into ``kind, name, uid``."""
        try:
            worker, database, fields = self._target(fields)
        except Exception:
            return
        with worker.lock:
            self._send_call(worker, database, fields)

    def _send_call(self, worker, database, fields):
        """Sends under ``worker.lock``; the sequence number the kernel
        accepted, or None."""
        try:
            seq = min(worker.last_seq.get(database, 0) + 1, _SEQ_MAX)
            try:
                data = _wire.encode_call(worker.worker_id, seq, fields)
            except _wire.EncodeError:
                raise _Failed(TOO_LARGE) from None
            except Exception:
                raise _Failed(SEND_ERROR) from None
            self._transmit(worker, data)
        except _Failed as failed:
            self._count_call_drop(worker, database, failed.reason)
            return None
        except Exception:
            self._count_call_drop(worker, database, SEND_ERROR)
            return None
        worker.last_seq[database] = seq
        worker.sent += 1
        self._report_if_due(worker)
        return seq

    def send_call_forensic(self, fields, bodies):
        """``send_call``, then, when the kernel accepted the call, the bodies
        forensic capture copied from it as ``ForensicBody`` chunks naming its
        sequence number (under the same lock, so no other call can take it
        in between). ``bodies``: ``(part, total_len, truncated, sha256,
        data)`` tuples. A refused chunk is counted with the other messages
        and ends its body (the collector drops an incomplete one)."""
        try:
            worker, database, fields = self._target(fields)
        except Exception:
            return
        with worker.lock:
            seq = self._send_call(worker, database, fields)
            if seq is None:
                return
            for part, total_len, truncated, sha256, data in bodies:
                try:
                    datagrams = _wire.forensic_datagrams(
                        worker.worker_id, database, seq, part, total_len, truncated,
                        sha256, data)
                    for datagram in datagrams:
                        self._transmit(worker, datagram)
                        worker.other_sent += 1
                except Exception:
                    worker.other_dropped += 1

    def _count_call_drop(self, worker, database, reason):
        worker.dropped += 1
        worker.dropped_by_reason[reason] = worker.dropped_by_reason.get(reason, 0) + 1
        _count_drop(worker, database, reason)

    def _send_other(self, worker, encode, database):
        try:
            try:
                data = encode()
            except _wire.EncodeError:
                raise _Failed(TOO_LARGE) from None
            except Exception:
                raise _Failed(SEND_ERROR) from None
            self._transmit(worker, data)
        except _Failed as failed:
            worker.other_dropped += 1
            # A lost Hello (database None) is no lost event: not reported.
            if database is not None:
                _count_drop(worker, database, failed.reason)
            return
        worker.other_sent += 1
        self._report_if_due(worker)

    def send_hello(self, fields):
        """``fields``: ``(odoo_version, python_version, addons_paths, databases)``."""
        try:
            worker = self._current()
            odoo_version, python_version, addons_paths, databases = fields
            with worker.lock:
                self._send_other(
                    worker,
                    lambda: _wire.encode_hello(
                        worker.worker_id, worker.pid, _now_us(), odoo_version,
                        python_version, self.hook_mode, self.hook_version,
                        addons_paths, databases),
                    None)
        except Exception:
            pass

    def send_config_change(self, fields):
        """``fields``: the ``ConfigChange`` fields after ``worker_id``."""
        try:
            worker = self._current()
            database = _wire.utf8(fields[0], _wire.DATABASE_MAX).decode("utf-8")
            fields = (database,) + tuple(fields[1:])
            with worker.lock:
                self._send_other(
                    worker,
                    lambda: _wire.encode_config_change(worker.worker_id, fields),
                    database)
        except Exception:
            pass

    # -- drop reports -----------------------------------------------------

    def _report_if_due(self, worker):
        if not worker.pending:
            return
        last = worker.last_report
        if last is not None and time.monotonic() - last < self.drops_report_interval:
            return
        self._report(worker)

    def _report(self, worker):
        worker.last_report = time.monotonic()
        keys = sorted(worker.drop_totals,
                      key=lambda k: (k[0].encode("utf-8"), _REASON_ORDER.get(k[1], 9)))
        cursors = sorted(worker.last_seq.items(), key=lambda c: c[0].encode("utf-8"))
        ki = ci = 0
        while True:
            chunk_keys = keys[ki:ki + REPORT_CHUNK]
            ki += len(chunk_keys)
            room = REPORT_CHUNK - len(chunk_keys)
            chunk_cursors = cursors[ci:ci + room]
            ci += len(chunk_cursors)
            last = ki >= len(keys) and ci >= len(cursors)
            counts = [(db, reason, worker.drop_totals.get((db, reason), 0))
                      for db, reason in chunk_keys]
            try:
                data = _wire.encode_drops(worker.worker_id, counts, chunk_cursors)
                self._transmit(worker, data)
            except Exception:
                # The rest would meet the same refusal; they stay pending.
                return False
            worker.reports_sent += 1
            for key in chunk_keys:
                worker.pending.pop(key, None)
            if last:
                return True

    def report_drops(self):
        """Sends a ``Drops`` report now; whether the kernel accepted all of it."""
        try:
            worker = self._current()
            with worker.lock:
                return self._report(worker)
        except Exception:
            return False

    def stats(self):
        try:
            worker = self._current()
            with worker.lock:
                return {
                    "sent": worker.sent,
                    "dropped": worker.dropped,
                    "dropped_by_reason": dict(worker.dropped_by_reason),
                    "pending_drops": sum(worker.pending.values()),
                    "other_sent": worker.other_sent,
                    "other_dropped": worker.other_dropped,
                    "reports_sent": worker.reports_sent,
                }
        except Exception:
            return {}
