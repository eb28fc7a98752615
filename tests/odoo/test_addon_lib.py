"""The Odoo addon's pure-Python parts (no Odoo import), checked without Odoo:
its chain check against the journal's golden vectors, and its Trust Report
rules. Runs in CI with the rest of pytest; the addon's Odoo tests need an
Odoo (tests/odoo/run.sh)."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIB = ROOT / "hook-client" / "odoo" / "mit_network_audit" / "lib"


def load(name):
    spec = importlib.util.spec_from_file_location(f"addon_lib_{name}", LIB / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chain = load("chain")
report = load("report")
VECTORS = json.loads((ROOT / "proto" / "vectors" / "journal_chain.json").read_text())


def as_selected(vector):
    """A vector row as the addon selects it (chain.SELECT_COLUMNS order)."""
    row = vector["row"]
    values = [row["seq"], bytes.fromhex(vector["prev_hash"]), bytes.fromhex(vector["row_hash"]),
              row["database"], row["kind"], row["recorded_at_us"], row["collector"]]
    for name, encoding in chain.OPTIONAL_FIELDS:
        value = row.get(name)
        values.append(bytes(value) if encoding == "bytes" and value is not None else value)
    return tuple(values)


ROWS = [as_selected(v) for v in VECTORS]


def test_canonical_encoding_and_hashes_match_the_vectors():
    for vector, row in zip(VECTORS, ROWS):
        assert chain.canonical(row).hex() == vector["canonical_hex"]
        assert chain.row_hash(row[1], row) == row[2]


def check(rows, heads=(), end=None, batch=2):
    state = chain.new_state(rows[0][0] if rows else 1)
    for i in range(0, len(rows), batch):
        chain.check_batch(state, rows[i:i + batch])
    return chain.finish(state, rows[-1][0] if end is None else end, list(heads)), state


def test_a_clean_chain_verifies():
    assert check(ROWS, heads=[2]) == ((True, chain.VERIFIED), check(ROWS)[1])


def test_a_changed_row_is_named():
    tampered = list(ROWS)
    tampered[1] = tampered[1][:17] + ("elsewhere.example",) + tampered[1][18:]
    (ok, message), state = check(tampered)
    assert not ok and state["broken_seq"] == 2
    assert message.startswith("Chain broken at seq 2: its contents do not match")


def test_a_missing_row_is_named():
    (ok, message), state = check([ROWS[0], ROWS[2]])
    assert not ok and state["broken_seq"] == 2 and "row 2 is missing" in message


def test_a_signed_head_beyond_the_end_is_truncation():
    (ok, message), state = check(ROWS[:2], heads=[3])
    assert not ok and state["broken_seq"] == 3 and "truncated" in message


def test_a_pruned_prefix_needs_a_vacuum_entry_vouching_for_it():
    (ok, message), state = check(ROWS[1:])
    assert not ok and state["broken_seq"] == 1 and "no vacuum entry records" in message


def test_a_rewritten_signed_row_is_named():
    state = chain.new_state(1)
    chain.check_batch(state, ROWS)
    chain.check_heads(state, [(2, b"\x00" * 32, ROWS[1][2])])
    assert chain.finish(state, 3, [2])[0] is False and state["broken_seq"] == 2


def group(cls, host, addon, calls, self_egress=0, errors=0):
    return (cls, "", host, addon, calls, calls * 10, calls, errors, self_egress, 5)


def assemble(groups, events=(), gaps=(), settings=None):
    return report.assemble("db", groups, list(gaps), list(events), None, None, None,
                           settings or {}, None, 19_994, 20_000 * report.DAY_US)


def test_verdicts():
    assert assemble([])["verdict"]["headline"] == "No network calls were recorded in this period."
    doc = assemble([group("vendor", "lic.example", "maildesk", 2),
                    group("third_party", "api.openai.com", "ai", 7)])
    assert doc["verdict"] == {"level": "ok", "headline": "Only licence metadata goes to MIT.",
                              "lines": ["Only licence metadata goes to MIT."]}
    doc = assemble([group("unknown", "x.example", "mit_network_audit", 1, self_egress=1),
                    group("third_party", "api.openai.com", "ai", 7)],
                   gaps=[("buffer_full", 1, 3)])
    assert doc["verdict"]["lines"] == [
        "ALERT: the audit addon made 1 network call itself.",
        "1 call went to unknown destinations.",
        "3 events could not be recorded (gaps): the record of this period is incomplete.",
        "Nothing went to MIT.",
    ]
    assert doc["verdict"]["level"] == "alert"


def test_tables_are_cut_at_the_busiest_rows():
    groups = [group("third_party", f"h{i}.example", "a", i + 1) for i in range(60)]
    table = assemble(groups)["third_party"]
    assert len(table["rows"]) == 50 and table["more_rows"] == 10
    assert table["rows"][0]["calls"] == 60 and table["totals"]["calls"] == sum(range(61))


def test_capture_history_from_the_settings_changes():
    change = json.dumps({"key": report.KEY_ENABLED, "old": None, "new": "False",
                         "user": "admin", "reported_by": "odoo"})
    doc = assemble([], events=[(7, 1, "config_change", change)],
                   settings={report.KEY_ENABLED: "False"})
    capture = doc["trust"]["capture"]
    assert (capture["now"], capture["on_in_period"], capture["off_in_period"]) == (False, True, True)
    assert capture["changes"][0]["user"] == "admin"
    assert "Capture was switched off" in doc["verdict"]["lines"][0]


@pytest.mark.parametrize("text,expected", [("7d", 7 * report.DAY_US), ("all", None),
                                           ("24h", 86_400_000_000)])
def test_periods(text, expected):
    assert report.parse_since(text) == expected
