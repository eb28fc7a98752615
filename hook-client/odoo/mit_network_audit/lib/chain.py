"""The chain check of docs/JOURNAL_FORMAT.md, written from the text alone in
plain Python (hashlib, struct): it shares no code with the collector, so a
bug in one cannot hide in the other.

``ChainCheck`` walks the journal in seq order, a batch at a time, keeping
only the previous row's hash, so a journal of any size verifies in constant
memory. Its state is a small dict, so the Trust Report can verify in steps
and show progress between them.
"""

import hashlib
import json
import struct

VERIFIED = "Audit chain verified OK — no tampering detected."
GENESIS = bytes(32)

_I64 = struct.Struct(">q").pack
_U32 = struct.Struct(">I").pack

#: The five fields that are never NULL (no presence byte), in canonical
#: order, with their encodings. This list and ``OPTIONAL_FIELDS`` are the
#: journal's field table of ``proto/vectors/journal_fields.json``; the addon's
#: pure-Python tests hold them to it.
REQUIRED_FIELDS = (
    ("seq", "int"), ("database", "text"), ("kind", "text"), ("recorded_at_us", "int"),
    ("collector", "text"),
)

#: The other fields in canonical order (fields 6 to 42), with their
#: encodings; the two timestamps are read as microseconds (``*_us``).
OPTIONAL_FIELDS = (
    ("worker_id", "int"), ("worker_pid", "int"), ("worker_uid", "int"),
    ("worker_seq", "int"), ("started_at_us", "int"), ("duration_us", "int"),
    ("channel", "text"), ("protocol", "text"), ("direction", "text"),
    ("method", "text"), ("host", "text"), ("port", "int"), ("path", "text"),
    ("query_keys", "list"), ("header_names", "list"), ("src_ip", "text"),
    ("src_port", "int"), ("dst_ip", "text"), ("dst_port", "int"), ("tls", "bool"),
    ("status", "int"), ("error_class", "text"), ("bytes_out", "int"),
    ("bytes_in", "int"), ("fingerprint", "bytes"), ("addon", "text"),
    ("addon_path", "list"), ("stack", "list"), ("trigger_kind", "text"),
    ("trigger_name", "text"), ("odoo_uid", "int"), ("component", "text"),
    ("class", "text"), ("self_egress", "bool"), ("gap_count", "int"),
    ("gap_reason", "text"), ("detail", "text"),
)

#: What to select from ``public.network_egress_log``, in the order
#: ``canonical`` reads it: seq, prev_hash, row_hash, then the fields.
_US = "(extract(epoch FROM {0}) * 1000000)::bigint"
#: The fields stored as ``timestamptz``, by their columns.
_TIMES = {"recorded_at_us": "recorded_at", "started_at_us": "started_at"}
SELECT_COLUMNS = ", ".join(
    ["seq", "prev_hash", "row_hash"]
    + [_US.format(_TIMES[name]) if name in _TIMES else f'"{name}"'
       for name, _ in REQUIRED_FIELDS[1:] + OPTIONAL_FIELDS])


def _text(value):
    data = value.encode("utf-8")
    return _U32(len(data)) + data


def _encode(kind, value):
    if kind == "int":
        return _I64(value)
    if kind == "text":
        return _text(value)
    if kind == "list":
        return _I64(len(value)) + b"".join(_text(item) for item in value)
    if kind == "bool":
        return b"\x01" if value else b"\x00"
    data = bytes(value)  # bytea arrives as memoryview or bytes
    return _U32(len(data)) + data


def canonical(row):
    """The canonical encoding of a row selected with ``SELECT_COLUMNS``
    (a tuple: seq, prev_hash, row_hash, database, kind, recorded_at_us,
    collector, then the 37 optional fields)."""
    parts = [b"\x01"]
    for (_name, encoding), value in zip(REQUIRED_FIELDS, (row[0], *row[3:7])):
        parts.append(_encode(encoding, value))
    for (_name, encoding), value in zip(OPTIONAL_FIELDS, row[7:]):
        parts.append(b"\x00" if value is None else b"\x01" + _encode(encoding, value))
    return b"".join(parts)


def row_hash(prev_hash, row):
    return hashlib.sha256(bytes(prev_hash) + canonical(row)).digest()


def new_state(first_seq):
    """Where a check starts: the journal's first remaining row."""
    return {"next_seq": first_seq, "prev_hash": None, "rows": 0, "first_seq": first_seq,
            "last_seq": None, "broken_seq": None, "reason": None, "anchor": None,
            "vacuum_ends": []}


def check_batch(state, rows):
    """Checks ``rows`` (consecutive, by seq, continuing ``state``); stops at
    the first broken row (and does nothing once broken). Returns the state,
    changed in place."""
    if state["broken_seq"] is not None:
        return state
    for row in rows:
        seq, prev, stored = row[0], bytes(row[1]), bytes(row[2])
        expected_prev = bytes.fromhex(state["prev_hash"]) if state["prev_hash"] else None
        if expected_prev is None:
            # The first remaining row: the genesis, or an anchor that a
            # vacuum entry further on must vouch for.
            if seq == 1:
                expected_prev = GENESIS
            else:
                state["anchor"] = {"first_seq": seq, "hash": prev.hex(), "vouched": False}
                expected_prev = prev
        if seq != state["next_seq"]:
            return _broken(state, state["next_seq"],
                           f"row {state['next_seq']} is missing (the next row is {seq})")
        if prev != expected_prev:
            return _broken(state, seq, "its prev_hash is not the previous row's row_hash")
        if row_hash(prev, row) != stored:
            return _broken(state, seq, "its contents do not match its row_hash")
        if row[4] == "vacuum":
            _note_vacuum(state, row)
        state.update(next_seq=seq + 1, prev_hash=stored.hex(), rows=state["rows"] + 1,
                     last_seq=seq)
    return state


def _note_vacuum(state, row):
    detail = row[-1]
    try:
        info = json.loads(detail or "")
        end, anchor = int(info["last_seq"]), str(info["anchor"]).lower()
    except (ValueError, KeyError, TypeError):
        return
    state["vacuum_ends"].append(end)
    first = state["anchor"]
    if first and end + 1 == first["first_seq"]:
        if anchor == first["hash"]:
            first["vouched"] = True
        else:
            first["contradicted_by"] = row[0]


def _broken(state, seq, reason):
    if state["broken_seq"] is None:  # the first break is the one to name
        state.update(broken_seq=seq, reason=reason)
    return state


def finish(state, journal_end, heads):
    """After the last row: the anchor must be vouched for, and no signed head
    (``heads``: their seqs) may lie beyond the journal's end. Returns
    ``(verified, message)``."""
    if state["broken_seq"] is None:
        anchor = state["anchor"]
        if anchor and not anchor["vouched"]:
            first = anchor["first_seq"]
            if anchor.get("contradicted_by"):
                _broken(state, first, "its prev_hash is not the anchor that the vacuum entry "
                        f"at seq {anchor['contradicted_by']} recorded: rows before it were "
                        "replaced")
            else:
                start = max([e + 1 for e in state["vacuum_ends"] if e < first], default=1)
                _broken(state, start, f"rows {start} to {first - 1} are missing: the journal "
                        f"starts at seq {first} and no vacuum entry records their removal")
    latest = max(heads, default=None)
    if state["broken_seq"] is None and latest is not None and latest > journal_end:
        _broken(state, journal_end + 1, f"truncated: a signed head vouches for seq {latest}, "
                f"but the journal ends at seq {journal_end}")
    if state["broken_seq"] is not None:
        return False, (f"Chain broken at seq {state['broken_seq']}: {state['reason']}.")
    return True, VERIFIED


def check_heads(state, heads_with_rows):
    """Signed heads whose row is in the journal must carry that row's hash:
    ``(head_seq, head_hash, journal_hash or None)``."""
    for seq, head_hash, journal_hash in heads_with_rows:
        if journal_hash is not None and bytes(journal_hash) != bytes(head_hash):
            return _broken(state, seq, "its row_hash differs from the one signed for it: "
                           "the chain was rewritten after it was signed")
    return state
