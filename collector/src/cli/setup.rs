//! `egress-collector setup`.

use std::process::ExitCode;

use clap::Args;
use egress_collector::setup::{setup, SetupOptions};

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
    let report = super::runtime()?.block_on(setup(&options))?;
    for label in &report.applied {
        println!("applied migration {label}");
    }
    if report.applied.is_empty() {
        println!(
            "schema egress is up to date ({} already applied)",
            report.already.join(", ")
        );
    }
    println!(
        "roles and grants checked: {} may append, {} may read public.network_egress_log",
        options.collector_role, options.odoo_role
    );
    Ok(ExitCode::SUCCESS)
}
