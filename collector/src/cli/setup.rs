//! `egress-collector setup`.

use std::process::ExitCode;

use clap::Args;
use egress_collector::db::setup::{setup, SetupOptions};
use egress_collector::error::{chain_text, Error};
use tokio_postgres::error::SqlState;

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The Odoo database to set up, as a superuser
    /// (e.g. "host=/var/run/postgresql user=postgres dbname=odoo").
    #[arg(long, env = "EGRESS_SETUP_DATABASE_URL")]
    database_url: String,
    /// Odoo's PostgreSQL role: gets SELECT on the read view, nothing else.
    #[arg(long, env = "EGRESS_ODOO_ROLE", default_value = "odoo")]
    odoo_role: String,
    /// The collector's PostgreSQL role: may append and read, nothing else.
    #[arg(
        long,
        env = "EGRESS_COLLECTOR_ROLE",
        default_value = "egress_collector"
    )]
    collector_role: String,
}

pub fn main(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let options = SetupOptions {
        database_url: args.database_url,
        odoo_role: args.odoo_role,
        collector_role: args.collector_role,
    };
    let report = match super::runtime()?.block_on(setup(&options)) {
        Ok(report) => report,
        Err(Error::Db { source, .. })
            if source.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) =>
        {
            let role = options
                .database_url
                .parse::<tokio_postgres::Config>()
                .ok()
                .and_then(|c| c.get_user().map(str::to_owned))
                .unwrap_or_else(|| "(the OS user)".into());
            let reason = source
                .as_db_error()
                .map_or_else(|| chain_text(&source), |d| d.message().to_owned());
            anyhow::bail!(
                "setup needs a PostgreSQL superuser and role {role:?} is not one ({reason}): \
                 give a superuser in --database-url, e.g. \"host=/var/run/postgresql user=postgres dbname=…\""
            );
        }
        Err(e) => return Err(e.into()),
    };
    for label in &report.applied {
        println!("applied migration {label}");
    }
    if report.applied.is_empty() {
        println!(
            "schema egress is up to date ({} already applied)",
            report.already.join(", ")
        );
    }
    if report.components_added > 0 {
        println!(
            "added {} to the Egress Components catalogue",
            super::count(report.components_added, "component", "components")
        );
    }
    if !report.odoo_role_powers.is_empty() {
        println!(
            "WARNING: Odoo's role {} {}. Code running in Odoo (any addon) can then change \
             anything in this database, the egress schema included: the database-level \
             promises (append-only journal, read-only views) are void, and raw SQL can \
             rewrite rows after the latest signed head without a trace. Signing still \
             catches a rewrite of signed rows, and so does a witness kept outside the \
             database. Fix: ALTER ROLE {} NOSUPERUSER NOCREATEROLE NOBYPASSRLS;",
            options.odoo_role,
            report.odoo_role_powers.join(" and "),
            options.odoo_role
        );
    }
    println!(
        "roles and grants checked: {} may append, {} may read public.network_egress_log",
        options.collector_role, options.odoo_role
    );
    Ok(ExitCode::SUCCESS)
}
