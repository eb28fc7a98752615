"""A decoder of the datagram frame, for tests only: reads what the hook
sent so that it can be compared with what happened."""

from __future__ import annotations

import struct


class _Reader:
    def __init__(self, data):
        self.data = data
        self.at = 0

    def take(self, n):
        chunk = self.data[self.at:self.at + n]
        if len(chunk) != n:
            raise ValueError("truncated")
        self.at += n
        return chunk

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def i64(self):
        return struct.unpack("<q", self.take(8))[0]

    def str(self):
        return self.take(self.u64()).decode("utf-8")

    def strs(self):
        return [self.str() for _ in range(self.u64())]

    def opt(self, read):
        flag = self.u8()
        return read() if flag else None

    def boolean(self):
        value = self.u8()
        assert value in (0, 1)
        return bool(value)


def decode(datagram):
    """``(kind, dict)`` of one datagram; raises on anything malformed."""
    assert datagram[:3] == b"EG\x01", datagram[:4]
    kind = datagram[3]
    r = _Reader(datagram[4:])
    if kind == 2:
        m = dict(worker_id=r.u64(), seq=r.u64(), database=r.str(),
                 started_at_us=r.i64(), duration_us=r.u64(), channel=r.str(),
                 protocol=r.str(), direction=r.str(), method=r.str(), host=r.str(),
                 port=r.u16(), path=r.str(), query_keys=r.strs(),
                 header_names=r.strs(), src_ip=r.str(), src_port=r.u16(),
                 dst_ip=r.str(), dst_port=r.u16(), tls=r.boolean(),
                 status=r.opt(r.u32), error_class=r.str(), bytes_out=r.u64(),
                 bytes_in=r.u64(), payload_sha256=r.opt(lambda: r.take(32)))
        m["stack"] = [(r.str(), r.str(), r.u32()) for _ in range(r.u64())]
        m["trigger"] = (r.str(), r.str(), r.opt(r.i64))
        name = "call"
    elif kind == 1:
        m = dict(worker_id=r.u64(), pid=r.u32(), sent_at_us=r.i64(),
                 odoo_version=r.str(), python_version=r.str(), hook_mode=r.str(),
                 hook_version=r.str(), addons_paths=r.strs(), databases=r.strs())
        name = "hello"
    elif kind == 3:
        m = dict(worker_id=r.u64())
        m["counts"] = [(r.str(), r.str(), r.u64()) for _ in range(r.u64())]
        m["cursors"] = [(r.str(), r.u64()) for _ in range(r.u64())]
        name = "drops"
    elif kind == 4:
        m = dict(worker_id=r.u64(), database=r.str(), changed_at_us=r.i64(),
                 key=r.str(), old_value=r.opt(r.str), new_value=r.opt(r.str),
                 user_login=r.str(), uid=r.opt(r.i64))
        name = "config_change"
    else:
        raise ValueError(f"unknown kind {kind}")
    if r.at != len(r.data):
        raise ValueError("trailing bytes")
    return name, m
