"""The Odoo addon's pure-Python parts (no Odoo import), checked without Odoo:
its chain check against the journal's golden vectors, and its Trust Report
rules. Runs in CI with the rest of pytest; the addon's Odoo tests need an
Odoo (tests/odoo/run.sh)."""

import ast
import importlib.util
import json
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIB = ROOT / "hook-client" / "odoo" / "mit_network_audit" / "lib"


def load(name):
    """``lib.<name>`` of the addon, imported as a module of a package of its
    own (the addon's package would import Odoo)."""
    if "addon_lib" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "addon_lib", LIB / "__init__.py", submodule_search_locations=[str(LIB)])
        package = importlib.util.module_from_spec(spec)
        sys.modules["addon_lib"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"addon_lib.{name}")


chain = load("chain")
report = load("report")
settings = load("settings")
VECTORS = json.loads((ROOT / "proto" / "vectors" / "journal_chain.json").read_text())
#: The journal's field table, as proto publishes it (proto/src/fields.rs).
FIELD_TABLE = json.loads((ROOT / "proto" / "vectors" / "journal_fields.json").read_text())


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


def test_every_call_is_in_one_table_local_included():
    doc = assemble([group("vendor", "lic.example", "maildesk", 2),
                    group("local", "127.0.0.1", "egress_test_caller", 3),
                    group("local", "10.0.0.5", "base", 1),
                    group("third_party", "api.openai.com", "ai", 7)])
    assert [r["host"] for r in doc["local"]["rows"]] == ["127.0.0.1", "10.0.0.5"]
    assert doc["local"]["totals"]["calls"] == 4
    listed = sum(doc[t]["totals"]["calls"] for t in ("vendor", "third_party", "unknown", "local"))
    assert listed == doc["summary"]["calls"] == 13


# ---- The journal's field list: every copy in the addon follows proto's table.

def column_types():
    """Each journal column's SQL type, by column."""
    types = {f["column"]: f["sql_type"] for f in FIELD_TABLE["fields"]}
    types.update((name, "bytea") for name in FIELD_TABLE["hash_columns"])
    return types


def test_the_chain_check_encodes_the_fields_of_proto_s_table():
    table = [(f["name"], f["kind"]) for f in FIELD_TABLE["fields"]]
    assert list(chain.REQUIRED_FIELDS + chain.OPTIONAL_FIELDS) == table
    required = [f["name"] for f in FIELD_TABLE["fields"] if f["required"]]
    assert [name for name, _ in chain.REQUIRED_FIELDS] == required


def test_the_chain_check_selects_the_columns_of_proto_s_table():
    types = column_types()
    expected = [chain._US.format(c) if types[c] == "timestamptz" else c
                for c in FIELD_TABLE["columns"]]
    assert [c.strip('"') for c in chain.SELECT_COLUMNS.split(", ")] == expected


#: Journal columns the log's model leaves out, and why.
NOT_IN_THE_LOG_MODEL = {"database": "every row of a database's journal is that database's"}
#: The model's column types for the journal's SQL types.
MODEL_TYPES = {"bigint": "int8", "text": "text", "boolean": "bool"}


def log_model_columns():
    """``EgressLog._source_columns`` of models/egress_log.py, read without
    importing Odoo: ``(name, sql_type, expression or None)`` each."""
    path = LIB.parent / "models" / "egress_log.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "_source_columns" for t in node.targets):
            return [tuple(ast.literal_eval(a) for a in call.args) + (None,) * (3 - len(call.args))
                    for call in node.value.elts]
    raise AssertionError("egress_log.py has no _source_columns")


def test_the_log_model_shows_every_journal_column_and_no_other():
    columns = log_model_columns()
    types = column_types()
    shown = set()
    for name, sql_type, expr in columns:
        if expr is None:
            shown.add(name)
            if name in types:
                assert MODEL_TYPES.get(types[name], types[name]) == sql_type, name
        else:
            shown.update(re.findall(r"\bsrc\.(\w+)", expr))
    journal = set(FIELD_TABLE["columns"])
    assert journal - shown == set(NOT_IN_THE_LOG_MODEL), "journal columns the model lacks"
    assert shown - journal == {"id"}, "model columns the journal lacks"


def test_the_settings_keys_are_proto_s():
    rust = (ROOT / "proto" / "src" / "settings.rs").read_text()
    keys = dict(re.findall(r'pub const (KEY_\w+): &str = "([^"]+)";', rust))
    assert keys, "no keys found in proto/src/settings.rs"
    assert {name: getattr(settings, name) for name in keys} == keys
    listed = re.search(r"SETTING_KEYS: \[&str; \d+\] = \[([^\]]*)\]", rust).group(1)
    assert settings.SETTING_KEYS == tuple(keys[k] for k in re.findall(r"KEY_\w+", listed))


def test_booleans_are_read_as_odoo_stores_them():
    assert [settings.truthy(v) for v in ("True", " 1", "yes", "ON")] == [True] * 4
    assert [settings.truthy(v) for v in ("False", "", "0", "off")] == [False] * 4
    assert settings.truthy(None, True) is True and settings.truthy(False, True) is True


def test_a_refusal_of_the_signer_is_an_alert_until_resumed():
    refused = json.dumps({"alarm": "signing_refused", "first_bad_seq": 10,
                          "reason": "the head this collector signed at seq 10: ..."})
    doc = report.assemble("db", [], [], [], None, None, None, {}, None, 19_994,
                          20_000 * report.DAY_US, last_alarm=(12, 5, "alarm", refused))
    assert doc["trust"]["signing_alarm"]["first_bad_seq"] == 10
    assert doc["verdict"]["level"] == "alert"
    assert "rewritten or cut at or before seq 10" in doc["verdict"]["headline"]
    resumed = json.dumps({"alarm": "signing_resumed", "reason": "restored"})
    doc = report.assemble("db", [], [], [], None, None, None, {}, None, 19_994,
                          20_000 * report.DAY_US, last_alarm=(13, 6, "alarm", resumed))
    assert "signing_alarm" not in doc["trust"]
    assert doc["verdict"]["level"] == "ok"


def test_a_superuser_odoo_role_is_an_alert():
    doc = report.assemble("db", [], [], [], None, None, None, {}, None, 19_994,
                          20_000 * report.DAY_US,
                          boundary_void=["Odoo's role odoo is a superuser"])
    assert doc["trust"]["boundary_void"] == ["Odoo's role odoo is a superuser"]
    assert doc["verdict"]["headline"].startswith("ALERT: Odoo's role odoo is a superuser")


ADDON = ROOT / "hook-client" / "odoo" / "mit_network_audit"


def test_channel_names_are_the_interceptor_s_and_unknown_ones_are_named():
    core = (ROOT / "hook-client" / "python" / "python" / "egress_hook" / "interceptor"
            / "_core.py").read_text()
    assert f"CHANNELS = {settings.CHANNELS!r}".replace("'", "\"") in core
    assert settings.parse_channels("SMTP; socket ,smtp") == ("smtp,socket", [])
    assert settings.parse_channels("smtp;bogus") == ("smtp", ["bogus"])
    assert settings.channels_error("smtp, http") is None
    assert settings.channels_error("SMTP; bogus") == (
        "Disabled channels: 'bogus' is no channel. Use a comma-separated list of http, smtp, "
        "imap, pop3, socket, dns (for example socket,smtp), or leave it empty to capture all.")
    assert settings.retention_error(0) is None and settings.retention_error("30") is None
    assert "-5 is not a number of days" in settings.retention_error(-5)


def test_only_a_change_of_meaning_is_a_change():
    e = settings.effective
    assert e(settings.KEY_STRICT, None) == e(settings.KEY_STRICT, "False")
    assert e(settings.KEY_ENABLED, None) == e(settings.KEY_ENABLED, "True")
    assert e(settings.KEY_RETENTION, None) == e(settings.KEY_RETENTION, "0")
    assert e(settings.KEY_DISABLED_CHANNELS, "") == e(settings.KEY_DISABLED_CHANNELS, None)
    assert e(settings.KEY_DISABLED_CHANNELS, "socket,smtp") == "smtp,socket"
    assert e(settings.KEY_STRICT, None) != e(settings.KEY_STRICT, "True")


def test_the_settings_help_is_the_same_on_both_pages_and_in_the_docs():
    import html

    views = html.unescape((ADDON / "views" / "res_config_settings_views.xml").read_text())
    docs = (ROOT / "docs" / "CONFIGURATION.md").read_text()
    for key, text in settings.HELP.items():
        assert views.count(text) == 2, key  # Odoo's Settings page, the Managers' page
        assert text in docs, key


def test_the_settings_history_is_every_setting_by_time():
    def change(seq, key, old, new):
        return (seq, seq * 1000, "config_change",
                json.dumps({"key": key, "old": old, "new": new, "user": "admin",
                            "reported_by": "odoo"}))

    events = [change(9, settings.KEY_DISABLED_CHANNELS, None, "smtp"),
              change(4, settings.KEY_STRICT, None, "True"),
              (6, 6000, "vacuum", "{}"),
              change(7, settings.KEY_RETENTION, "0", "30")]
    found = report.settings_in_force({settings.KEY_STRICT: "True",
                                      settings.KEY_RETENTION: "30",
                                      settings.KEY_DISABLED_CHANNELS: "socket,smtp"}, events)
    assert (found["enabled"], found["strict"], found["retention_days"],
            found["disabled_channels"]) == (True, True, 30, "smtp,socket")
    assert [(c["seq"], c["label"], c["old"], c["new"]) for c in found["changes"]] == [
        (4, "Strict redaction", None, "True"), (7, "Audit retention (days)", "0", "30"),
        (9, "Disabled channels", None, "smtp")]


def _user_facing_strings():
    """Every string literal of the addon's Python that a user may read: the
    arguments of ``_()``, the help and refusal texts and exception messages,
    and the arch of its views."""
    for path in ADDON.rglob("*.py"):
        if "tests" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield path, node.value
    for path in ADDON.rglob("*.xml"):
        yield path, path.read_text()


def test_no_user_facing_message_has_an_unfilled_placeholder():
    # Odoo's _() fills %(name)s and %s; a {name} in a _() text or a refusal
    # is printed as is. Field names in braces are the only {…} allowed: the
    # redaction placeholders ({email}, {id}, {uuid}, {token}) documented to
    # users, and format strings filled by f-strings (not constants).
    allowed = {"{email}", "{id}", "{uuid}", "{token}"}
    found = []
    for path, text in _user_facing_strings():
        for match in re.findall(r"\{[A-Za-z_][A-Za-z_0-9]*\}", text):
            if match not in allowed and path.suffix == ".py":
                found.append((path.name, match, text[:80]))
    assert found == []


def test_the_refusals_are_filled_by_odoo_s_translation_function():
    for name in ("egress_log", "egress_rollup", "signed_head", "view_backed"):
        source = (ADDON / "models" / f"{name}.py").read_text()
        refusal = re.search(r"_refusal = \(?\s*\"([^\"]*)", source).group(1)
        assert "%(" in refusal, name
        assert (refusal % {"operation": "unlink", "model": "Log"}).count("%(") == 0
