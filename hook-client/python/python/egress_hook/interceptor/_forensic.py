"""Forensic body capture in the worker (docs/WIRE_FORMAT.md §9,
docs/SECURITY.md "Forensic capture"): off unless the collector says so.

The collector writes ``<dir>/<database>.json`` while capture is on for a
database (``dir``: ``forensic/`` beside the ingest socket, or
``$EGRESS_FORENSIC_DIR``); a daemon thread reads the directory every second,
so a worker learns of a switch within about a second, with no connection
from the collector. The file says which calls (host, addon, channel) and
until when; a call outside it, or after that time by this worker's clock,
is never copied.

Rules kept here:

- off costs one dictionary test per call (``SCOPES`` is empty);
- capture never changes a call: it copies bytes the caller handed over or
  that the call already read (``requests`` content, a preloaded ``urllib3``
  body), never reads a stream itself, and never raises;
- each body is capped at the file's ``max_body_bytes``; a longer one is cut
  and flagged, with the SHA-256 of the whole;
- the copy leaves the audited thread at once: a sender thread hands the
  call and its bodies to the transport, which sends the bodies right after
  the call, naming its sequence number.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import sys
import threading
import time

#: database → ``Scope`` while capture is on for it. Changed in place by the
#: poller (whole-key assignments, atomic for readers); empty when off.
SCOPES = {}

POLL_SECONDS = 1.0
#: Captured calls waiting for the sender thread at most; beyond it a call
#: is sent without its bodies (``dropped``).
QUEUE_MAX = 256


class Scope:
    __slots__ = ("host", "addon", "channel", "expires_at_us", "cap", "entry_seq")

    def __init__(self, doc):
        self.host = (doc.get("host") or "").lower() or None
        self.addon = doc.get("addon") or None
        self.channel = (doc.get("channel") or "").lower() or None
        self.expires_at_us = int(doc["expires_at_us"])
        self.cap = max(0, int(doc.get("max_body_bytes", 65536)))
        self.entry_seq = doc.get("entry_seq")


class Capture:
    """The bodies of one call, as copied so far."""

    __slots__ = ("cap", "request", "request_len", "request_hash", "response")

    def __init__(self, cap):
        self.cap = cap
        self.request = None
        self.request_len = 0
        self.request_hash = None
        self.response = None

    def add_request(self, data):
        """Copies a request body (or the next part of one); anything not
        bytes-like or text (a file, a generator) is left alone."""
        try:
            if isinstance(data, str):
                data = data.encode("utf-8", "surrogateescape")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                return
            data = bytes(data)
            if self.request is None:
                self.request = bytearray()
                self.request_hash = hashlib.sha256()
            self.request_len += len(data)
            self.request_hash.update(data)
            room = self.cap - len(self.request)
            if room > 0:
                self.request += data[:room]
        except Exception:
            stats["errors"] += 1

    def set_response(self, data):
        try:
            if isinstance(data, (bytes, bytearray)):
                self.response = bytes(data)
        except Exception:
            stats["errors"] += 1

    def bodies(self):
        """``(part, total_len, truncated, sha256, data)`` per body seen."""
        out = []
        if self.request is not None:
            out.append(("request", self.request_len, self.request_len > len(self.request),
                        self.request_hash.digest(), bytes(self.request)))
        if self.response is not None:
            body = self.response
            out.append(("response", len(body), len(body) > self.cap,
                        hashlib.sha256(body).digest(), body[:self.cap]))
        return out


stats = {"captured": 0, "dropped": 0, "errors": 0, "polls": 0, "pending": 0}


def begin(rec, default_database):
    """A ``Capture`` for ``rec`` when capture is on for its database and the
    call is in scope now; else None."""
    try:
        database = rec.context[0] or default_database
        scope = SCOPES.get(database)
        if scope is None or time.time_ns() // 1000 >= scope.expires_at_us:
            return None
        if scope.channel is not None and scope.channel != rec.channel:
            return None
        if scope.host is not None and scope.host != (rec.host or "").lower():
            return None
        if scope.addon is not None and not _addon_on_stack(scope.addon):
            return None
        return Capture(scope.cap)
    except Exception:
        stats["errors"] += 1
        return None


def _addon_on_stack(addon):
    """Whether a frame of the caller's stack is in a directory named
    ``addon`` (the collector checks its own attribution again before it
    stores anything)."""
    marker = os.sep + addon + os.sep
    frame = sys._getframe(2)
    while frame is not None:
        if marker in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


# -- the state files ------------------------------------------------------

_dir = None
_wake = threading.Event()
_thread = None
_thread_pid = None


def _load():
    fresh = {}
    try:
        with os.scandir(_dir) as entries:
            for entry in entries:
                name = entry.name
                if not name.endswith(".json") or name.startswith("."):
                    continue
                try:
                    with open(entry.path, "rb") as f:
                        doc = json.loads(f.read(65536))
                    database = doc["database"]
                    if name != database + ".json":
                        continue
                    fresh[database] = Scope(doc)
                except Exception:
                    continue
    except OSError:
        pass
    for database in list(SCOPES):
        if database not in fresh:
            SCOPES.pop(database, None)
    SCOPES.update(fresh)
    stats["polls"] += 1


def _poll():
    while _dir is not None:
        _load()
        _wake.wait(POLL_SECONDS)
        _wake.clear()


def start(directory):
    """Polls ``directory`` from a daemon thread (again after a fork)."""
    global _dir, _thread, _thread_pid
    try:
        _dir = os.fspath(directory)
        if _thread is not None and _thread_pid == os.getpid() and _thread.is_alive():
            _wake.set()
            return
        _load()
        _thread = threading.Thread(target=_poll, name="egress-forensic-poll", daemon=True)
        _thread_pid = os.getpid()
        _thread.start()
    except Exception:
        stats["errors"] += 1


def stop():
    global _dir
    _dir = None
    _wake.set()
    SCOPES.clear()


def after_fork():
    """The child inherits no thread: poll again from its own."""
    if _dir is not None:
        start(_dir)


def default_dir(socket_path):
    return (os.environ.get("EGRESS_FORENSIC_DIR")
            or os.path.join(os.path.dirname(os.fspath(socket_path)), "forensic"))


# -- sending ----------------------------------------------------------------

_queue = queue.SimpleQueue()
_sender = None
_sender_pid = None


def submit(client, fields, capture):
    """Hands a captured call to the sender thread; the audited call goes on.
    Never raises; a full queue sends the call at once without its bodies."""
    global _sender, _sender_pid
    try:
        if _queue.qsize() >= QUEUE_MAX:
            stats["dropped"] += 1
            client.send_call(fields)
            return
        stats["pending"] += 1
        _queue.put((client, fields, capture))
        if _sender is None or _sender_pid != os.getpid() or not _sender.is_alive():
            _sender = threading.Thread(target=_send_loop, name="egress-forensic-send",
                                       daemon=True)
            _sender_pid = os.getpid()
            _sender.start()
    except Exception:
        stats["errors"] += 1


def _send_loop():
    while True:
        client, fields, capture = _queue.get()
        try:
            bodies = capture.bodies()
            send = getattr(client, "send_call_forensic", None)
            if send is None or not bodies:
                client.send_call(fields)
            else:
                send(fields, bodies)
                stats["captured"] += 1
        except Exception:
            stats["errors"] += 1
        stats["pending"] -= 1


def drain(timeout=5.0):
    """Waits until the captured calls queued so far are sent (flush, exit)."""
    deadline = time.monotonic() + timeout
    while stats["pending"] > 0 and time.monotonic() < deadline:
        time.sleep(0.005)
