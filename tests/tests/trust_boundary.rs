//! The trust boundary (docs/SECURITY.md), tried as an attacker would: Odoo's
//! role, with only its own rights (it owns its database and its
//! `ir_config_parameter`, as a real Odoo's does), plants code wherever the
//! egress side might run it, then the collector, `verify` (as a superuser),
//! `report`, `vacuum-now`, `sign-now` and `setup` do their work. The planted
//! code records `current_user` in a table of its own and tries to use the
//! rights it runs with; each test asserts it never ran as an egress role or
//! a superuser, that nothing in `egress` changed, and what verify says.

use std::time::Duration;

use egress_tests::db::{conninfo, describe};
use egress_tests::rollups::{mismatches, wait_caught_up};
use egress_tests::{output_text, serial, verify, wait_until, Collector, Sql, TestDb};

const STRICT: &str = "mit_network_audit.strict_redaction";
const RETENTION: &str = "mit_network_audit.retention_days";

/// What the egress side is made of and who may do what with it, and Odoo's
/// role's powers: none of it may change while the attacks run.
const CATALOG: &str = r#"
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
  SELECT format('rel %s kind=%s owner=%s acl=%s rls=%s', c.oid::regclass, c.relkind,
                pg_get_userbyid(c.relowner), coalesce(c.relacl::text, '-'), c.relrowsecurity)
    FROM pg_class c WHERE c.relnamespace = 'egress'::regnamespace
  UNION ALL
  SELECT format('trg %s %s %s', t.tgrelid::regclass, t.tgname, t.tgenabled)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE NOT t.tgisinternal AND c.relnamespace = 'egress'::regnamespace
  UNION ALL
  SELECT format('fn %s owner=%s acl=%s', p.oid::regprocedure, pg_get_userbyid(p.proowner),
                coalesce(p.proacl::text, '-'))
    FROM pg_proc p WHERE p.pronamespace = 'egress'::regnamespace
  UNION ALL
  SELECT format('role %s super=%s createrole=%s bypassrls=%s', rolname, rolsuper,
                rolcreaterole, rolbypassrls)
    FROM pg_roles WHERE rolname IN ('egress_owner', 'egress_collector', '{ODOO}')
  UNION ALL
  SELECT format('member %s of %s', m.member::regrole, m.roleid::regrole)
    FROM pg_auth_members m WHERE m.member::regrole::text = '{ODOO}'
) AS objects(line)
"#;

/// A database with Odoo's role and settings table, a running collector,
/// some calls journaled, a head signed, the rollups caught up; and the
/// planted spy: `public.egress_spy` (who ran planted code) and
/// `public.egress_plant(tag)`, which records `current_user` and then tries
/// what the attacks of issue 13 did with the rights it got.
struct Scene {
    db: TestDb,
    collector: Collector,
    odoo: Sql,
    pubkey: String,
    catalog: String,
    cursors: String,
}

impl Scene {
    fn new(tag: &str) -> Scene {
        let db = TestDb::new_odoo(tag);
        let collector = Collector::start(db.name());
        collector.send_calls(&db, 5);
        let signed = collector.cli(&["sign-now", "--db", db.name()]);
        assert!(
            signed.status.success(),
            "sign-now: {}",
            output_text(&signed)
        );
        let pubkey = collector.cli(&["pubkey", "--db", db.name()]);
        let pubkey = String::from_utf8_lossy(&pubkey.stdout).trim().to_owned();
        assert!(wait_caught_up(&db, Duration::from_secs(30)));
        let odoo = db.odoo();
        let role = db.odoo_role().to_owned();
        odoo.batch(&format!(
            r#"
            CREATE TABLE public.egress_spy (tag text, who text, at timestamptz DEFAULT clock_timestamp());
            GRANT ALL ON public.egress_spy TO PUBLIC;
            CREATE FUNCTION public.egress_plant(tag text) RETURNS boolean
            LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO public.egress_spy (tag, who) VALUES (tag, current_user);
                BEGIN EXECUTE 'GRANT UPDATE, DELETE ON egress.journal, egress.signed_head TO {role}';
                EXCEPTION WHEN others THEN NULL; END;
                BEGIN EXECUTE 'ALTER TABLE egress.journal DISABLE TRIGGER USER';
                EXCEPTION WHEN others THEN NULL; END;
                BEGIN EXECUTE 'UPDATE egress.rollup SET calls = 0, bytes_out = 0';
                EXCEPTION WHEN others THEN NULL; END;
                BEGIN EXECUTE 'UPDATE egress.worker_cursor SET last_seq = last_seq + 1000000';
                EXCEPTION WHEN others THEN NULL; END;
                BEGIN EXECUTE 'ALTER ROLE {role} SUPERUSER';
                EXCEPTION WHEN others THEN NULL; END;
                RETURN true;
            END $$;
            GRANT EXECUTE ON FUNCTION public.egress_plant(text) TO PUBLIC;
            "#
        ))
        .unwrap_or_else(|e| panic!("plant the spy: {}", describe(&e)));
        let mut scene = Scene {
            db,
            collector,
            odoo,
            pubkey,
            catalog: String::new(),
            cursors: String::new(),
        };
        scene.catalog = scene.catalog_now();
        scene.cursors = scene.cursors_now();
        scene
    }

    fn catalog_now(&self) -> String {
        self.db
            .sql()
            .text(&CATALOG.replace("{ODOO}", self.db.odoo_role()))
            .unwrap_or_default()
    }

    fn cursors_now(&self) -> String {
        self.db
            .sql()
            .text("SELECT string_agg(format('%s=%s', worker_id, last_seq), ',' ORDER BY worker_id) FROM egress.worker_cursor")
            .unwrap_or_default()
    }

    /// Every egress path that used to touch Odoo's objects, and the rest:
    /// the settings poll (a setting changed by Odoo must apply), signing,
    /// the vacuum, the report, verify as a superuser and as the collector's
    /// role, and setup run again as a superuser.
    fn exercise(&self, with_setting: bool) -> Exercised {
        let db = &self.db;
        let mut failures = Vec::new();
        if with_setting {
            // As the addon does: its own table (where the planted code
            // runs, as Odoo), then the inbox.
            db.set_setting(STRICT, "True");
        } else if let Err(e) = self.odoo.batch(&format!(
            "INSERT INTO public.network_egress_setting (key, value) VALUES ('{STRICT}', 'True')"
        )) {
            failures.push(format!("hand the setting over: {}", describe(&e)));
        }
        // The watcher applied it: it journals the change it detected.
        let journaled = wait_until(
            Duration::from_secs(15),
            || {
                db.sql().int(&format!(
                    "SELECT count(*) FROM egress.journal WHERE kind = 'config_change' \
                     AND detail LIKE '%\"{STRICT}\"%'"
                ))
            },
            |n| *n > 0,
        );
        if journaled == 0 {
            failures.push("the collector did not apply the setting Odoo handed over".into());
        }
        let c = &self.collector;
        for args in [
            vec!["sign-now", "--db", db.name()],
            vec!["vacuum-now", "--db", db.name()],
            vec!["report", "--db", db.name(), "--json"],
            vec!["status"],
        ] {
            let out = c.cli(&args);
            if !out.status.success() {
                failures.push(format!("{args:?}: {}", output_text(&out)));
            }
        }
        let again = db.run_setup();
        if !again.status.success() {
            failures.push(format!("setup again: {}", output_text(&again)));
        }
        wait_caught_up(db, Duration::from_secs(30));
        let as_collector = verify(&conninfo("egress_collector", db.name()));
        if !as_collector.verified() {
            failures.push(format!("verify as the collector: {as_collector}"));
        }
        Exercised {
            pinned: egress_tests::collector::verify_with(
                &db.superuser_url(),
                &["--pubkey", &self.pubkey],
            ),
            failures,
        }
    }

    /// Who ran planted code, apart from Odoo's own role.
    fn strangers(&self) -> Vec<String> {
        self.db
            .sql()
            .query(&format!(
                "SELECT tag || ' ran as ' || who FROM public.egress_spy WHERE who <> '{}' ORDER BY at",
                self.db.odoo_role()
            ))
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// The promises after an attack: the planted code ran as nobody but
    /// Odoo's role, the egress side and Odoo's powers are as they were, the
    /// rollups still equal the journal, no cursor moved, and verify with
    /// the pinned key says OK.
    fn assert_unharmed(&self, exercised: &Exercised) {
        assert_eq!(
            self.strangers(),
            Vec::<String>::new(),
            "planted code ran with someone else's rights"
        );
        assert!(
            !self.db.sql().bool(&format!(
                "SELECT rolsuper FROM pg_roles WHERE rolname = '{}'",
                self.db.odoo_role()
            )),
            "Odoo's role became a superuser"
        );
        assert_eq!(self.catalog_now(), self.catalog, "the egress side changed");
        assert_eq!(self.cursors_now(), self.cursors, "a worker cursor moved");
        assert_eq!(
            mismatches(&self.db),
            Vec::<String>::new(),
            "the rollups changed"
        );
        assert_eq!(exercised.failures, Vec::<String>::new());
        assert!(exercised.pinned.verified(), "{}", exercised.pinned);
    }
}

/// What the egress side's work came to during an attack.
struct Exercised {
    /// `verify --pubkey` as a superuser.
    pinned: egress_tests::Verify,
    /// Steps that did not work as they must.
    failures: Vec<String>,
}

#[test]
fn a_trigger_on_odoos_settings_table_never_runs_with_egress_rights() {
    let _serial = serial();
    let scene = Scene::new("tb_trigger");
    scene
        .odoo
        .batch(
            "CREATE FUNCTION public.egress_plant_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.egress_plant('trigger ' || TG_OP); RETURN coalesce(NEW, OLD); END $$;
             CREATE TRIGGER plant BEFORE INSERT OR UPDATE OR DELETE ON public.ir_config_parameter
                 FOR EACH ROW EXECUTE FUNCTION public.egress_plant_trigger();
             CREATE TRIGGER plant_truncate BEFORE TRUNCATE ON public.ir_config_parameter
                 FOR EACH STATEMENT EXECUTE FUNCTION public.egress_plant_trigger();",
        )
        .unwrap();
    let exercised = scene.exercise(true);
    // The trigger did fire: for Odoo's own writes, as Odoo.
    assert!(scene.db.sql().int("SELECT count(*) FROM public.egress_spy") > 0);
    scene.assert_unharmed(&exercised);
}

#[test]
fn an_rls_policy_on_odoos_settings_table_never_runs_with_egress_rights() {
    let _serial = serial();
    let scene = Scene::new("tb_rls");
    scene
        .odoo
        .batch(
            "ALTER TABLE public.ir_config_parameter ENABLE ROW LEVEL SECURITY;
             ALTER TABLE public.ir_config_parameter FORCE ROW LEVEL SECURITY;
             CREATE POLICY plant ON public.ir_config_parameter USING (public.egress_plant('rls'))
                 WITH CHECK (true);",
        )
        .unwrap();
    let exercised = scene.exercise(true);
    scene.assert_unharmed(&exercised);
}

#[test]
fn a_view_swapped_in_for_odoos_settings_table_never_runs_as_a_superuser() {
    let _serial = serial();
    let scene = Scene::new("tb_view");
    scene
        .odoo
        .batch(
            "ALTER TABLE public.ir_config_parameter RENAME TO ir_config_parameter_real;
             CREATE VIEW public.ir_config_parameter AS
                 SELECT id, key, value FROM public.ir_config_parameter_real
                 WHERE public.egress_plant('view');",
        )
        .unwrap();
    let exercised = scene.exercise(false);
    scene.assert_unharmed(&exercised);
}

#[test]
fn functions_and_operators_shadowing_builtins_are_never_called() {
    let _serial = serial();
    let scene = Scene::new("tb_shadow");
    // Exact-type matches in `public` win over pg_catalog's for whoever has
    // `public` in its search_path; names the egress side calls.
    scene
        .odoo
        .batch(
            "CREATE FUNCTION public.plant_eq(varchar, text) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.egress_plant('operator varchar = text'); RETURN $1::text = $2; END $$;
             CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = text, FUNCTION = public.plant_eq);
             CREATE FUNCTION public.plant_eq_bigint(bigint, integer) RETURNS boolean LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.egress_plant('operator bigint = integer'); RETURN $1 = $2::bigint; END $$;
             CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = integer, FUNCTION = public.plant_eq_bigint);
             CREATE FUNCTION public.to_regclass(varchar) RETURNS regclass LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.egress_plant('to_regclass'); RETURN pg_catalog.to_regclass($1::text); END $$;
             CREATE FUNCTION public.pg_advisory_xact_lock(integer) RETURNS void LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.egress_plant('pg_advisory_xact_lock'); END $$;
             CREATE FUNCTION public.left(varchar, integer) RETURNS text LANGUAGE plpgsql AS $$
             BEGIN PERFORM public.egress_plant('left'); RETURN pg_catalog.left($1::text, $2); END $$;
             CREATE FUNCTION public.coalesce_plant() RETURNS void LANGUAGE sql AS 'SELECT 1';
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO PUBLIC;",
        )
        .unwrap();
    let exercised = scene.exercise(true);
    scene.assert_unharmed(&exercised);
}

#[test]
fn an_edited_mirror_in_odoos_settings_raises_no_false_alarm() {
    let _serial = serial();
    let scene = Scene::new("tb_mirror");
    // The latest signed head, as the collector used to mirror it, then
    // edited: a seq far beyond the journal, and a hash no row has.
    let head = |seq: &str, hash: &str| {
        scene
            .db
            .sql()
            .text(&format!(
                "SELECT json_build_object('database', database, 'seq', {seq}, \
                        'row_hash', {hash}, 'signed_at_us', signed_at_us, \
                        'hmac', encode(hmac, 'hex'), 'signature', encode(signature, 'hex'), \
                        'public_key', encode(public_key, 'hex'))::text \
                 FROM egress.signed_head ORDER BY id DESC LIMIT 1"
            ))
            .unwrap()
    };
    let bogus = format!("'{}'", "ab".repeat(32));
    for forged in [
        head("999999", "encode(row_hash, 'hex')"),
        head("seq", &bogus),
    ] {
        scene
            .odoo
            .batch(&format!(
                "INSERT INTO public.ir_config_parameter (key, value) \
                 VALUES ('mit_network_audit.signed_head', '{forged}') \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ))
            .unwrap();
        let verdict = egress_tests::collector::verify_with(
            &scene.db.superuser_url(),
            &["--pubkey", &scene.pubkey],
        );
        assert!(verdict.verified(), "{verdict}");
        assert!(!verdict.stdout.contains("truncated"), "{verdict}");
    }
}

#[test]
fn every_egress_function_odoo_can_reach_refuses_it() {
    let _serial = serial();
    let scene = Scene::new("tb_functions");
    let calls: Vec<String> = scene
        .db
        .sql()
        .query(
            "SELECT format('SELECT %s(%s)', p.oid::regproc::text, \
                    coalesce(string_agg('NULL::' || format_type(t, NULL), ', ' ORDER BY n), '')) \
             FROM pg_proc p LEFT JOIN LATERAL unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n) ON true \
             WHERE p.pronamespace = 'egress'::regnamespace GROUP BY p.oid",
        )
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(calls.len() >= 7, "{calls:?}");
    for call in &calls {
        scene.odoo.assert_refused(call);
    }
    // What Odoo may do: read its views, and hand settings over, stamped
    // with who and when by the egress side (an id of its own is ignored).
    scene
        .odoo
        .batch(&format!(
            "INSERT INTO public.network_egress_setting (id, key, value, db_user) \
             VALUES (999999999, '{RETENTION}', '7', 'egress_owner')"
        ))
        .unwrap();
    let stamped = scene
        .db
        .sql()
        .text(&format!(
            "SELECT format('%s %s', id < 999999999, db_user) FROM egress.setting \
             WHERE key = '{RETENTION}' ORDER BY id DESC LIMIT 1"
        ))
        .unwrap();
    assert_eq!(stamped, format!("t {}", scene.db.odoo_role()));
    for statement in [
        "UPDATE public.network_egress_setting SET value = '0'",
        "DELETE FROM public.network_egress_setting",
        "INSERT INTO public.network_signed_head (database) VALUES ('x')",
        "INSERT INTO public.network_egress_rollup (day) VALUES (now())",
        "SELECT * FROM egress.setting",
        "SELECT * FROM egress.trust_option",
    ] {
        scene.odoo.assert_refused(statement);
    }
    let exercised = scene.exercise(true);
    scene.assert_unharmed(&exercised);
}

/// As a superuser: rewrites row `seq`, recomputes the hash of every row
/// from there to the head (so the chain links again), then deletes every
/// signed head and any mirror of one in Odoo's settings.
fn rewrite_rehash_and_unsign(db: &TestDb, seq: i64) {
    use egress_collector::db::store;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, connection) =
            tokio_postgres::connect(&db.superuser_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        let tx = client.transaction().await.unwrap();
        tx.batch_execute(&format!(
            "ALTER TABLE egress.journal DISABLE TRIGGER USER; \
             UPDATE egress.journal SET host = 'forged.example' WHERE seq = {seq}"
        ))
        .await
        .unwrap();
        let end: i64 = tx
            .query_one("SELECT max(seq) FROM egress.journal", &[])
            .await
            .unwrap()
            .get(0);
        let rows = store::rows_after(&tx, seq - 1, end, 1_000_000)
            .await
            .unwrap();
        let mut prev: [u8; 32] = rows[0].prev_hash.clone().try_into().unwrap();
        for stored in &rows {
            let hash = stored.row.hash_after(&prev);
            tx.execute(
                "UPDATE egress.journal SET prev_hash = $1, row_hash = $2 WHERE seq = $3",
                &[&prev.as_slice(), &hash.as_slice(), &stored.row.seq],
            )
            .await
            .unwrap();
            prev = hash;
        }
        tx.batch_execute(
            "ALTER TABLE egress.journal ENABLE TRIGGER USER; \
             ALTER TABLE egress.signed_head DISABLE TRIGGER USER; \
             DELETE FROM egress.signed_head; \
             ALTER TABLE egress.signed_head ENABLE TRIGGER USER; \
             DELETE FROM public.ir_config_parameter WHERE key = 'mit_network_audit.signed_head'",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    });
}

fn alarms(db: &TestDb) -> Vec<serde_json::Value> {
    db.sql()
        .query("SELECT detail FROM egress.journal WHERE kind = 'alarm' ORDER BY seq")
        .iter()
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .collect()
}

#[test]
fn the_signer_refuses_a_rewritten_journal_until_an_operator_resumes() {
    let _serial = serial();
    let db = TestDb::new_odoo("tb_resign");
    let collector = Collector::start(db.name());
    collector.send_calls(&db, 10);
    let first = collector.cli(&["sign-now", "--db", db.name()]);
    assert!(first.status.success(), "sign-now: {}", output_text(&first));
    let first_head = db.head_seq();
    collector.send_calls(&db, 5);
    assert!(collector
        .cli(&["sign-now", "--db", db.name()])
        .status
        .success());
    let pubkey = collector.cli(&["pubkey", "--db", db.name()]);
    let pubkey = String::from_utf8_lossy(&pubkey.stdout).trim().to_owned();

    rewrite_rehash_and_unsign(&db, 3);
    // The chain links again and nothing signed is left in the database:
    // only the collector's memory of what it signed can tell.
    let refused = collector.cli(&["sign-now", "--db", db.name()]);
    assert!(
        !refused.status.success(),
        "sign-now signed a rewritten journal"
    );
    assert!(
        output_text(&refused).contains(&format!("first bad seq {first_head}")),
        "sign-now names the first head it signed that no longer holds: {}",
        output_text(&refused)
    );
    assert_eq!(db.sql().int("SELECT count(*) FROM egress.signed_head"), 0);
    let journaled = alarms(&db);
    assert_eq!(journaled.len(), 1, "{journaled:?}");
    assert_eq!(journaled[0]["alarm"], "signing_refused");
    assert_eq!(journaled[0]["first_bad_seq"], first_head);
    assert!(collector.log_text().contains("Refused to sign"));
    let status = collector.cli(&["status"]);
    assert!(
        output_text(&status).contains("ALARM"),
        "{}",
        output_text(&status)
    );

    let pinned = egress_tests::collector::verify_with(&db.superuser_url(), &["--pubkey", &pubkey]);
    assert_eq!(pinned.code, Some(1), "{pinned}");
    assert!(pinned.stdout.contains("nothing signed"), "{pinned}");

    // The report brings the rollups up to the journal's head first.
    let report = collector.cli(&["report", "--db", db.name(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(
        report["trust"]["signing_alarm"]["first_bad_seq"], first_head,
        "{report}"
    );
    assert!(
        report["verdict"].to_string().contains("signer refused"),
        "{report}"
    );
    let shown = collector.cli(&["report", "--db", db.name()]);
    assert!(
        output_text(&shown).contains("signing       ALARM"),
        "{}",
        output_text(&shown)
    );

    // Still refused, and journaled once.
    assert!(!collector
        .cli(&["sign-now", "--db", db.name()])
        .status
        .success());
    assert_eq!(alarms(&db).len(), 1);

    let no_reason = collector.cli(&["sign-resume", "--db", db.name(), "--reason", " "]);
    assert!(!no_reason.status.success());
    let resumed = collector.cli(&[
        "sign-resume",
        "--db",
        db.name(),
        "--reason",
        "restored from backup after incident 42",
    ]);
    assert!(resumed.status.success(), "{}", output_text(&resumed));
    let journaled = alarms(&db);
    assert_eq!(journaled.len(), 2);
    assert_eq!(journaled[1]["alarm"], "signing_resumed");
    assert_eq!(
        journaled[1]["reason"],
        "restored from backup after incident 42"
    );
    let signed = collector.cli(&["sign-now", "--db", db.name()]);
    assert!(signed.status.success(), "{}", output_text(&signed));
    let report = collector.cli(&["report", "--db", db.name(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(report["trust"]["signing_alarm"].is_null(), "{report}");
}

#[test]
fn the_collectors_role_prunes_and_signs_only_through_checks() {
    let _serial = serial();
    let db = TestDb::new_odoo("tb_least");
    let collector = Collector::start(db.name());
    collector.send_calls(&db, 10);
    assert!(collector
        .cli(&["sign-now", "--db", db.name()])
        .status
        .success());
    assert!(wait_caught_up(&db, Duration::from_secs(30)));
    let role = Sql::connect(&conninfo("egress_collector", db.name())).unwrap();
    let rows = db.rows();
    role.assert_refused("SELECT * FROM egress.vacuum_journal(now() + interval '30 days', 5)");
    db.set_setting(RETENTION, "1");
    role.assert_refused("SELECT * FROM egress.prune_journal(5, now() + interval '30 days')");
    assert_eq!(db.rows(), rows, "nothing was pruned");
    let forged = role
        .batch(
            "INSERT INTO egress.signed_head (database, seq, row_hash, signed_at_us, signed_at, \
             hmac, signature, public_key, collector) \
             SELECT current_database(), 3, '\\x0101', 1, now(), '\\x00', '\\x00', '\\x00', 'forger'",
        )
        .expect_err("a head that names no row with that hash is refused");
    assert_eq!(
        forged.code().map(|c| c.code()),
        Some("23514"),
        "{}",
        describe(&forged)
    );
    // The rollups the role must update are held to the journal by verify.
    role.batch("UPDATE egress.rollup SET calls = 0").unwrap();
    let outcome = verify(&db.superuser_url());
    assert_eq!(outcome.code, Some(1), "{outcome}");
    assert!(outcome.stdout.contains("rollups"), "{outcome}");
}

#[test]
fn setup_and_the_trust_report_say_when_odoos_role_is_a_superuser() {
    let _serial = serial();
    let db = TestDb::new_odoo("tb_super");
    let role = db.odoo_role().to_owned();
    let quiet = db.run_setup();
    assert!(
        !output_text(&quiet).contains("WARNING"),
        "{}",
        output_text(&quiet)
    );
    for power in ["SUPERUSER", "NOSUPERUSER CREATEROLE"] {
        db.sql()
            .batch(&format!("ALTER ROLE {role} {power}"))
            .unwrap();
        let warned = db.run_setup();
        assert!(warned.status.success());
        let said = output_text(&warned);
        let expected = if power == "SUPERUSER" {
            "is a superuser"
        } else {
            "may create roles"
        };
        assert!(
            said.contains(&format!("WARNING: Odoo's role {role} {expected}"))
                && said.contains("signed rows"),
            "{said}"
        );
    }
    let collector = Collector::start(db.name());
    collector.send_calls(&db, 1);
    assert!(wait_caught_up(&db, Duration::from_secs(30)));
    let report = collector.cli(&["report", "--db", db.name(), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(
        report["trust"]["boundary_void"][0],
        format!("Odoo's role {role} may create roles"),
        "{report}"
    );
    assert!(report["verdict"].to_string().contains("ALERT"), "{report}");
    let shown = collector.cli(&["report", "--db", db.name()]);
    assert!(
        output_text(&shown).contains("boundary      VOID"),
        "{}",
        output_text(&shown)
    );
    db.sql()
        .batch(&format!("ALTER ROLE {role} NOCREATEROLE"))
        .unwrap();
}

#[test]
fn verify_reads_nothing_from_egress_objects_not_as_setup_left_them() {
    let _serial = serial();
    let db = TestDb::new_odoo("tb_objects");
    let collector = Collector::start(db.name());
    collector.send_calls(&db, 3);
    let role = db.odoo_role().to_owned();
    // A view in place of a table, and a table handed to Odoo's role: each
    // could run code of whoever made it when a superuser verifies.
    for (change, undo, named) in [
        (
            "ALTER TABLE egress.signed_head RENAME TO signed_head_real; \
             CREATE VIEW egress.signed_head AS SELECT * FROM egress.signed_head_real"
                .to_owned(),
            "DROP VIEW egress.signed_head; \
             ALTER TABLE egress.signed_head_real RENAME TO signed_head"
                .to_owned(),
            "egress.signed_head is a view, not a table",
        ),
        (
            format!("ALTER TABLE egress.rollup OWNER TO {role}"),
            "ALTER TABLE egress.rollup OWNER TO egress_owner".to_owned(),
            "egress.rollup is owned by",
        ),
        (
            "ALTER TABLE egress.journal ENABLE ROW LEVEL SECURITY".to_owned(),
            "ALTER TABLE egress.journal DISABLE ROW LEVEL SECURITY".to_owned(),
            "egress.journal has row-level security turned on",
        ),
    ] {
        db.sql().batch(&change).unwrap();
        let outcome = verify(&db.superuser_url());
        assert_eq!(outcome.code, Some(2), "{outcome}");
        assert!(
            outcome
                .stderr
                .contains("not as `egress-collector setup` left it")
                && outcome.stderr.contains(named),
            "{outcome}"
        );
        db.sql().batch(&undo).unwrap();
    }
    assert!(verify(&db.superuser_url()).verified());
}
