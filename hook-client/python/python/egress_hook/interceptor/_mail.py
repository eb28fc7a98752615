"""The ``smtp``, ``imap`` and ``pop3`` channels: one event per session, from
connect to close (``quit``, ``logout``, ``close``, or garbage collection).

An event keeps the protocol's command verbs and reply codes, in order, as
its ``path`` (``EHLO:250 STARTTLS:220 ... DATA:250 QUIT:221``), the bytes
both ways, the TLS flag (``SMTP_SSL``, ``IMAP4_SSL``, ``POP3_SSL``, STARTTLS,
STLS) and, for SMTP, the SHA-256 of the messages sent. Never an address, a
credential, a mailbox name or a message: only verbs from a fixed list are
kept, anything else a client sends (an AUTH continuation) is ``*``.
"""

from __future__ import annotations

import hashlib
import imaplib
import poplib
import smtplib
import weakref

from . import _core
from ._core import (ON, Record, activate, active, capture_stack, count_error,
                    emit)

_REC = "_egress_rec"
#: Most command entries kept in ``path``; later ones are counted as ``+N``.
MAX_COMMANDS = 48

SMTP_VERBS = frozenset({"HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET",
                        "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS",
                        "AUTH", "ETRN", "TURN"})
POP3_VERBS = frozenset({"USER", "PASS", "APOP", "STAT", "LIST", "RETR", "DELE",
                        "NOOP", "RSET", "QUIT", "TOP", "UIDL", "CAPA", "STLS",
                        "UTF8", "RPOP", "AUTH"})
_SETUP = frozenset({"EHLO", "HELO", "STARTTLS", "AUTH", "CAPABILITY", "LOGIN",
                    "AUTHENTICATE", "USER", "PASS", "APOP", "STLS", "CAPA",
                    "QUIT", "LOGOUT", "NOOP", "*"})


class _Session:
    """Per-session extras: commands and replies, messages digest."""

    __slots__ = ("entries", "extra", "hasher", "finalizer")

    def __init__(self):
        self.entries = []
        self.extra = 0
        self.hasher = None
        self.finalizer = None


def _add_command(rec, verb):
    session = rec.commands
    if len(session.entries) < MAX_COMMANDS:
        session.entries.append([verb, ""])
    else:
        session.extra += 1


def _reply(rec, code):
    session = rec.commands
    if session.entries and not session.entries[-1][1]:
        session.entries[-1][1] = code
    elif len(session.entries) < MAX_COMMANDS:
        session.entries.append(["", code])  # a greeting
    if code.isdigit():
        rec.status = int(code)


def _finish(rec, later=False):
    """Builds method and path from the session, then sends the event."""
    try:
        if rec.done:
            return
        session = rec.commands
        parts = [f"{verb}:{code}" if verb and code else (verb or code)
                 for verb, code in session.entries]
        if session.extra:
            parts.append(f"+{session.extra}")
        rec.path = " ".join(parts)
        verbs = [verb for verb, _ in session.entries if verb]
        work = [verb for verb in verbs if verb not in _SETUP]
        rec.method = (work[0] if work else (verbs[0] if verbs else "connect"))
        if session.hasher is not None:
            rec.digest = session.hasher.digest()
        if session.finalizer is not None and not later:
            session.finalizer.detach()
    except Exception:
        count_error()
    if later:
        _core.defer(rec)
    else:
        emit(rec)


def _finish_later(rec):
    try:
        _finish(rec, later=True)
    except Exception:
        count_error()


def _open(channel, protocol, tls, host, port, obj):
    rec = Record(channel, protocol, "connect", host, port, capture_stack(channel))
    rec.tls = tls
    rec.commands = _Session()
    previous = obj.__dict__.get(_REC)
    if previous is not None:
        _finish(previous)
    obj.__dict__[_REC] = rec
    # A session dropped without quit/close is still reported (with the next
    # event: a collection can happen anywhere, see _core.defer).
    rec.commands.finalizer = weakref.finalize(obj, _finish_later, rec)
    return rec


def _rec_of(obj, channel):
    if not ON[channel]:
        return None
    try:
        rec = obj.__dict__.get(_REC)
    except Exception:
        return None
    if rec is None or rec.done:
        return None
    return rec


def _run(rec, orig, obj, args, kwargs, after=None):
    """Runs ``orig`` with the session active, so its socket work counts
    towards it; records an error class and calls ``after(result)``."""
    outer = active()
    if outer is None:
        activate(rec)
    try:
        result = orig(obj, *args, **kwargs)
    except BaseException as error:
        rec.failed(error)
        raise
    finally:
        if outer is None:
            _core.deactivate()
    if after is not None:
        try:
            after(result)
        except Exception:
            count_error()
    return result


def _io(channel):
    """Activation only: the step's socket work counts towards the session."""

    def make(orig):
        def wrapper(self, *args, **kwargs):
            rec = _rec_of(self, channel)
            if rec is None:
                return orig(self, *args, **kwargs)
            return _run(rec, orig, self, args, kwargs)

        return wrapper

    return make


def _closer(channel):
    def make(orig):
        def wrapper(self, *args, **kwargs):
            rec = _rec_of(self, channel)
            if rec is None:
                return orig(self, *args, **kwargs)
            try:
                return _run(rec, orig, self, args, kwargs)
            finally:
                _finish(rec)

        return wrapper

    return make


# -- SMTP -----------------------------------------------------------------

def _smtp_connect(orig):
    def connect(self, host="localhost", port=0, *args, **kwargs):
        if not ON["smtp"] or active() is not None:
            return orig(self, host, port, *args, **kwargs)
        try:
            tls = isinstance(self, smtplib.SMTP_SSL)
            name, number = host, port
            if not number and isinstance(host, str) and host.count(":") == 1:
                name, _, text = host.partition(":")
                number = int(text) if text.isdigit() else 0
            number = number or (smtplib.SMTP_SSL_PORT if tls else smtplib.SMTP_PORT)
            rec = _open("smtp", "smtps" if tls else "smtp", tls, name, number, self)
        except Exception:
            count_error()
            return orig(self, host, port, *args, **kwargs)
        try:
            # The greeting is recorded by getreply, which connect calls.
            return _run(rec, orig, self, (host, port) + args, kwargs)
        except BaseException:
            _finish(rec)
            raise

    return connect


def _smtp_putcmd(orig):
    def putcmd(self, cmd, *args, **kwargs):
        rec = _rec_of(self, "smtp")
        if rec is None:
            return orig(self, cmd, *args, **kwargs)
        try:
            verb = str(cmd).split(" ", 1)[0].upper()
            _add_command(rec, verb if verb in SMTP_VERBS else "*")
        except Exception:
            count_error()
        return _run(rec, orig, self, (cmd,) + args, kwargs)

    return putcmd


def _smtp_getreply(orig):
    def getreply(self, *args, **kwargs):
        rec = _rec_of(self, "smtp")
        if rec is None:
            return orig(self, *args, **kwargs)
        return _run(rec, orig, self, args, kwargs,
                    after=lambda reply: _reply(rec, str(reply[0])))

    return getreply


def _smtp_data(orig):
    def data(self, msg, *args, **kwargs):
        rec = _rec_of(self, "smtp")
        if rec is not None:
            try:
                payload = msg.encode("utf-8", "surrogateescape") if isinstance(msg, str) else msg
                session = rec.commands
                if session.hasher is None:
                    session.hasher = hashlib.sha256()
                session.hasher.update(payload)
                if rec.forensic is not None:
                    rec.forensic.add_request(payload)
            except Exception:
                count_error()
        return orig(self, msg, *args, **kwargs)

    return data


def _smtp_errors(orig):
    """``sendmail`` can refuse recipients without any I/O failing."""

    def wrapper(self, *args, **kwargs):
        rec = _rec_of(self, "smtp")
        if rec is None:
            return orig(self, *args, **kwargs)
        try:
            return orig(self, *args, **kwargs)
        except BaseException as error:
            rec.failed(error)
            raise

    return wrapper


# -- IMAP -----------------------------------------------------------------

def _imap_open(orig):
    def open(self, host="", port=imaplib.IMAP4_PORT, *args, **kwargs):
        if not ON["imap"] or active() is not None:
            return orig(self, host, port, *args, **kwargs)
        try:
            tls = isinstance(self, imaplib.IMAP4_SSL)
            rec = _open("imap", "imaps" if tls else "imap", tls, host or "localhost",
                        port, self)
        except Exception:
            count_error()
            return orig(self, host, port, *args, **kwargs)
        try:
            return _run(rec, orig, self, (host, port) + args, kwargs)
        except BaseException:
            _finish(rec)
            raise

    return open


def _imap_command(orig):
    def _command(self, name, *args, **kwargs):
        rec = _rec_of(self, "imap")
        if rec is not None:
            try:
                verb = str(name).upper()
                # imaplib only sends names from its own command table.
                _add_command(rec, verb if verb in imaplib.Commands else "*")
            except Exception:
                count_error()
        return orig(self, name, *args, **kwargs)

    return _command


def _imap_complete(orig):
    def _command_complete(self, name, tag):
        rec = _rec_of(self, "imap")
        if rec is None:
            return orig(self, name, tag)
        return _run(rec, orig, self, (name, tag), {},
                    after=lambda result: _reply(rec, str(result[0])))

    return _command_complete


# -- POP3 -----------------------------------------------------------------

def _pop_create(orig):
    def _create_socket(self, *args, **kwargs):
        if not ON["pop3"] or active() is not None:
            return orig(self, *args, **kwargs)
        try:
            tls = isinstance(self, poplib.POP3_SSL)
            rec = _open("pop3", "pop3s" if tls else "pop3", tls, self.host, self.port, self)
        except Exception:
            count_error()
            return orig(self, *args, **kwargs)
        try:
            return _run(rec, orig, self, args, kwargs)
        except BaseException:
            _finish(rec)
            raise

    return _create_socket


def _pop_putcmd(orig):
    def _putcmd(self, line, *args, **kwargs):
        rec = _rec_of(self, "pop3")
        if rec is not None:
            try:
                verb = str(line).split(" ", 1)[0].upper()
                _add_command(rec, verb if verb in POP3_VERBS else "*")
            except Exception:
                count_error()
        return orig(self, line, *args, **kwargs)

    return _putcmd


def _pop_getresp(orig):
    def _getresp(self, *args, **kwargs):
        rec = _rec_of(self, "pop3")
        if rec is None:
            return orig(self, *args, **kwargs)
        try:
            return _run(rec, orig, self, args, kwargs,
                        after=lambda resp: _reply(rec, "+OK"))
        except poplib.error_proto:
            _reply(rec, "-ERR")
            raise

    return _getresp


def install():
    smtp = smtplib.SMTP
    _core.patch(smtp, "connect", _smtp_connect)
    _core.patch(smtp, "putcmd", _smtp_putcmd)
    _core.patch(smtp, "getreply", _smtp_getreply)
    _core.patch(smtp, "send", _io("smtp"))
    _core.patch(smtp, "starttls", _io("smtp"))
    _core.patch(smtp, "data", _smtp_data)
    _core.patch(smtp, "sendmail", _smtp_errors)
    _core.patch(smtp, "close", _closer("smtp"))

    imap = imaplib.IMAP4
    _core.patch(imap, "open", _imap_open)
    _core.patch(imap, "_command", _imap_command)
    _core.patch(imap, "_command_complete", _imap_complete)
    _core.patch(imap, "send", _io("imap"))
    _core.patch(imap, "read", _io("imap"))
    _core.patch(imap, "readline", _io("imap"))
    _core.patch(imap, "_get_response", _io("imap"))
    _core.patch(imap, "shutdown", _closer("imap"))

    pop = poplib.POP3
    _core.patch(pop, "_create_socket", _pop_create)
    _core.patch(poplib.POP3_SSL, "_create_socket", _pop_create)
    _core.patch(pop, "_putcmd", _pop_putcmd)
    _core.patch(pop, "_getresp", _pop_getresp)
    _core.patch(pop, "_putline", _io("pop3"))
    _core.patch(pop, "_getline", _io("pop3"))
    _core.patch(pop, "stls", _io("pop3"))
    _core.patch(pop, "close", _closer("pop3"))
