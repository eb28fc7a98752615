"""The ``socket`` and ``dns`` channels, and the byte counting every channel
relies on.

Inside a logical call claimed by a higher-level hook (``_core.active()``),
connects fill that call's addresses and bytes count towards it; nothing is
reported here. Otherwise an outbound TCP connection is tracked from
``connect`` to its close (or garbage collection) and reported once, with the
bytes both ways; a UDP ``sendto`` is one event; ``getaddrinfo`` of a name is
one ``dns`` event. Connections that fail are reported at once.
"""

from __future__ import annotations

import errno as _errno
import socket as _socket_mod
import ssl as _ssl
import weakref

from . import _core
from ._core import ON, Record, _local, active, capture_stack, count_error, emit

_INET = (int(_socket_mod.AF_INET), int(_socket_mod.AF_INET6))
# The C attributes: socket.socket's properties convert to enums, which costs
# more than the rest of a check.
_FAMILY = _socket_mod._socket.socket.family.__get__
_TYPE = _socket_mod._socket.socket.type.__get__
_STREAM = int(_socket_mod.SOCK_STREAM)
_DGRAM = int(_socket_mod.SOCK_DGRAM)
_IN_PROGRESS = (_errno.EINPROGRESS, _errno.EALREADY, _errno.EWOULDBLOCK, _errno.EINTR)

_NOT_ERRORS = (BlockingIOError, InterruptedError, _ssl.SSLWantReadError,
               _ssl.SSLWantWriteError)

#: id(socket) → (Record, weakref to the socket) of raw connections.
#: The I/O wrappers count bytes only while it holds one or a call is active
#: (``_local.rec``): the sockets Odoo serves its own requests on, and every
#: other I/O outside a call, pay two tests and nothing else.
_tracked = {}


class _Ref(weakref.ref):
    __slots__ = ("key",)


def _gone(ref):
    # The socket was collected without close(): report it with the next
    # event. A callback runs wherever the collection happened (possibly inside
    # the sender) and must never raise.
    try:
        entry = _tracked.pop(ref.key, None)
        if entry is not None:
            _core.defer(entry[0])
    except Exception:
        count_error()


def _track(sock, rec):
    ref = _Ref(sock, _gone)
    ref.key = key = id(sock)
    _tracked[key] = (rec, ref)


def _untrack(sock):
    entry = _tracked.pop(id(sock), None)
    return None if entry is None else entry[0]


def _numeric_host(host):
    return isinstance(host, str) and (":" in host or host.replace(".", "").isdigit())


def _addresses(rec, sock, address=None):
    """Fills source and destination of ``rec`` from a connected socket (the
    peer is asked only when the address named a host, not an IP)."""
    try:
        if not rec.dst_ip:
            peer = address
            if not (isinstance(peer, tuple) and len(peer) >= 2 and _numeric_host(peer[0])):
                try:
                    peer = sock.getpeername()
                except OSError:
                    pass
            if isinstance(peer, tuple) and len(peer) >= 2:
                rec.dst_ip, rec.dst_port = str(peer[0]), int(peer[1])
        if not rec.src_ip:
            local = sock.getsockname()
            if isinstance(local, tuple) and len(local) >= 2:
                rec.src_ip, rec.src_port = str(local[0]), int(local[1])
    except Exception:
        pass


def _dest(address):
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return (host if isinstance(host, str) else str(host),
                port if isinstance(port, int) else 0)
    return "", 0


def _count_out(sock, n):
    rec = active()
    if rec is None:
        entry = _tracked.get(id(sock))
        if entry is None:
            return
        rec = entry[0]
    elif not rec.dst_ip:
        _addresses(rec, sock)
    rec.bytes_out += n


def _count_in(sock, n):
    rec = active()
    if rec is None:
        entry = _tracked.get(id(sock))
        if entry is None:
            return
        rec = entry[0]
    rec.bytes_in += n


def _io_failed(sock, error):
    """An I/O error on a raw connection is that connection's error (a read
    that timed out, a reset, an interrupt); would-block is not an error."""
    try:
        if active() is None and not isinstance(error, _NOT_ERRORS):
            entry = _tracked.get(id(sock))
            if entry is not None:
                entry[0].failed(error)
    except Exception:
        count_error()


def _hash_out(sock, data, n):
    """Raw connections keep a running SHA-256 of what they sent."""
    if active() is None:
        entry = _tracked.get(id(sock))
        if entry is not None:
            rec = entry[0]
            if rec.hasher is None:
                rec.hasher = _core.hashlib.sha256()
            rec.hasher.update(memoryview(data)[:n] if n is not None else data)


# -- socket.socket ----------------------------------------------------------

def _wrap_connect(orig, is_ex):
    def connect(self, address):
        rec = active()
        if rec is None and not ON["socket"]:
            return orig(self, address)
        if rec is not None:
            try:
                result = orig(self, address)
            except BaseException:
                try:
                    rec.dst_ip, rec.dst_port = _dest(address)
                except Exception:
                    count_error()
                raise
            _addresses(rec, self, address)
            return result
        # The original runs once, outside this try: a connect that raises
        # (an AF_UNIX path that is missing) is the caller's error, not ours,
        # and must not be attempted a second time.
        new = None
        try:
            family = _FAMILY(self)
            kind = _TYPE(self)
            if family in _INET and kind in (_STREAM, _DGRAM):
                host, port = _dest(address)
                new = Record("socket", "tcp" if kind == _STREAM else "udp",
                             "connect", host, port, capture_stack())
                new.dst_ip, new.dst_port = host, port
        except Exception:
            count_error()
            new = None
        if new is None:
            return orig(self, address)
        try:
            result = orig(self, address)
        except BaseException as error:
            if isinstance(error, (BlockingIOError, InterruptedError)):
                _track(self, new)  # non-blocking connect in progress
            else:
                new.failed(error)
                emit(new)
            raise
        try:
            if is_ex and result not in (0, None):
                if result in _IN_PROGRESS:
                    _track(self, new)
                else:
                    new.error_class = _errno.errorcode.get(result, "OSError")
                    emit(new)
                return result
            _addresses(new, self, address)
            _track(self, new)
        except Exception:
            count_error()
        return result

    return connect


def _wrap_send(orig):
    def send(self, data, *args):
        try:
            n = orig(self, data, *args)
        except BaseException as error:
            if _tracked:
                _io_failed(self, error)
            raise
        if ON["bytes"] and (_tracked or _local.rec is not None):
            try:
                _count_out(self, n)
                _hash_out(self, data, n)
            except Exception:
                count_error()
        return n

    return send


def _wrap_sendall(orig):
    def sendall(self, data, *args):
        try:
            result = orig(self, data, *args)
        except BaseException as error:
            if _tracked:
                _io_failed(self, error)
            raise
        if ON["bytes"] and (_tracked or _local.rec is not None):
            try:
                n = memoryview(data).nbytes
                _count_out(self, n)
                _hash_out(self, data, None)
            except Exception:
                count_error()
        return result

    return sendall


def _wrap_sendto(orig):
    def sendto(self, data, *args):
        if not ON["socket"] or active() is not None:
            n = orig(self, data, *args)
            if active() is not None:
                try:
                    _count_out(self, n)
                except Exception:
                    count_error()
            return n
        rec = None
        try:
            if _FAMILY(self) in _INET and _TYPE(self) == _DGRAM and args:
                host, port = _dest(args[-1])
                rec = Record("socket", "udp", "sendto", host, port, capture_stack())
                rec.dst_ip, rec.dst_port = host, port
                rec.digest = _core.sha256(data)
        except Exception:
            count_error()
            rec = None
        if rec is None:
            return orig(self, data, *args)
        try:
            n = orig(self, data, *args)
        except BaseException as error:
            rec.failed(error)
            emit(rec)
            raise
        try:
            rec.bytes_out = n
            _addresses(rec, self)
        except Exception:
            count_error()
        emit(rec)
        return n

    return sendto


def _wrap_recv(orig):
    def recv(self, *args):
        try:
            data = orig(self, *args)
        except BaseException as error:
            if _tracked:
                _io_failed(self, error)
            raise
        if ON["bytes"] and (_tracked or _local.rec is not None):
            try:
                _count_in(self, len(data))
            except Exception:
                count_error()
        return data

    return recv


def _wrap_recv_into(orig):
    def recv_into(self, *args, **kwargs):
        try:
            n = orig(self, *args, **kwargs)
        except BaseException as error:
            if _tracked:
                _io_failed(self, error)
            raise
        if ON["bytes"] and (_tracked or _local.rec is not None):
            try:
                _count_in(self, n)
            except Exception:
                count_error()
        return n

    return recv_into


def _wrap_recvfrom(orig):
    def recvfrom(self, *args):
        result = orig(self, *args)
        if ON["socket"]:
            try:
                _count_in(self, len(result[0]))
            except Exception:
                count_error()
        return result

    return recvfrom


def _wrap_close(orig):
    def _real_close(self, *args, **kwargs):
        try:
            rec = _untrack(self) if _tracked else None
        except Exception:
            rec = None
            count_error()
        try:
            return orig(self, *args, **kwargs)
        finally:
            if rec is not None:
                emit(rec)

    return _real_close


def _wrap_detach(orig):
    def detach(self):
        try:
            rec = _untrack(self) if _tracked else None
            if rec is not None:
                emit(rec)
        except Exception:
            count_error()
        return orig(self)

    return detach


# -- ssl ------------------------------------------------------------------

def _wrap_wrap_socket(orig):
    def wrap_socket(self, sock, *args, **kwargs):
        rec = active()
        if rec is not None:
            # STARTTLS, SMTP_SSL, IMAP4_SSL, POP3_SSL, https: the claimed
            # call now goes over TLS.
            rec.tls = True
            return orig(self, sock, *args, **kwargs)
        try:
            raw = _untrack(sock) if _tracked else None
        except Exception:
            raw = None
            count_error()
        if raw is None:
            return orig(self, sock, *args, **kwargs)
        raw.tls = True
        raw.protocol = "tls"
        try:
            wrapped = orig(self, sock, *args, **kwargs)
        except BaseException as error:
            raw.failed(error)
            emit(raw)
            raise
        try:
            _track(wrapped, raw)
        except Exception:
            count_error()
        return wrapped

    return wrap_socket


def _wrap_ssl_send(orig):
    def send(self, data, *args):
        n = orig(self, data, *args)
        # Without a TLS object the call went through socket.send, which counted.
        if self._sslobj is not None and ON["bytes"] and (_tracked or _local.rec is not None):
            try:
                _count_out(self, n)
                _hash_out(self, data, n)
            except Exception:
                count_error()
        return n

    return send


def _wrap_ssl_read(orig):
    def read(self, *args, **kwargs):
        try:
            result = orig(self, *args, **kwargs)
        except BaseException as error:
            if _tracked:
                _io_failed(self, error)
            raise
        if ON["bytes"] and (_tracked or _local.rec is not None):
            try:
                _count_in(self, result if isinstance(result, int) else len(result))
            except Exception:
                count_error()
        return result

    return read


# -- dns ------------------------------------------------------------------

def _numeric(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str) or not host:
        return True
    if ":" in host:
        return True  # IPv6 literal
    return host.replace(".", "").isdigit()


def _wrap_getaddrinfo(orig):
    def getaddrinfo(host, port, *args, **kwargs):
        if not ON["dns"] or active() is not None:
            return orig(host, port, *args, **kwargs)
        rec = None
        try:
            if not _numeric(host):
                name = host.decode("idna") if isinstance(host, bytes) else host
                rec = Record("dns", "dns", "getaddrinfo", name,
                             port if isinstance(port, int) else 0, capture_stack())
        except Exception:
            count_error()
        if rec is None:
            return orig(host, port, *args, **kwargs)
        try:
            result = orig(host, port, *args, **kwargs)
        except BaseException as error:
            rec.failed(error)
            emit(rec)
            raise
        try:
            for entry in result:
                address = entry[4]
                if isinstance(address, tuple) and address:
                    rec.dst_ip = str(address[0])
                    break
            rec.bytes_in = len(result)
        except Exception:
            count_error()
        emit(rec)
        return result

    return getaddrinfo


def install():
    cls = _socket_mod.socket
    _core.patch(cls, "connect", lambda o: _wrap_connect(o, False))
    _core.patch(cls, "connect_ex", lambda o: _wrap_connect(o, True))
    _core.patch(cls, "send", _wrap_send)
    _core.patch(cls, "sendall", _wrap_sendall)
    _core.patch(cls, "sendto", _wrap_sendto)
    _core.patch(cls, "recv", _wrap_recv)
    _core.patch(cls, "recv_into", _wrap_recv_into)
    _core.patch(cls, "recvfrom", _wrap_recvfrom)
    _core.patch(cls, "_real_close", _wrap_close)
    _core.patch(cls, "detach", _wrap_detach)
    _core.patch(_ssl.SSLContext, "wrap_socket", _wrap_wrap_socket)
    _core.patch(_ssl.SSLSocket, "send", _wrap_ssl_send)
    _core.patch(_ssl.SSLSocket, "read", _wrap_ssl_read)
    _core.patch(_socket_mod, "getaddrinfo", _wrap_getaddrinfo)
