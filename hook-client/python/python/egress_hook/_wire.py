"""The datagram frame of docs/WIRE_FORMAT.md, in pure Python.

Byte for byte what ``egress_proto::encode`` produces (bincode 1.3, fixed-width
little-endian integers, ``u64`` length prefixes), checked against the golden
vectors in ``proto/vectors/datagrams.json``. Messages are plain tuples in wire
order, the same tuples the native module takes, so the interceptor builds one
shape for both transports.

Truncation mirrors ``hook-client/src/fit.rs``: caps are tried from generous to
strict, and the first level whose datagram fits is sent.
"""

from __future__ import annotations

import struct

MAGIC = b"EG"
FORMAT_VERSION = 1
KIND_HELLO = 1
KIND_CALL = 2
KIND_DROPS = 3
KIND_CONFIG_CHANGE = 4
KIND_FORENSIC_BODY = 5
MAX_DATAGRAM_SIZE = 16 * 1024
#: Database names are capped once and never shrunk further (fit.rs).
DATABASE_MAX = 255

_HEADER = {
    kind: MAGIC + bytes((FORMAT_VERSION, kind))
    for kind in (KIND_HELLO, KIND_CALL, KIND_DROPS, KIND_CONFIG_CHANGE,
                 KIND_FORENSIC_BODY)
}

# (text, path, items, item, frames, frame_text), as fit.rs LEVELS.
LEVELS = (
    (512, 2048, 64, 128, 32, 512),
    (256, 1024, 32, 64, 16, 256),
    (128, 512, 16, 64, 8, 192),
    (64, 128, 8, 32, 4, 128),
)

_Q = struct.Struct("<Q").pack
_q = struct.Struct("<q").pack
_H = struct.Struct("<H").pack
_I = struct.Struct("<I").pack
_QQ = struct.Struct("<QQ").pack
_NONE = b"\x00"
_SOME = b"\x01"
_FALSE = b"\x00"
_TRUE = b"\x01"


class EncodeError(ValueError):
    """A message that does not fit in one datagram, even truncated."""


def utf8(text, cap=None):
    """``text`` as UTF-8, cut to at most ``cap`` bytes on a character boundary.

    Strings that cannot be encoded (lone surrogates from undecodable file
    names) are replaced rather than losing the event.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "replace")
    except AttributeError:
        data = str(text).encode("utf-8", "replace")
    if cap is not None and len(data) > cap:
        # A cut in the middle of a character leaves a partial sequence at the
        # end only: decoding with "ignore" drops exactly that.
        data = data[:cap].decode("utf-8", "ignore").encode("utf-8")
    return data


def _str(parts, text, cap=None):
    data = utf8(text, cap)
    parts.append(_Q(len(data)))
    parts.append(data)


def _list(parts, items, count, cap):
    items = list(items)[:count]
    parts.append(_Q(len(items)))
    for item in items:
        _str(parts, item, cap)


def _opt_u32(parts, value):
    if value is None:
        parts.append(_NONE)
    else:
        parts.append(_SOME + _I(value))


def _opt_i64(parts, value):
    if value is None:
        parts.append(_NONE)
    else:
        parts.append(_SOME + _q(value))


def _opt_str(parts, value, cap):
    if value is None:
        parts.append(_NONE)
    else:
        parts.append(_SOME)
        _str(parts, value, cap)


def _encode_call(worker_id, seq, f, level):
    text, path, items, item, frames, frame_text = level
    (database, started_at_us, duration_us, channel, protocol, direction, method,
     host, port, url_path, query_keys, header_names, src_ip, src_port, dst_ip,
     dst_port, tls, status, error_class, bytes_out, bytes_in, digest, stack,
     trigger_kind, trigger_name, trigger_uid) = f
    parts = [_HEADER[KIND_CALL], _QQ(worker_id, seq)]
    _str(parts, database, DATABASE_MAX)
    parts.append(_q(started_at_us) + _Q(duration_us))
    _str(parts, channel, text)
    _str(parts, protocol, text)
    _str(parts, direction, text)
    _str(parts, method, text)
    _str(parts, host, text)
    parts.append(_H(port))
    _str(parts, url_path, path)
    _list(parts, query_keys, items, item)
    _list(parts, header_names, items, item)
    _str(parts, src_ip, text)
    parts.append(_H(src_port))
    _str(parts, dst_ip, text)
    parts.append(_H(dst_port))
    parts.append(_TRUE if tls else _FALSE)
    _opt_u32(parts, status)
    _str(parts, error_class, text)
    parts.append(_QQ(bytes_out, bytes_in))
    if digest is None:
        parts.append(_NONE)
    else:
        if len(digest) != 32:
            raise EncodeError("payload digest is not 32 bytes")
        parts.append(_SOME + bytes(digest))
    stack = list(stack)[:frames]
    parts.append(_Q(len(stack)))
    for file, function, line in stack:
        _str(parts, file, frame_text)
        _str(parts, function, frame_text)
        parts.append(_I(line))
    _str(parts, trigger_kind, text)
    _str(parts, trigger_name, path)
    _opt_i64(parts, trigger_uid)
    return b"".join(parts)


# Level-0 encodings of strings seen before: hosts, methods, channels, stack
# frames repeat from call to call, and a dict hit is far cheaper than
# encoding and packing again. Bounded: cleared when full.
_CACHE_MAX = 4096
_text_cache = {}
_path_cache = {}
_frame_cache = {}
# Whole stacks, keyed by their frames: a call site's stack recurs, and one
# look-up replaces a loop over up to 32 frames. Stacks are larger: fewer.
_STACKS_MAX = 1024
_stack_cache = {}


def _cached(cache, text, cap):
    data = cache.get(text)
    if data is None:
        raw = utf8(text, cap)
        data = _Q(len(raw)) + raw
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[text] = data
    return data


def _encode_call_fast(worker_id, seq, f):
    """Level 0 (the generous caps, which almost every call fits) with cached
    string encodings; the same bytes as ``_encode_call(..., LEVELS[0])``."""
    (database, started_at_us, duration_us, channel, protocol, direction, method,
     host, port, url_path, query_keys, header_names, src_ip, src_port, dst_ip,
     dst_port, tls, status, error_class, bytes_out, bytes_in, digest, stack,
     trigger_kind, trigger_name, trigger_uid) = f
    text = _text_cache
    path = _path_cache
    frames = _frame_cache
    item_cap, frame_cap = LEVELS[0][3], LEVELS[0][5]
    parts = [_HEADER[KIND_CALL], _QQ(worker_id, seq),
             _cached(text, database, DATABASE_MAX),
             _q(started_at_us), _Q(duration_us),
             _cached(text, channel, 512), _cached(text, protocol, 512),
             _cached(text, direction, 512), _cached(text, method, 512),
             _cached(text, host, 512), _H(port), _cached(path, url_path, 2048)]
    for names in (query_keys, header_names):
        names = names if len(names) <= 64 else list(names)[:64]
        parts.append(_Q(len(names)))
        for name in names:
            parts.append(_cached(text, name, item_cap))
    parts += (_cached(text, src_ip, 512), _H(src_port), _cached(text, dst_ip, 512),
              _H(dst_port), _TRUE if tls else _FALSE)
    _opt_u32(parts, status)
    parts.append(_cached(text, error_class, 512))
    parts.append(_QQ(bytes_out, bytes_in))
    if digest is None:
        parts.append(_NONE)
    else:
        if len(digest) != 32:
            raise EncodeError("payload digest is not 32 bytes")
        parts.append(_SOME + bytes(digest))
    try:
        key = tuple(stack) if len(stack) <= 32 else tuple(stack)[:32]
        data = _stack_cache.get(key)
    except TypeError:  # a frame that is no tuple: not cached
        key = data = None
    if data is None:
        data = _encode_stack(stack, frames, frame_cap)
        if key is not None:
            if len(_stack_cache) >= _STACKS_MAX:
                _stack_cache.clear()
            _stack_cache[key] = data
    parts.append(data)
    parts.append(_cached(text, trigger_kind, 512))
    parts.append(_cached(path, trigger_name, 2048))
    _opt_i64(parts, trigger_uid)
    return b"".join(parts)


def _encode_stack(stack, frames, frame_cap):
    """Level 0 encoding of a stack (its first 32 frames)."""
    stack = list(stack)[:32]
    parts = [_Q(len(stack))]
    for file, function, line in stack:
        key = (file, function)
        data = frames.get(key)
        if data is None:
            data = _cached({}, file, frame_cap) + _cached({}, function, frame_cap)
            if len(frames) >= _CACHE_MAX:
                frames.clear()
            frames[key] = data
        parts.append(data)
        parts.append(_I(line))
    return b"".join(parts)


def encode_call(worker_id, seq, fields):
    """The datagram of a ``Call``; ``fields`` as in ``Client.send_call``."""
    data = _encode_call_fast(worker_id, seq, fields)
    if len(data) <= MAX_DATAGRAM_SIZE:
        return data
    for level in LEVELS[1:]:
        data = _encode_call(worker_id, seq, fields, level)
        if len(data) <= MAX_DATAGRAM_SIZE:
            return data
    raise EncodeError("call does not fit in one datagram")


def _encode_hello(worker_id, pid, sent_at_us, odoo_version, python_version,
                  hook_mode, hook_version, addons_paths, databases, level):
    text, path, items = level[0], level[1], level[2]
    parts = [_HEADER[KIND_HELLO], _Q(worker_id), _I(pid), _q(sent_at_us)]
    for value in (odoo_version, python_version, hook_mode, hook_version):
        _str(parts, value, text)
    _list(parts, addons_paths, items, path)
    _list(parts, databases, items, DATABASE_MAX)
    return b"".join(parts)


def encode_hello(worker_id, pid, sent_at_us, odoo_version, python_version,
                 hook_mode, hook_version, addons_paths, databases):
    """The datagram of a ``Hello``."""
    for level in LEVELS:
        data = _encode_hello(worker_id, pid, sent_at_us, odoo_version,
                             python_version, hook_mode, hook_version,
                             addons_paths, databases, level)
        if len(data) <= MAX_DATAGRAM_SIZE:
            return data
    raise EncodeError("hello does not fit in one datagram")


def _encode_change(worker_id, fields, level):
    database, changed_at_us, key, old_value, new_value, user_login, uid = fields
    text, path = level[0], level[1]
    parts = [_HEADER[KIND_CONFIG_CHANGE], _Q(worker_id)]
    _str(parts, database, DATABASE_MAX)
    parts.append(_q(changed_at_us))
    _str(parts, key, text)
    _opt_str(parts, old_value, path)
    _opt_str(parts, new_value, path)
    _str(parts, user_login, text)
    _opt_i64(parts, uid)
    return b"".join(parts)


def encode_config_change(worker_id, fields):
    """The datagram of a ``ConfigChange``; ``fields`` as in ``Client.send_config_change``."""
    for level in LEVELS:
        data = _encode_change(worker_id, fields, level)
        if len(data) <= MAX_DATAGRAM_SIZE:
            return data
    raise EncodeError("config change does not fit in one datagram")


def encode_drops(worker_id, counts, cursors):
    """The datagram of a ``Drops``: ``counts`` as ``(database, reason, count)``,
    ``cursors`` as ``(database, last_seq)``. Never truncated: the sender splits
    reports instead (state.rs ``REPORT_CHUNK``)."""
    parts = [_HEADER[KIND_DROPS], _Q(worker_id), _Q(len(counts))]
    for database, reason, count in counts:
        _str(parts, database)
        _str(parts, reason)
        parts.append(_Q(count))
    parts.append(_Q(len(cursors)))
    for database, last_seq in cursors:
        _str(parts, database)
        parts.append(_Q(last_seq))
    data = b"".join(parts)
    if len(data) > MAX_DATAGRAM_SIZE:
        raise EncodeError("drops report does not fit in one datagram")
    return data


#: Body bytes per ``ForensicBody`` datagram at most (``FORENSIC_CHUNK``).
FORENSIC_CHUNK = 15 * 1024
_FORENSIC_TAIL = struct.Struct("<QQ?")


def encode_forensic_body(worker_id, database, seq, part, total_len, captured_len,
                         truncated, sha256, offset, data):
    """The datagram of one ``ForensicBody`` chunk (docs/WIRE_FORMAT.md §4)."""
    if len(data) > FORENSIC_CHUNK or len(sha256) != 32:
        raise EncodeError("forensic chunk over FORENSIC_CHUNK bytes")
    parts = [_HEADER[KIND_FORENSIC_BODY], _Q(worker_id)]
    _str(parts, database, DATABASE_MAX)
    parts.append(_Q(seq))
    _str(parts, part)
    parts.append(_FORENSIC_TAIL.pack(total_len, captured_len, bool(truncated)))
    parts.append(bytes(sha256))
    parts.append(_QQ(offset, len(data)))
    parts.append(bytes(data))
    return b"".join(parts)


def forensic_datagrams(worker_id, database, seq, part, total_len, truncated, sha256,
                       captured):
    """Every chunk of one captured body, in order (``ForensicBody::chunks``):
    an empty body is one chunk with no data."""
    out = []
    offset = 0
    while True:
        chunk = captured[offset:offset + FORENSIC_CHUNK]
        out.append(encode_forensic_body(worker_id, database, seq, part, total_len,
                                        len(captured), truncated, sha256, offset, chunk))
        offset += len(chunk)
        if offset >= len(captured):
            return out
