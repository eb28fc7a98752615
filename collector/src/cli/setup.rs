//! `egress-collector setup`.

use std::process::ExitCode;

use clap::Args;
use egress_collector::db::setup::{setup, SetupOptions};

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
    if report.components_added > 0 {
        println!(
            "added {} components to the Egress Components catalogue",
            report.components_added
        );
    }
    if !report.odoo_settings_readable {
        println!(
            "note: ir_config_parameter does not exist yet (Odoo has not initialised this database); \
             the collector applies default settings. Run setup again once Odoo is installed."
        );
    }
    println!(
        "roles and grants checked: {} may append, {} may read public.network_egress_log",
        options.collector_role, options.odoo_role
    );
    Ok(ExitCode::SUCCESS)
}
