"""The ``http`` channel: ``requests``, ``urllib3`` and ``http.client`` (which
also carries ``urllib.request`` and ``xmlrpc.client``).

The outermost of these hooks owns the logical call: a ``requests`` call is one
event, and the urllib3, http.client, socket and DNS work under it only adds
to that event (header names as sent, addresses, bytes). For ``http.client``
used directly, a call runs from ``putrequest`` to ``getresponse``; its
``bytes_in`` are what arrived by then (status line, headers and whatever the
buffered reader already holds), since the body is read after the call.

Kept: method, host, port, path, query key names, header names, sizes,
status, error class, payload digest. Never a query value, a header value, a
body or URL userinfo, unless forensic capture is on for the call
(``_forensic``): then the request body as handed over, and the response body
``requests`` or a preloading ``urllib3`` already read (``http.client`` used
directly: the request body only).
"""

from __future__ import annotations

import http.client as _hc
from urllib.parse import unquote_plus, urlsplit

from . import _core
from ._core import (ON, Record, activate, active, capture_stack, count_error,
                    deactivate, emit)

_DEFAULT_PORT = {"http": 80, "https": 443}


def _query_keys(query):
    keys = []
    for part in query.split("&"):
        if part:
            key = part.split("=", 1)[0]
            if "%" in key or "+" in key:
                key = unquote_plus(key)
            keys.append(key)
    return keys


def _split(url):
    """``(scheme, host, port, path, query keys)`` of a URL or a request
    target; userinfo, query values and fragment are dropped here."""
    if isinstance(url, bytes):
        url = url.decode("latin-1")
    if url.startswith("/"):
        path, _, rest = url.partition("?")
        path = path.partition("#")[0]
        return "", "", 0, path, _query_keys(rest.partition("#")[0])
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORT.get(scheme, 0)
    except ValueError:
        port = 0
    return (scheme, parts.hostname or "", port, parts.path or "/",
            _query_keys(parts.query))


def _new(method, url, scheme="", host="", port=0):
    rec_scheme, rec_host, rec_port, path, keys = _split(url)
    scheme = rec_scheme or scheme or "http"
    rec = Record("http", scheme, str(method or "").upper(), rec_host or host,
                 rec_port or port or _DEFAULT_PORT.get(scheme, 0), capture_stack("http"))
    rec.path = path
    rec.query_keys = keys
    rec.header_names = []
    rec.collect_headers = True
    rec.tls = scheme == "https"
    return rec


def _status(response, attribute):
    try:
        status = getattr(response, attribute, None)
        return status if isinstance(status, int) and 0 <= status < 2**32 else None
    except Exception:
        return None


def _outer(begin, status_attribute):
    """A wrapper that owns the logical call when no other hook does."""

    def make(orig):
        def wrapper(*args, **kwargs):
            if not ON["http"] or active() is not None:
                return orig(*args, **kwargs)
            try:
                rec = begin(*args, **kwargs)
            except Exception:
                count_error()
                rec = None
            if rec is None:
                return orig(*args, **kwargs)
            activate(rec)
            try:
                response = orig(*args, **kwargs)
            except BaseException as error:
                rec.failed(error)
                raise
            finally:
                deactivate()
                if rec.error_class:
                    emit(rec)
            rec.status = _status(response, status_attribute)
            if rec.forensic is not None:
                _copy_response(rec, response)
            emit(rec)
            return response

        return wrapper

    return make


def _copy_response(rec, response):
    """Forensic capture: the response body the call already read (a
    ``requests`` response not streamed, a preloaded ``urllib3`` one); a
    stream is never read here."""
    try:
        body = response.__dict__.get("_content")  # requests
        if body is None:
            body = response.__dict__.get("_body")  # urllib3
        rec.forensic.set_response(body)
    except Exception:
        count_error()


# -- requests -------------------------------------------------------------

def _begin_requests(session, request, *args, **kwargs):
    rec = _new(request.method, request.url)
    rec.digest = _core.sha256(request.body)
    if rec.forensic is not None:
        rec.forensic.add_request(request.body)
    return rec


# -- urllib3 --------------------------------------------------------------

def _body(args, kwargs, index):
    if "body" in kwargs:
        return kwargs["body"]
    return args[index] if len(args) > index else None


def _begin_pool(pool, method, url, *args, **kwargs):
    rec = _new(method, url, getattr(pool, "scheme", "http"), pool.host, pool.port or 0)
    body = _body(args, kwargs, 0)
    rec.digest = _core.sha256(body)
    if rec.forensic is not None:
        rec.forensic.add_request(body)
    return rec


def _begin_manager(manager, method, url, *args, **kwargs):
    rec = _new(method, url)
    rec.digest = _core.sha256(kwargs.get("body"))
    if rec.forensic is not None:
        rec.forensic.add_request(kwargs.get("body"))
    return rec


# -- http.client ----------------------------------------------------------

_REC = "_egress_rec"
#: ``(socket, src_ip, src_port, dst_ip, dst_port)`` of a kept-alive
#: connection's last request: the next request on the same socket object
#: starts with them instead of asking the kernel again (two system calls),
#: whether it is ``http.client``'s own call or a ``requests`` or ``urllib3``
#: one. Holding the socket keeps its id from being reused by another one.
_ADDR = "_egress_addr"
#: The outer call (``requests``, ``urllib3``) whose addresses the request
#: under way on this connection finds, to be kept as ``_ADDR``.
_FINDS = "_egress_finds"


def _own(conn):
    try:
        return conn.__dict__.get(_REC)
    except Exception:
        return None


def _drop(conn, rec):
    try:
        if conn.__dict__.get(_REC) is rec:
            del conn.__dict__[_REC]
    except Exception:
        count_error()


def _wrap_putrequest(orig):
    def putrequest(self, method, url, *args, **kwargs):
        if not ON["http"]:
            return orig(self, method, url, *args, **kwargs)
        outer = active()
        if outer is not None:
            # A requests or urllib3 call: on a kept-alive connection, its
            # addresses are those of the connection's last request; else
            # this request finds them, and they are this connection's.
            if not outer.dst_ip and not _known_addresses(self, outer):
                self.__dict__[_FINDS] = outer
            return orig(self, method, url, *args, **kwargs)
        try:
            previous = self.__dict__.pop(_REC, None)
            if previous is not None:
                emit(previous)  # a request abandoned before its response
            https = isinstance(self, _hc.HTTPSConnection)
            host = getattr(self, "_tunnel_host", None) or self.host
            port = getattr(self, "_tunnel_port", None) or self.port
            rec = _new(method, url, "https" if https else "http", host, port)
            _known_addresses(self, rec)
            self.__dict__[_REC] = rec
        except Exception:
            count_error()
            return orig(self, method, url, *args, **kwargs)
        return _io(self, rec, orig, (method, url) + args, kwargs)

    return putrequest


def _known_addresses(conn, rec):
    """Fills ``rec``'s addresses from ``conn``'s last request on the same
    socket, if any (``_ADDR``); whether it did."""
    try:
        known = conn.__dict__.get(_ADDR)
        if known is not None and known[0] is conn.sock:
            _, rec.src_ip, rec.src_port, rec.dst_ip, rec.dst_port = known
            return True
    except Exception:
        count_error()
    return False


def _keep_addresses(conn, rec):
    try:
        sock = conn.sock
        if rec.dst_ip and sock is not None:
            conn.__dict__[_ADDR] = (sock, rec.src_ip, rec.src_port, rec.dst_ip, rec.dst_port)
    except Exception:
        count_error()


def _io(conn, rec, orig, args, kwargs):
    """Runs an I/O step of ``conn``'s call with its record active; a failure
    ends the call."""
    activate(rec)
    try:
        return orig(conn, *args, **kwargs)
    except BaseException as error:
        rec.failed(error)
        _drop(conn, rec)
        emit(rec)
        raise
    finally:
        deactivate()


def _wrap_putheader(orig):
    def putheader(self, header, *values):
        result = orig(self, header, *values)
        try:
            rec = active() or _own(self)
            if rec is not None and rec.collect_headers:
                name = header.decode("latin-1") if isinstance(header, bytes) else str(header)
                rec.header_names.append(name)
        except Exception:
            count_error()
        return result

    return putheader


def _wrap_endheaders(orig):
    def endheaders(self, message_body=None, *args, **kwargs):
        rec = None if active() is not None else _own(self)
        if rec is None or rec.done:
            return orig(self, message_body, *args, **kwargs)
        try:
            if message_body is not None:
                rec.digest = _core.sha256(message_body)
                if rec.forensic is not None:
                    rec.forensic.add_request(message_body)
        except Exception:
            count_error()
        return _io(self, rec, orig, (message_body,) + args, kwargs)

    return endheaders


def _wrap_send(orig):
    def send(self, data):
        rec = None if active() is not None else _own(self)
        if rec is None or rec.done:
            return orig(self, data)
        if rec.forensic is not None:
            rec.forensic.add_request(data)
        return _io(self, rec, orig, (data,), {})

    return send


def _wrap_getresponse(orig):
    def getresponse(self, *args, **kwargs):
        outer = active()
        if outer is not None:
            response = orig(self, *args, **kwargs)
            # Kept only if they were found on this connection (a redirect
            # to another host keeps the first connection's in the call).
            if self.__dict__.pop(_FINDS, None) is outer:
                _keep_addresses(self, outer)
            return response
        rec = _own(self)
        if rec is None or rec.done:
            return orig(self, *args, **kwargs)
        response = _io(self, rec, orig, args, kwargs)
        try:
            rec.status = _status(response, "status")
            _drop(self, rec)
        except Exception:
            count_error()
        _keep_addresses(self, rec)
        emit(rec)
        return response

    return getresponse


def install():
    cls = _hc.HTTPConnection
    _core.patch(cls, "putrequest", _wrap_putrequest)
    _core.patch(cls, "putheader", _wrap_putheader)
    _core.patch(cls, "endheaders", _wrap_endheaders)
    _core.patch(cls, "send", _wrap_send)
    _core.patch(cls, "getresponse", _wrap_getresponse)
    try:
        import urllib3.connectionpool
        import urllib3.poolmanager
    except Exception:
        pass
    else:
        _core.patch(urllib3.connectionpool.HTTPConnectionPool, "urlopen",
                    _outer(_begin_pool, "status"))
        _core.patch(urllib3.poolmanager.PoolManager, "urlopen",
                    _outer(_begin_manager, "status"))
    try:
        import requests.sessions
    except Exception:
        pass
    else:
        _core.patch(requests.sessions.Session, "send",
                    _outer(_begin_requests, "status_code"))
