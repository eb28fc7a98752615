"""Checks signer/vectors/ (and proto's journal vectors) with the functions of
signer/python/verify_export.py: the Python side of tests/golden.rs.

    python3 signer/tests/vectors.py signer/vectors
"""
import hashlib
import hmac
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import verify_export as v  # noqa: E402


def load(directory, name):
    with open(os.path.join(directory, name)) as f:
        return json.load(f)


def main(directory):
    keys = load(directory, "keys.json")
    hmac_key = bytes.fromhex(keys["hmac_key"])
    public_key = bytes.fromhex(keys["public_key"])
    ed25519 = v.Ed25519PublicKey is not None
    if ed25519:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
        private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(keys["ed25519_seed"]))
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert raw == public_key, "public key from seed"

    for case in load(directory, "signed_heads.json"):
        head = {"seq": case["seq"], "row_hash": bytes.fromhex(case["row_hash"]),
                "signed_at_us": case["signed_at_us"]}
        message = v.head_input(case["database"], head)
        assert message.hex() == case["input_hex"], case["description"]
        tag = hmac.new(hmac_key, message, hashlib.sha256).hexdigest()
        assert tag == case["hmac"], case["description"]
        if ed25519:  # Ed25519 is deterministic: the same signature, byte for byte
            assert private.sign(message).hex() == case["signature"], case["description"]
            assert v.ed25519_valid(public_key, message, bytes.fromhex(case["signature"]))

    # The verifier's field list, against proto's field table.
    with open(os.path.join(HERE, "..", "..", "proto", "vectors", "journal_fields.json")) as f:
        table = json.load(f)
    assert v.FIELDS == [(t["name"], t["kind"]) for t in table["fields"]], \
        "verify_export.FIELDS differs from proto/vectors/journal_fields.json"
    assert v.REQUIRED == {t["name"] for t in table["fields"] if t["required"]}, "REQUIRED"
    assert v.ROW_FIELDS == {t["name"] for t in table["fields"]} | set(table["hash_columns"])

    # The journal's canonical encoding, against proto's vectors.
    with open(os.path.join(HERE, "..", "..", "proto", "vectors", "journal_chain.json")) as f:
        for entry in json.load(f):
            row = dict(entry["row"])
            if row.get("fingerprint") is not None:
                row["fingerprint"] = bytes(row["fingerprint"]).hex()
            assert v.canonical(row).hex() == entry["canonical_hex"], row["seq"]

    expected = load(directory, "export_small.expected.json")
    doc, rows = v.read_export(os.path.join(directory, "export_small.json"))
    assert rows[3] == b"\x01\x01\x01", "every row hashes to its row_hash"
    message = v.digest_input(doc, rows[2])
    assert message.hex() == expected["digest_input_hex"], "digest input"
    digest = hashlib.sha256(message).digest()
    assert digest.hex() == expected["digest"] == doc["digest"].hex(), "digest"
    assert hmac.new(hmac_key, digest, hashlib.sha256).hexdigest() == expected["hmac"]
    if ed25519:
        assert private.sign(digest).hex() == expected["signature"], "export signature"
    # Two collectors signed the heads: the exporter (keys.json) and host-b.
    signers = {h["public_key"]: h["collector"] for h in doc["signed_heads"]}
    assert signers.get(public_key) == "host-a" and len(signers) == 2, signers
    problems, incomplete, _, signed = v.verify(doc, rows, hmac_key, signers, None)
    assert not problems and not incomplete and signed == 3, (problems, incomplete, signed)
    problems, _, _, _ = v.verify(doc, rows, hmac_key, {public_key: "host-a"}, None)
    assert problems and problems[0][0] == "signed head seq 2", problems
    print("vectors OK" + ("" if ed25519 else " (Ed25519 NOT checked: no 'cryptography')"))


if __name__ == "__main__":
    main(sys.argv[1])
