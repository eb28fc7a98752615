//! `egress-collector setup` creates the roles, schema, journal and Odoo's
//! views, and running it again changes nothing.

use egress_tests::{serial, TestDb};

/// Everything setup is responsible for, as text: objects with their owners
/// and privileges, columns, triggers, functions, the view's definition, the
/// roles' attributes, and the row count of every table in the schema. Odoo's
/// views are `public.network_*`.
const SNAPSHOT: &str = r#"
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
  SELECT format('rel %s.%s kind=%s owner=%s acl=%s', n.nspname, c.relname, c.relkind,
                pg_get_userbyid(c.relowner), coalesce(c.relacl::text, '-'))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'egress' OR (n.nspname = 'public' AND c.relname LIKE 'network\_%')
  UNION ALL
  SELECT format('col %s.%s.%s %s', table_schema, table_name, column_name, data_type)
    FROM information_schema.columns
   WHERE table_schema = 'egress' OR (table_schema = 'public' AND table_name LIKE 'network\_%')
  UNION ALL
  SELECT format('trg %s %s %s', t.tgrelid::regclass, t.tgname, t.tgenabled)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE NOT t.tgisinternal AND c.relnamespace = 'egress'::regnamespace
  UNION ALL
  SELECT format('fn %s owner=%s', p.oid::regprocedure, pg_get_userbyid(p.proowner))
    FROM pg_proc p WHERE p.pronamespace = 'egress'::regnamespace
  UNION ALL
  SELECT format('nsp %s owner=%s acl=%s', nspname, pg_get_userbyid(nspowner), coalesce(nspacl::text, '-'))
    FROM pg_namespace WHERE nspname = 'egress'
  UNION ALL
  SELECT format('view %s %s', c.relname, pg_get_viewdef(c.oid))
    FROM pg_class c
   WHERE c.relnamespace = 'public'::regnamespace AND c.relname LIKE 'network\_%' AND c.relkind = 'v'
  UNION ALL
  SELECT format('migration %s %s', version, name) FROM egress.schema_migrations
  UNION ALL
  SELECT format('role %s login=%s super=%s', rolname, rolcanlogin, rolsuper)
    FROM pg_roles WHERE rolname IN ('egress_owner', 'egress_collector', '{ODOO}')
  UNION ALL
  SELECT format('rows %s.%s %s', n.nspname, c.relname,
                (xpath('/row/n/text()', query_to_xml(
                    format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname),
                    false, true, '')))[1]::text)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = 'egress' AND c.relkind = 'r'
) AS objects(line)
"#;

/// Every migration, in order: `setup` applies them all, once.
const MIGRATIONS: &str =
    "0001_journal 0002_components 0003_signed_heads 0004_worker_drops 0005_rollups 0006_workers \
     0007_trust_boundary 0017_forensic 0022_collectors 0023_policy_notify";

/// Odoo's views and their columns, as the Odoo addon reads them.
const ODOO_VIEWS: &[(&str, &str)] = &[
    (
        "network_egress_worker",
        "id worker_id collector pid uid hook_mode hook_version odoo_version first_seen \
         last_seen calls_seen",
    ),
    ("network_egress_rollup_state", "id watermark updated_at"),
];

#[test]
fn setup_creates_the_schema_and_is_idempotent() {
    let _serial = serial();
    let db = TestDb::new("setup");
    let sql = db.sql();
    let odoo = db.odoo_role();

    for (role, login) in [("egress_owner", false), ("egress_collector", true)] {
        let found = sql.int(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{role}' AND rolcanlogin = {login}"
        ));
        assert_eq!(found, 1, "role {role} with LOGIN = {login}");
    }
    assert_eq!(
        sql.int(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{odoo}'"
        )),
        1,
        "role {odoo}"
    );
    assert_eq!(
        sql.text(
            "SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'egress'"
        )
        .as_deref(),
        Some("egress_owner"),
        "schema egress is owned by egress_owner"
    );
    assert!(
        sql.bool(&format!(
            "SELECT has_table_privilege('{odoo}', 'public.network_egress_log', 'SELECT')"
        )),
        "Odoo's role may SELECT public.network_egress_log"
    );
    let missing = sql.text(&format!(
        "SELECT string_agg(c, ', ') FROM unnest(ARRAY[{}]) AS c \
         WHERE c NOT IN (SELECT column_name::text FROM information_schema.columns \
                         WHERE table_schema = 'egress' AND table_name = 'journal')",
        egress_proto::fields::COLUMNS
            .iter()
            .map(|c| format!("'{}'", c.column()))
            .collect::<Vec<_>>()
            .join(",")
    ));
    assert_eq!(
        missing, None,
        "egress.journal lacks columns of the contract"
    );

    assert_eq!(
        sql.text(
            "SELECT string_agg(format('%s_%s', lpad(version::text, 4, '0'), name), ' ' \
             ORDER BY version) FROM egress.schema_migrations"
        )
        .as_deref(),
        Some(MIGRATIONS)
    );
    for (view, columns) in ODOO_VIEWS {
        let found = sql.text(&format!(
            "SELECT string_agg(column_name::text, ' ' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{view}'"
        ));
        let expected = columns.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(found, Some(expected), "columns of public.{view}");
        assert!(
            sql.bool(&format!(
                "SELECT has_table_privilege('{odoo}', 'public.{view}', 'SELECT') \
                 AND NOT has_table_privilege('{odoo}', 'public.{view}', 'INSERT, UPDATE, DELETE') \
                 AND NOT has_table_privilege('public', 'public.{view}', 'SELECT')"
            )),
            "odoo may only SELECT public.{view}, and PUBLIC nothing"
        );
    }
    assert!(
        sql.bool(&format!(
            "SELECT has_table_privilege('egress_collector', 'egress.worker_seen', 'SELECT, INSERT, UPDATE') \
             AND NOT has_table_privilege('egress_collector', 'egress.worker_seen', 'DELETE, TRUNCATE') \
             AND NOT has_table_privilege('{odoo}', 'egress.worker_seen', 'SELECT, INSERT, UPDATE, DELETE')"
        )),
        "the collector may write egress.worker_seen, not remove from it; odoo has no access"
    );

    let snapshot = SNAPSHOT.replace("{ODOO}", odoo);
    let before = sql.text(&snapshot).unwrap_or_default();
    let again = db.run_setup();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        again.status.success(),
        "setup run twice failed ({}):\n{output}",
        again.status
    );
    assert!(
        output.to_lowercase().contains("already"),
        "a second setup says the migrations are already applied:\n{output}"
    );
    let after = sql.text(&snapshot).unwrap_or_default();
    assert_eq!(before, after, "a second setup changed the database");
}
