#!/usr/bin/env python3
"""Verify an egress-audit export file with the Python standard library only.

    python3 verify_export.py FILE [--hmac-key FILE] [--pubkey HEX ...] [--keyring FILE]
                             [--witness STATE]

Checks, in this order (docs/EXPORT_FORMAT.md section 5): 1. the public key,
2. the chain of rows from the anchor, 3. every signed head, 4. the latest
signed head (truncation, replay), 5. the export's digest and signatures,
6. the witness. Ed25519 signatures are checked with the `cryptography` package
when it is installed; without it this script says plainly that they were NOT
checked, and relies on the HMAC (--hmac-key) alone.

A file laid out as the collector writes it is read in chunks, checked on
every core (--jobs); any other file is read whole. Both give the same result.

Exit status: 0 verified, 1 tampered (the first bad position is named),
2 could not check.
"""
import argparse
import hashlib
import hmac
import json
import multiprocessing
import os
import re
import struct
import sys
from array import array

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:
    Ed25519PublicKey = None

I64, U32 = struct.Struct(">q").pack, struct.Struct(">I").pack


class CannotCheck(Exception):
    """The file, a key or the witness cannot be read: exit 2."""


# ---- 1. The journal row's canonical encoding (docs/JOURNAL_FORMAT.md) ------
# A version byte, then the 42 fields in this order; an optional field (all but
# the first five) is b"\x00" for NULL (absent or null), else b"\x01" and the
# value. Types are checked strictly (in Python, True is also an int: refuse it).

INT, TEXT, LIST, BOOL, BYTES = "int", "text", "list", "bool", "bytes"
FIELDS = [
    ("seq", INT), ("database", TEXT), ("kind", TEXT), ("recorded_at_us", INT),
    ("collector", TEXT), ("worker_id", INT), ("worker_pid", INT), ("worker_uid", INT),
    ("worker_seq", INT), ("started_at_us", INT), ("duration_us", INT), ("channel", TEXT),
    ("protocol", TEXT), ("direction", TEXT), ("method", TEXT), ("host", TEXT), ("port", INT),
    ("path", TEXT), ("query_keys", LIST), ("header_names", LIST), ("src_ip", TEXT),
    ("src_port", INT), ("dst_ip", TEXT), ("dst_port", INT), ("tls", BOOL), ("status", INT),
    ("error_class", TEXT), ("bytes_out", INT), ("bytes_in", INT), ("fingerprint", BYTES),
    ("addon", TEXT), ("addon_path", LIST), ("stack", LIST), ("trigger_kind", TEXT),
    ("trigger_name", TEXT), ("odoo_uid", INT), ("component", TEXT), ("class", TEXT),
    ("self_egress", BOOL), ("gap_count", INT), ("gap_reason", TEXT), ("detail", TEXT)]
REQUIRED = {name for name, _ in FIELDS[:5]}
ROW_FIELDS = {name for name, _ in FIELDS} | {"prev_hash", "row_hash"}
# For speed: per set of keys, which fields to encode and the bytes before each
# (the NULLs of the absent fields in between); and the encodings of the texts
# and lists seen before (stack frames, hosts... repeat from row to row).
PLANS, TEXTS, LISTS, CACHE_LIMIT = {}, {}, {}, 100_000


def text(v):
    b = v.encode("utf-8")  # only a str has .encode
    return U32(len(b)) + b


def plan(keys):
    if not REQUIRED.issubset(keys) or not ROW_FIELDS.issuperset(keys):
        raise TypeError("a field is missing or unknown")
    steps, before = [], b"\x01"
    for i, (name, kind) in enumerate(FIELDS):
        if name in keys:
            steps.append((name, kind, before + (b"\x01" if i >= 5 else b"")))
            before = b""
        else:
            before += b"\x00"
    PLANS[keys] = steps, before
    return steps, before


def canonical(row):
    steps, after = PLANS.get(tuple(row)) or plan(tuple(row))
    out = []
    for name, kind, before in steps:
        v = row[name]
        if v is None:
            if name in REQUIRED:
                raise TypeError(f"{name} is null")
            out.append(before[:-1] + b"\x00")
            continue
        out.append(before)
        if kind is TEXT:
            b = TEXTS.get(v)
            if b is None:
                b = text(v)
                if len(TEXTS) < CACHE_LIMIT:
                    TEXTS[v] = b
        elif kind is INT:
            if type(v) is not int:
                raise TypeError(f"{name} is not an integer")
            b = I64(v)
        elif kind is LIST:
            if type(v) is not list:
                raise TypeError(f"{name} is not a list")
            b = LISTS.get(tuple(v))
            if b is None:
                b = I64(len(v)) + b"".join([text(item) for item in v])
                if len(LISTS) < CACHE_LIMIT:
                    LISTS[tuple(v)] = b
        elif kind is BOOL:
            if v is not True and v is not False:
                raise TypeError(f"{name} is not a boolean")
            b = b"\x01" if v else b"\x00"
        else:  # bytes (the fingerprint) are hex text in the export
            b = bytes.fromhex(v)
            if len(v) != 2 * len(b):
                raise ValueError("not plain hex")
            b = U32(len(b)) + b
        out.append(b)
    out.append(after)
    return b"".join(out)


# ---- 2. Reading the file: refuse whatever the Rust verifier refuses --------

def unhex(v, n, what):
    if type(v) is not str or len(v) != 2 * n:
        raise CannotCheck(f"{what}: expected {2 * n} hex digits")
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise CannotCheck(f"{what}: invalid hex") from None


def integer(v, what):
    if type(v) is not int or not -2**63 <= v < 2**63:
        raise CannotCheck(f"{what}: expected a 64-bit integer")
    return v


def fields(obj, required, optional, what):
    if type(obj) is not dict or not required <= obj.keys() <= required | optional:
        raise CannotCheck(f"{what}: expected an object with the fields {sorted(required)}")
    return obj


def no_duplicate_keys(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise CannotCheck("a JSON object has the same key twice")
    return obj


def head(h, what, version):
    signer = {"public_key", "collector"} if version >= 2 else set()  # version 2 names it
    fields(h, {"seq", "row_hash", "signed_at_us", "hmac", "signature"} | signer, set(), what)
    if signer and type(h["collector"]) is not str:
        raise CannotCheck(f"{what}: collector is not a string")
    return {"seq": integer(h["seq"], what), "signed_at_us": integer(h["signed_at_us"], what),
            "row_hash": unhex(h["row_hash"], 32, what), "hmac": unhex(h["hmac"], 32, what),
            "signature": unhex(h["signature"], 64, what),
            "public_key": unhex(h["public_key"], 32, what) if signer else None,
            "collector": h["collector"] if signer else None}


def header(doc):
    """Checks and decodes the file's fields (all but the rows)."""
    fields(doc, {"format", "version", "database", "exported_at_us", "range", "anchor",
                 "public_key", "signed_heads", "rows", "digest", "hmac", "signature"},
           {"latest_head"}, "the file")
    if doc["format"] != "egress-audit-export" or type(doc["version"]) is not int \
            or doc["version"] not in (1, 2):
        raise CannotCheck("not an egress-audit export of version 1 or 2")
    r = fields(doc["range"], {"from", "to", "to_end"}, set(), "range")
    if integer(r["from"], "range") < 1 or type(r["to_end"]) is not bool:
        raise CannotCheck("range: invalid")
    integer(r["to"], "range")
    integer(doc["exported_at_us"], "exported_at_us")
    if type(doc["database"]) is not str or type(doc["rows"]) is not list \
            or type(doc["signed_heads"]) is not list:
        raise CannotCheck("database, rows or signed_heads: invalid")
    for name, n in (("anchor", 32), ("public_key", 32), ("digest", 32), ("hmac", 32),
                    ("signature", 64)):
        doc[name] = unhex(doc[name], n, name)
    v = doc["version"]
    doc["signed_heads"] = [head(h, "a signed head", v) for h in doc["signed_heads"]]
    latest = doc.get("latest_head")
    doc["latest_head"] = None if latest is None else head(latest, "latest_head", v)
    return doc


class BadRow(Exception):
    """Row (index, reason) of the rows given to check_rows cannot be read."""


def check_rows(rows):
    """The rows reduced to what the checks need, column by column: seqs; prev_hashes
    and row_hashes (32 bytes each, joined); whether each row's contents hash to its
    row_hash (a byte 0 or 1 each); databases."""
    seqs, prevs, hashes, oks, dbs, same = array("q"), [], [], bytearray(), [], {}
    for i, row in enumerate(rows):
        try:
            if type(row) is not dict:
                raise TypeError("not an object")
            prev, stored = bytes.fromhex(row["prev_hash"]), bytes.fromhex(row["row_hash"])
            if len(prev) != 32 or len(stored) != 32 or len(row["prev_hash"]) != 64 \
                    or len(row["row_hash"]) != 64:
                raise ValueError("prev_hash and row_hash must be 64 hex digits")
            oks.append(hashlib.sha256(prev + canonical(row)).digest() == stored)
        except (KeyError, TypeError, ValueError, AttributeError, struct.error) as e:
            raise BadRow(i, repr(e)) from None
        seqs.append(row["seq"])
        prevs.append(prev)
        hashes.append(stored)
        dbs.append(same.setdefault(row["database"], row["database"]))  # one str object each
    return seqs, b"".join(prevs), b"".join(hashes), bytes(oks), dbs


# A file as the collector writes it has its rows array after all other fields but
# the digest and signatures, one row per line: it is read in chunks of rows, cut
# where a line ends with "," and the next starts with "{", checked in parallel.
ROWS = re.compile(rb'"rows"[ \t\r\n]*:[ \t\r\n]*\[')
CUT = re.compile(rb",[ \t\r]*\n[ \t\r\n]*\{")
CHUNK, PARALLEL_FROM = 16 << 20, 4 << 20  # bytes


def split(f, size, jobs):
    """(the file's fields, byte ranges of chunks of its rows) for a file laid out
    as the collector writes it; None for any other."""
    text = f.read(CHUNK)  # the signed heads come before the rows
    found = ROWS.search(text)
    f.seek(max(0, size - 65536))
    tail_at, tail = f.tell(), f.read()
    end = tail_at + tail.rfind(b"]")
    if not found or end < found.end():
        return None
    start = found.end()
    # The file with a marker in place of start..end must read as an export whose
    # rows are that marker (random: nothing else can be), so that start..end is
    # exactly the rows array and the rest of the file is all read here.
    marker = os.urandom(16).hex()
    try:
        doc = json.loads(text[:start - 1] + f'["{marker}"]'.encode() + tail[end - tail_at + 1:],
                         object_pairs_hook=no_duplicate_keys)
    except (ValueError, CannotCheck):
        return None
    if type(doc) is not dict or doc.get("rows") != [marker]:
        return None
    cuts, step = [start], max(1, min(CHUNK, (end - start) // jobs))
    for at in range(start + step, end, step):
        f.seek(at)
        m = CUT.search(f.read(1 << 20))
        if m and cuts[-1] < at + m.start() and at + m.end() <= end:
            cuts += [at + m.start(), at + m.end() - 1]  # a chunk's comma, the next one's {
    cuts.append(end)
    return doc, list(zip(cuts[::2], cuts[1::2]))


def read_chunk(span):
    """The rows of span = (path, start, end): rows separated by commas, checked."""
    path, start, end = span
    with open(path, "rb") as f:
        f.seek(start)
        rows = json.loads(b"[" + f.read(end - start) + b"]", object_pairs_hook=no_duplicate_keys)
    return len(rows), check_rows(rows)


def read_export(path, jobs=1):
    """The file's fields (checked and decoded) and its rows (as check_rows)."""
    pool, done = None, 0
    seqs, prevs, hashes, oks, dbs = array("q"), [], [], [], []
    try:
        with open(path, "rb") as f:
            layout = split(f, os.fstat(f.fileno()).st_size, jobs)
            if layout is None:
                f.seek(0)
                layout = json.load(f, object_pairs_hook=no_duplicate_keys), None
        doc, spans = header(layout[0]), layout[1]
        if spans is None:
            parts = [(len(doc["rows"]), check_rows(doc["rows"]))]
        else:
            spans = [(path, start, end) for start, end in spans]
            if jobs > 1 and spans[-1][2] - spans[0][1] > PARALLEL_FROM:
                pool = multiprocessing.Pool(min(jobs, len(spans)))
            parts = (pool.imap if pool else map)(read_chunk, spans)
        for n, part in parts:  # in file order
            if n == 0 and len(spans) > 1:  # only whitespace between two cuts
                raise ValueError("a chunk of the rows array holds no row")
            seqs.extend(part[0]), prevs.append(part[1]), hashes.append(part[2])
            oks.append(part[3]), dbs.extend(part[4])
            done += n
    except BadRow as e:
        raise CannotCheck(f"row {done + e.args[0] + 1} of the file: {e.args[1]}") from None
    except (OSError, ValueError) as e:
        raise CannotCheck(f"cannot read {path}: {e}") from None
    finally:
        if pool:
            pool.terminate()
    return doc, (seqs, b"".join(prevs), b"".join(hashes), b"".join(oks), dbs)


# ---- 3. Signed inputs (docs/EXPORT_FORMAT.md sections 2 and 4) -------------

def head_input(database, h):
    return (b"\x01" + text("egress-audit signed head") + text(database) + I64(h["seq"])
            + h["row_hash"] + I64(h["signed_at_us"]))


def head_bytes(h):
    signer = b"" if h["public_key"] is None else h["public_key"] + text(h["collector"])
    return (I64(h["seq"]) + h["row_hash"] + I64(h["signed_at_us"]) + h["hmac"] + h["signature"]
            + signer)


def digest_input(doc, row_hashes):  # row_hashes: every row's, joined
    r, latest = doc["range"], doc["latest_head"]
    return b"".join([
        bytes([doc["version"]]), text("egress-audit export"), text(doc["database"]),
        I64(doc["exported_at_us"]), I64(r["from"]), I64(r["to"]),
        b"\x01" if r["to_end"] else b"\x00", doc["anchor"], doc["public_key"],
        I64(len(row_hashes) // 32), row_hashes,
        I64(len(doc["signed_heads"])), *map(head_bytes, doc["signed_heads"]),
        b"\x00" if latest is None else b"\x01" + head_bytes(latest)])


def ed25519_valid(key, message, signature):
    if Ed25519PublicKey is None:
        return True  # not checked: the report says so plainly
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


def hmac_valid(key, message, tag):
    return key is None or hmac.compare_digest(hmac.new(key, message, hashlib.sha256).digest(), tag)


# ---- 4. The checks, in the order of the Rust verifier ----------------------

def verify(doc, rows, hmac_key, keyring, witness):
    """Returns (problems as (position, message), incomplete reasons, key, last signed seq).
    keyring: the public keys pinned (--pubkey, --keyring) as {key: name}, or None."""
    seqs, prevs, hashes, oks, dbs = rows  # as check_rows returns them
    n = len(seqs)
    db, anchor, r = doc["database"], doc["anchor"], doc["range"]
    first, to = r["from"], r["to"]
    problems, incomplete = [], []
    if keyring:
        key = doc["public_key"] if doc["public_key"] in keyring else next(iter(keyring))
    else:
        key = witness["public_key"] if witness else doc["public_key"]
    if key != doc["public_key"]:  # 1. the public key
        whence = ("accepted by the witness" if not keyring else "given with --pubkey"
                  if len(keyring) == 1 else f"nor any of the {len(keyring)} keys of the keyring")
        problems.append(("export public key", f"the export is signed with public key "
                         f"{doc['public_key'][:8].hex()}…, not {key[:8].hex()}… {whence}: "
                         "it was re-signed by someone else"))

    expected, prev, bad = first, anchor, None  # 2. the chain, from the anchor
    if first == 1 and anchor != bytes(32):
        bad = (1, "the export starts at seq 1 but its anchor is not the genesis hash")
    # Column by column first: when every row is in place, linked and intact,
    # the walk below, which names the first row that is not, has nothing to find.
    if bad is None and n and seqs == array("q", range(first, first + n)) \
            and first + n - 1 <= to and prevs == (anchor + hashes)[:32 * n] \
            and 0 not in oks and dbs.count(db) == n:
        expected = first + n
    for i in range(n) if bad is None and expected == first else []:
        seq, prev_hash, row_hash = seqs[i], prevs[32 * i:32 * i + 32], hashes[32 * i:32 * i + 32]
        ok, row_db = oks[i], dbs[i]
        if seq != expected:
            bad = (min(seq, expected),
                   f"row seq {expected} is missing or out of place: seq {seq} comes after "
                   f"seq {expected - 1}" if seq > expected else
                   f"seq {seq} appears again or out of place after seq {expected - 1}")
        elif seq > to:
            bad = (seq, f"the row lies beyond the export's range, which ends at seq {to}")
        elif row_db != db or dbs[0] != db:
            bad = (seq, f"the row belongs to another database than {json.dumps(db)}")
        elif prev_hash != prev:
            bad = (seq, "its prev_hash is not the genesis hash (32 zero bytes)" if seq == first == 1
                   else "its prev_hash is not the export's anchor" if seq == first
                   else f"its prev_hash does not match the row_hash of seq {seq - 1}")
        elif not ok:
            bad = (seq, "its contents do not match its row_hash: the row was altered")
        if bad:
            break
        prev, expected = row_hash, expected + 1
    if bad is None and expected - 1 < to:
        bad = (expected, f"the export is cut: its rows end at seq {expected - 1} "
                         f"but its range runs to seq {to}")
    if bad:
        problems.append((f"row seq {bad[0]}", bad[1]))

    def row_hash_at(seq):  # where it should be, else the first row carrying it
        i = seq - first
        if not (0 <= i < n and seqs[i] == seq):
            i = next((j for j, s in enumerate(seqs) if s == seq), None)
        return None if i is None else hashes[32 * i:32 * i + 32]

    if not keyring:  # the file vouches for its heads' keys only as far as its own key goes
        others = {}
        for h in doc["signed_heads"] + ([doc["latest_head"]] if doc["latest_head"] else []):
            if h["public_key"] is not None and h["public_key"] != key:
                others.setdefault(f"{h['public_key'][:8].hex()} ({h['collector']})", h["seq"])
        if others:
            incomplete.append(
                f"signed heads from seq {min(others.values())} on were signed with other keys "
                f"than the export's: {', '.join(others)}; pin the keyring (--pubkey for every "
                "collector, or --keyring FILE) to check who signed them")

    def head_problem(h):
        # Each head with the key that signed it (version 1: the file's), which
        # must be in the keyring when one is pinned; the HMAC key given is
        # the exporting collector's, so it checks that collector's heads.
        signer = h["public_key"] or doc["public_key"]
        if keyring and signer not in keyring:
            by = "" if h["collector"] is None else f" (collector {json.dumps(h['collector'])})"
            return (f"it was signed with key {signer[:8].hex()}{by}, which is not in the keyring: "
                    "a collector the auditor did not pin, or a forger")
        if not keyring and h["public_key"] is None:
            signer = key
        message = head_input(db, h)
        if not ed25519_valid(signer, message, h["signature"]):
            return f"its Ed25519 signature is not valid for public key {signer[:8].hex()}…: forged or altered"
        if signer == doc["public_key"] and not hmac_valid(hmac_key, message, h["hmac"]):
            return "its HMAC is not valid for the given key: forged or altered"

    def row_mismatch(h):
        found = row_hash_at(h["seq"])
        if found is None:
            return f"the journal has no row seq {h['seq']}"
        if found != h["row_hash"]:
            return (f"the log was altered at or before seq {h['seq']} after that head was signed: "
                    f"row {h['seq']} has hash {found[:8].hex()}…, the head signed "
                    f"{h['row_hash'][:8].hex()}…")

    signed = None  # 3. every listed signed head
    for h in doc["signed_heads"]:
        if signed is not None and h["seq"] < signed:
            m = "it is listed after a head of a higher seq: heads reordered or an older head replayed"
        elif not first <= h["seq"] <= to:
            m = f"it lies outside the export's range (seq {first} to {to})"
        else:
            m = head_problem(h) or row_mismatch(h)
        if m:
            problems.append((f"signed head seq {h['seq']}", m))
            break
        signed = h["seq"]

    latest, heads = doc["latest_head"], doc["signed_heads"]  # 4. the latest head
    last_row = seqs[-1] if n else first - 1
    if latest is None and heads:
        problems.append((f"signed head seq {heads[-1]['seq']}",
                         "the export lists signed heads but not the latest one"))
    elif latest is not None:
        newer = next((h for h in heads if h["seq"] > latest["seq"]), None)
        m = (f"the latest signed head is older than signed head seq {newer['seq']} in the same "
             "export: an older head was replayed") if newer else head_problem(latest)
        if not m and latest["seq"] > to and r["to_end"]:
            m = (f"the log was truncated or altered after signed head seq {latest['seq']}: that "
                 "head was signed, but the export runs to the end of the journal and ends at "
                 f"seq {last_row}")
        elif not m and first <= latest["seq"] <= to:
            m = row_mismatch(latest)
            signed = signed if m else max(signed or 0, latest["seq"])
        if m:
            problems.append((f"signed head seq {latest['seq']}", m))

    digest = hashlib.sha256(digest_input(doc, hashes)).digest()  # 5.
    if digest != doc["digest"]:
        m = "the file's content does not match its digest: it was altered after export"
    elif not ed25519_valid(key, digest, doc["signature"]):
        m = f"the export's Ed25519 signature is not valid for public key {key[:8].hex()}…"
    elif not hmac_valid(hmac_key, digest, doc["hmac"]):
        m = "the export's HMAC is not valid for the given key"
    else:
        m = None
    if m:
        problems.append(("export signature", m))

    if witness:  # 6. the witness: the head it saw must still be there, unchanged
        w, m = witness["seq"], None
        if witness["database"] != db:
            incomplete.append(f"the witness is for database {json.dumps(witness['database'])}, "
                              f"not {json.dumps(db)}: keep one witness file per database")
        elif witness["public_key"] != key and not (keyring and witness["public_key"] in keyring):
            m = (f"the witness accepted exports signed with public key "
                 f"{witness['public_key'][:8].hex()}…, this one is checked with {key[:8].hex()}…")
        elif w > last_row:
            m = (f"the log was rewritten or truncated since the witness saw seq {w}: "
                 f"this export ends at seq {last_row}")
        elif w >= first and row_hash_at(w) != witness["row_hash"]:
            m = (f"the log was rewritten since the witness saw seq {w}: row {w} no longer has "
                 f"hash {witness['row_hash'][:8].hex()}…")
        elif w == first - 1 and anchor != witness["row_hash"]:
            m = (f"the log was rewritten since the witness saw seq {w}: the export's anchor is "
                 "not that row's hash")
        elif w < first - 1:
            incomplete.append(f"the export starts at seq {first}, after seq {w + 1} that the "
                              f"witness saw: export from seq {w + 1} or earlier to check it")
        if m:
            problems.append((f"witness seq {w}", m))
    return problems, incomplete, key, signed


# ---- 5. The witness file and the keys --------------------------------------

def read_keyring(pubkeys, files):
    """The keyring of --pubkey values and --keyring files ({key: name}), or None."""
    if not pubkeys and not files:
        return None
    ring = {}
    for v in pubkeys:
        ring.setdefault(unhex(v.strip(), 32, f"--pubkey {v!r}"), None)
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise CannotCheck(f"--keyring {path}: {e}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, _, name = line.partition(" ")
            if not re.fullmatch(r"[0-9a-fA-F]{64}", k):
                raise CannotCheck(f"--keyring {path}: line {n}: {k!r} is not 64 hex digits "
                                  "(one public key a line, then optionally a name)")
            ring.setdefault(bytes.fromhex(k), name.strip() or None)
    if not ring:
        raise CannotCheck("the keyring holds no key: one public key a line "
                          "(`egress-collector keys --db NAME` lists them)")
    return ring


def load_witness(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path, "rb") as f:
            w = fields(json.load(f), {"format", "version", "database", "seq", "row_hash",
                                      "signed_at_us", "public_key"}, set(), "witness")
    except (OSError, ValueError) as e:
        raise CannotCheck(f"witness {path}: {e}") from None
    if w["format"] != "egress-audit-witness" or w["version"] != 1:
        raise CannotCheck(f"witness {path}: unsupported format")
    integer(w["seq"], "witness")
    return dict(w, row_hash=unhex(w["row_hash"], 32, "witness"),
                public_key=unhex(w["public_key"], 32, "witness"))


def save_witness(path, doc, seq, key):
    """Keeps the highest signed head matched against a row (docs §6)."""
    h = max((h for h in doc["signed_heads"] + [doc["latest_head"]] if h and h["seq"] == seq),
            key=lambda h: h["signed_at_us"])
    w = {"format": "egress-audit-witness", "version": 1, "database": doc["database"],
         "seq": seq, "row_hash": h["row_hash"].hex(), "signed_at_us": h["signed_at_us"],
         "public_key": key.hex()}
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(json.dumps(w, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a crash leaves the old witness or the new one


def read_hmac_key(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CannotCheck(f"cannot read HMAC key {path}: {e}") from None
    if len(data) == 32:
        return data
    try:
        return unhex(data.decode().strip(), 32, "")
    except (CannotCheck, UnicodeDecodeError):
        raise CannotCheck(f"HMAC key {path} must hold 32 raw bytes or 64 hex digits") from None


# ---- 6. The command ---------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description="Verify an egress-audit export file.")
    p.add_argument("file")
    p.add_argument("--hmac-key", metavar="FILE", help="the database's HMAC key file")
    p.add_argument("--pubkey", metavar="HEX", action="append", default=[],
                   help="an Ed25519 public key you trust (repeat it for several collectors)")
    p.add_argument("--keyring", metavar="FILE", action="append", default=[],
                   help="a keyring file: one public key a line, optionally followed by a name")
    p.add_argument("--witness", metavar="STATE", help="the witness state file")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes checking rows (default: one per core)")
    a = p.parse_args(argv)
    try:
        hmac_key = read_hmac_key(a.hmac_key) if a.hmac_key else None
        pubkey = read_keyring(a.pubkey, a.keyring)
        witness = load_witness(a.witness) if a.witness else None
        doc, rows = read_export(a.file, max(1, a.jobs))
    except CannotCheck as e:
        print(f"Could not check the export: {e}", file=sys.stderr)
        return 2
    problems, incomplete, key, signed = verify(doc, rows, hmac_key, pubkey, witness)
    if problems:
        print(f"Export TAMPERED — first bad position: {problems[0][0]}: {problems[0][1]}")
        for position, message in problems[1:]:
            print(f"  also: {position}: {message}")
        return 1
    if Ed25519PublicKey is None:
        print("WARNING: Ed25519 signatures were NOT checked: the Python package "
              "'cryptography' is not installed (pip install cryptography).")
        if hmac_key is None:
            incomplete.append("no signature was checked: install 'cryptography' or give --hmac-key")
    for reason in incomplete:
        print(f"Could not check the export: {reason}")
    if incomplete:
        return 2
    r = doc["range"]
    schemes = " and ".join(s for s, on in (("Ed25519", Ed25519PublicKey), ("HMAC", hmac_key)) if on)
    print("Export verified OK — no tampering detected.")
    print(f"  database:     {doc['database']}")
    print(f"  rows:         seq {r['from']} to {r['to']} ({len(rows[0])} rows, each re-hashed and "
          "linked), " + ("chained from the genesis hash" if r["from"] == 1 else
                         f"chained from the anchor {doc['anchor'][:8].hex()}…"))
    print(f"  signatures:   {schemes}" + ("" if hmac_key else " (HMAC not checked: no --hmac-key)"))
    # The latest head is usually one of the listed ones too: count it once.
    heads = len(doc["signed_heads"]) + bool(doc["latest_head"]
                                              and doc["latest_head"] not in doc["signed_heads"])
    print(f"  signed heads: {heads} checked; "
          + (f"rows up to seq {signed} are under a signed head" if signed else "none in range"))
    print(f"  public key:   {key.hex()}" + ("" if pubkey or witness else
          " (the file's own: pin it with --pubkey or --witness)"))
    signers = {h["public_key"]: h["collector"] for h in doc["signed_heads"] if h["public_key"]}
    if len(signers) > 1:
        print(f"  signers:      {len(signers)} keys signed heads: " + ", ".join(
            f"{k[:8].hex()} ({c})" for k, c in signers.items()))
    if a.witness and signed and (witness is None or signed > witness["seq"]):
        save_witness(a.witness, doc, signed, key)
        print(f"  witness:      now at seq {signed} ({a.witness})")
    elif a.witness:
        print(f"  witness:      unchanged ({a.witness})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
