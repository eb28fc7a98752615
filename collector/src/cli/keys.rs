//! `egress-collector keys`: every collector that appended to or signed a
//! database (several hosts, one chain), with its key, first and last
//! activity and whether it is alive; `--keyring` prints the keyring an
//! auditor pins (`verify --keyring`, `egress-verify --keyring`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use egress_collector::control::server::Request;

use super::time::utc;

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The running collector's control socket.
    #[arg(long, env = "EGRESS_CONTROL", default_value = super::DEFAULT_CONTROL)]
    control: PathBuf,
    /// The Odoo database.
    #[arg(long)]
    db: String,
    /// A collector is alive when its latest heartbeat (sent every minute)
    /// is younger than this many seconds.
    #[arg(long, default_value_t = 180)]
    alive_secs: u32,
    /// Print the keyring file an auditor pins: one key a line, then the
    /// collector's name.
    #[arg(long, conflicts_with = "json")]
    keyring: bool,
    /// Print the reply as JSON.
    #[arg(long)]
    json: bool,
}

pub fn main(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let reply = super::one_reply(
        &args.control,
        &Request::Keys {
            db: args.db.clone(),
            alive_secs: args.alive_secs,
        },
    )?;
    if args.json {
        println!("{reply}");
        return Ok(ExitCode::SUCCESS);
    }
    let own_key = reply["public_key"].as_str().unwrap_or_default();
    let collectors = reply["collectors"].as_array().cloned().unwrap_or_default();
    if args.keyring {
        println!(
            "# keyring of database {}: the keys that signed its heads",
            args.db
        );
        for c in &collectors {
            if let (Some(key), Some(name)) = (c["public_key"].as_str(), c["collector"].as_str()) {
                println!("{key} {name}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let when = |v: &serde_json::Value| v.as_i64().map_or("-".to_owned(), utc);
    println!(
        "{:<24} {:<16} {:>9} {:>7}  {:<24} {:<24} state",
        "COLLECTOR", "KEY ID", "ROWS", "HEADS", "FIRST ACTIVITY", "LAST ACTIVITY"
    );
    for c in &collectors {
        let key = c["public_key"].as_str().unwrap_or("");
        let state = match (c["alive"].as_bool(), c["heartbeat_us"].is_null()) {
            (Some(true), _) => "alive",
            (_, true) => "no heartbeat",
            _ => "silent",
        };
        let this = if !key.is_empty() && key == own_key {
            " (this collector)"
        } else {
            ""
        };
        println!(
            "{:<24} {:<16} {:>9} {:>7}  {:<24} {:<24} {state}{this}",
            c["collector"].as_str().unwrap_or("?"),
            if key.is_empty() { "-" } else { &key[..16] },
            c["rows"].as_i64().unwrap_or(0),
            c["heads"].as_i64().unwrap_or(0),
            when(&c["first_activity_us"]),
            when(&c["last_activity_us"]),
        );
    }
    println!("This collector's key: {own_key} (full keys: --keyring)");
    Ok(ExitCode::SUCCESS)
}
