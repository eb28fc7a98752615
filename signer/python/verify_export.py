#!/usr/bin/env python3
"""Verify an egress-audit export file with the Python standard library only.

    python3 verify_export.py FILE [--hmac-key FILE] [--pubkey HEX] [--witness STATE]

Checks, in this order (docs/EXPORT_FORMAT.md section 5): 1. the public key,
2. the chain of rows from the anchor, 3. every signed head, 4. the latest
signed head (truncation, replay), 5. the export's digest and signatures,
6. the witness. Ed25519 signatures are checked with the `cryptography` package
when it is installed; without it this script says plainly that they were NOT
checked, and relies on the HMAC (--hmac-key) alone.

Exit status: 0 verified, 1 tampered (the first bad position is named),
2 could not check.
"""
import argparse
import hashlib
import hmac
import json
import os
import struct
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:
    Ed25519PublicKey = None

I64, U32 = struct.Struct(">q").pack, struct.Struct(">I").pack


class CannotCheck(Exception):
    """The file, a key or the witness cannot be read: exit 2."""


# ---- 1. The journal row's canonical encoding (docs/JOURNAL_FORMAT.md) ------
# Optional fields: b"\x00" for NULL, else b"\x01" and the value. Types are
# checked strictly (in Python, True is also an int: refuse it).

def text(v):
    b = v.encode("utf-8")  # only a str has .encode
    return U32(len(b)) + b


def opt_int(v):
    if type(v) is not int:
        raise TypeError("not an integer")
    return b"\x01" + I64(v)


def opt_text(v):
    return b"\x01" + text(v)


def opt_list(v):
    if type(v) is not list:
        raise TypeError("not a list")
    return b"\x01" + I64(len(v)) + b"".join([text(item) for item in v])


def opt_bool(v):
    if v is not True and v is not False:
        raise TypeError("not a boolean")
    return b"\x01\x01" if v else b"\x01\x00"


def opt_hex(v):  # bytes (the fingerprint) are hex text in the export
    b = bytes.fromhex(v)
    if len(v) != 2 * len(b):
        raise ValueError("not plain hex")
    return b"\x01" + U32(len(b)) + b


OPTIONAL = [  # fields 6 to 42, in canonical order
    ("worker_id", opt_int), ("worker_pid", opt_int), ("worker_uid", opt_int),
    ("worker_seq", opt_int), ("started_at_us", opt_int), ("duration_us", opt_int),
    ("channel", opt_text), ("protocol", opt_text), ("direction", opt_text),
    ("method", opt_text), ("host", opt_text), ("port", opt_int), ("path", opt_text),
    ("query_keys", opt_list), ("header_names", opt_list), ("src_ip", opt_text),
    ("src_port", opt_int), ("dst_ip", opt_text), ("dst_port", opt_int),
    ("tls", opt_bool), ("status", opt_int), ("error_class", opt_text),
    ("bytes_out", opt_int), ("bytes_in", opt_int), ("fingerprint", opt_hex),
    ("addon", opt_text), ("addon_path", opt_list), ("stack", opt_list),
    ("trigger_kind", opt_text), ("trigger_name", opt_text), ("odoo_uid", opt_int),
    ("component", opt_text), ("class", opt_text), ("self_egress", opt_bool),
    ("gap_count", opt_int), ("gap_reason", opt_text), ("detail", opt_text),
]
ROW_FIELDS = {"seq", "prev_hash", "row_hash", "database", "kind", "recorded_at_us",
              "collector"} | {name for name, _ in OPTIONAL}


def canonical(row):
    if type(row["seq"]) is not int or type(row["recorded_at_us"]) is not int:
        raise TypeError("seq and recorded_at_us must be integers")
    parts = [b"\x01", I64(row["seq"]), text(row["database"]), text(row["kind"]),
             I64(row["recorded_at_us"]), text(row["collector"])]
    get = row.get
    for name, encode in OPTIONAL:
        v = get(name)
        parts.append(b"\x00" if v is None else encode(v))
    return b"".join(parts)


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


def head(h, what):
    fields(h, {"seq", "row_hash", "signed_at_us", "hmac", "signature"}, set(), what)
    return {"seq": integer(h["seq"], what), "signed_at_us": integer(h["signed_at_us"], what),
            "row_hash": unhex(h["row_hash"], 32, what), "hmac": unhex(h["hmac"], 32, what),
            "signature": unhex(h["signature"], 64, what)}


def read_export(path):
    try:
        with open(path, "rb") as f:
            doc = json.load(f, object_pairs_hook=no_duplicate_keys)
    except (OSError, ValueError) as e:
        raise CannotCheck(f"cannot read {path}: {e}") from None
    fields(doc, {"format", "version", "database", "exported_at_us", "range", "anchor",
                 "public_key", "signed_heads", "rows", "digest", "hmac", "signature"},
           {"latest_head"}, "the file")
    if doc["format"] != "egress-audit-export" or type(doc["version"]) is not int \
            or doc["version"] != 1:
        raise CannotCheck("not an egress-audit export of version 1")
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
    doc["signed_heads"] = [head(h, "a signed head") for h in doc["signed_heads"]]
    latest = doc.get("latest_head")
    doc["latest_head"] = None if latest is None else head(latest, "latest_head")
    return doc


def check_rows(rows):
    """Each row as (seq, prev_hash, row_hash, contents match row_hash, database)."""
    out = []
    for i, row in enumerate(rows):
        try:
            if type(row) is not dict or not ROW_FIELDS.issuperset(row):
                raise TypeError("not an object, or an unknown field")
            prev, stored = bytes.fromhex(row["prev_hash"]), bytes.fromhex(row["row_hash"])
            if len(prev) != 32 or len(stored) != 32 or len(row["prev_hash"]) != 64 \
                    or len(row["row_hash"]) != 64:
                raise ValueError("prev_hash and row_hash must be 64 hex digits")
            ok = hashlib.sha256(prev + canonical(row)).digest() == stored
        except (KeyError, TypeError, ValueError, AttributeError, struct.error) as e:
            raise CannotCheck(f"row {i + 1} of the file: {e!r}") from None
        out.append((row["seq"], prev, stored, ok, row["database"]))
    return out


# ---- 3. Signed inputs (docs/EXPORT_FORMAT.md sections 2 and 4) -------------

def head_input(database, h):
    return (b"\x01" + text("egress-audit signed head") + text(database) + I64(h["seq"])
            + h["row_hash"] + I64(h["signed_at_us"]))


def head_bytes(h):
    return I64(h["seq"]) + h["row_hash"] + I64(h["signed_at_us"]) + h["hmac"] + h["signature"]


def digest_input(doc, row_hashes):
    r, latest = doc["range"], doc["latest_head"]
    return b"".join([
        b"\x01", text("egress-audit export"), text(doc["database"]),
        I64(doc["exported_at_us"]), I64(r["from"]), I64(r["to"]),
        b"\x01" if r["to_end"] else b"\x00", doc["anchor"], doc["public_key"],
        I64(len(row_hashes)), *row_hashes,
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

def verify(doc, rows, hmac_key, pubkey, witness):
    """Returns (problems as (position, message), incomplete reasons, key, last signed seq)."""
    db, anchor, r = doc["database"], doc["anchor"], doc["range"]
    first, to = r["from"], r["to"]
    problems, incomplete = [], []
    key = pubkey or (witness["public_key"] if witness else doc["public_key"])
    if key != doc["public_key"]:  # 1. the public key
        problems.append(("export public key", f"the export is signed with public key "
                         f"{doc['public_key'][:8].hex()}…, not {key[:8].hex()}… "
                         f"{'given with --pubkey' if pubkey else 'accepted by the witness'}: "
                         "it was re-signed by someone else"))

    expected, prev, bad = first, anchor, None  # 2. the chain, from the anchor
    if first == 1 and anchor != bytes(32):
        bad = (1, "the export starts at seq 1 but its anchor is not the genesis hash")
    for seq, prev_hash, row_hash, ok, row_db in rows if bad is None else []:
        if seq != expected:
            bad = (min(seq, expected),
                   f"row seq {expected} is missing or out of place: seq {seq} comes after "
                   f"seq {expected - 1}" if seq > expected else
                   f"seq {seq} appears again or out of place after seq {expected - 1}")
        elif seq > to:
            bad = (seq, f"the row lies beyond the export's range, which ends at seq {to}")
        elif row_db != db or rows[0][4] != db:
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
        if 0 <= i < len(rows) and rows[i][0] == seq:
            return rows[i][2]
        return next((row[2] for row in rows if row[0] == seq), None)

    def head_problem(h):
        message = head_input(db, h)
        if not ed25519_valid(key, message, h["signature"]):
            return f"its Ed25519 signature is not valid for public key {key[:8].hex()}…: forged or altered"
        if not hmac_valid(hmac_key, message, h["hmac"]):
            return "its HMAC is not valid for the given key: forged or altered"

    def row_mismatch(h):
        found = row_hash_at(h["seq"])
        if found is None:
            return f"the export has no row seq {h['seq']}"
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
    last_row = rows[-1][0] if rows else first - 1
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

    digest = hashlib.sha256(digest_input(doc, [row[2] for row in rows])).digest()  # 5.
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
        elif witness["public_key"] != key:
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
    p.add_argument("--pubkey", metavar="HEX", help="the Ed25519 public key you trust")
    p.add_argument("--witness", metavar="STATE", help="the witness state file")
    a = p.parse_args(argv)
    try:
        hmac_key = read_hmac_key(a.hmac_key) if a.hmac_key else None
        pubkey = unhex(a.pubkey.strip(), 32, "--pubkey") if a.pubkey else None
        witness = load_witness(a.witness) if a.witness else None
        doc = read_export(a.file)
        rows = check_rows(doc["rows"])
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
    print(f"  rows:         seq {r['from']} to {r['to']} ({len(rows)} rows, each re-hashed and "
          "linked), " + ("chained from the genesis hash" if r["from"] == 1 else
                         f"chained from the anchor {doc['anchor'][:8].hex()}…"))
    print(f"  signatures:   {schemes}" + ("" if hmac_key else " (HMAC not checked: no --hmac-key)"))
    print(f"  signed heads: {len(doc['signed_heads']) + bool(doc['latest_head'])} checked; "
          + (f"rows up to seq {signed} are under a signed head" if signed else "none in range"))
    print(f"  public key:   {key.hex()}" + ("" if pubkey or witness else
          " (the file's own: pin it with --pubkey or --witness)"))
    if a.witness and signed and (witness is None or signed > witness["seq"]):
        save_witness(a.witness, doc, signed, key)
        print(f"  witness:      now at seq {signed} ({a.witness})")
    elif a.witness:
        print(f"  witness:      unchanged ({a.witness})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
