//! egress-verify: checks an egress-audit export file with no database and no
//! network. Exit 0: verified; 1: tampered (the first bad position is named);
//! 2: could not check (unreadable file, not an export, bad key or witness).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use egress_signer::{verify_export_file, KeySource, Report, VerifyOptions, Witness};

/// Verify an egress-audit export file (docs/EXPORT_FORMAT.md).
///
/// Exit status: 0 verified, 1 tampered, 2 could not check.
#[derive(Parser, Debug)]
#[command(name = "egress-verify", version)]
struct Args {
    /// The export file (JSON) to check.
    file: PathBuf,
    /// The database's HMAC key file (32 raw bytes or 64 hex digits): checks
    /// every HMAC as well. Whoever holds it can also forge them.
    #[arg(long, value_name = "FILE")]
    hmac_key: Option<PathBuf>,
    /// An Ed25519 public key you trust (64 hex digits, from
    /// `egress-collector pubkey`); repeat it for a database that several
    /// collectors sign. Otherwise the keys in the file are used.
    #[arg(long, value_name = "HEX")]
    pubkey: Vec<String>,
    /// A keyring file: one public key a line, optionally followed by a name
    /// (`egress-collector keys --db NAME` lists them). Every head and the
    /// export must be signed by a key of the keyring (and of --pubkey).
    #[arg(long, value_name = "FILE")]
    keyring: Vec<PathBuf>,
    /// Witness state file: remembers the last signed head accepted for this
    /// database and refuses a later export that no longer contains it.
    #[arg(long, value_name = "STATE")]
    witness: Option<PathBuf>,
}

/// `println!` into a String.
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("Could not check the export: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<u8> {
    let hmac_key = args.hmac_key.as_deref().map(read_hmac_key).transpose()?;
    let keyring = egress_signer::Keyring::from_args(&args.pubkey, &args.keyring)
        .map_err(anyhow::Error::msg)?;
    let witness = match &args.witness {
        Some(path) => Witness::load(path)?,
        None => None,
    };
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let options = VerifyOptions {
        hmac_key,
        keyring,
        witness,
    };
    let report =
        verify_export_file(file, &options).with_context(|| format!("{}", args.file.display()))?;
    print_report(&report, args.witness.as_deref())?;
    Ok(report.exit_code())
}

fn read_hmac_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read HMAC key {}", path.display()))?;
    if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(raw);
    }
    let text = std::str::from_utf8(&bytes).unwrap_or_default().trim();
    match egress_signer::hexbytes::parse::<32>(text) {
        Ok(key) => Ok(key),
        Err(_) => bail!(
            "HMAC key {} must hold 32 raw bytes or 64 hex digits",
            path.display()
        ),
    }
}

/// Writes the verdict to stdout in one piece; a closed pipe is not an error
/// worth a panic (`egress-verify FILE | head -1`).
fn print_report(report: &Report, witness_path: Option<&Path>) -> anyhow::Result<()> {
    let mut out = String::new();
    let result = render(report, witness_path, &mut out);
    let _ = std::io::stdout().write_all(out.as_bytes());
    result
}

fn render(report: &Report, witness_path: Option<&Path>, out: &mut String) -> anyhow::Result<()> {
    if let Some((first, rest)) = report.problems.split_first() {
        outln!(out, "Export TAMPERED — first bad position: {first}");
        for p in rest {
            outln!(out, "  also: {p}");
        }
        return Ok(());
    }
    if !report.incomplete.is_empty() {
        for reason in &report.incomplete {
            outln!(out, "Could not check the export: {reason}");
        }
        return Ok(());
    }
    let r = &report.range;
    outln!(out, "Export verified OK — no tampering detected.");
    outln!(out, "  database:     {}", report.database);
    let anchor = if r.from == 1 {
        "chained from the genesis hash".to_owned()
    } else {
        format!(
            "chained from the anchor {}… (row {} and earlier are not in this export)",
            &hex::encode(report.anchor)[..16],
            r.from - 1
        )
    };
    outln!(
        out,
        "  rows:         seq {} to {} ({} {}, each re-hashed and linked), {anchor}",
        r.from,
        r.to,
        report.rows,
        if report.rows == 1 { "row" } else { "rows" }
    );
    outln!(
        out,
        "  range:        {}",
        if r.to_end {
            "runs to the end of the journal at export time"
        } else {
            "stops before the end of the journal"
        }
    );
    let schemes = if report.hmac_checked {
        "Ed25519 and HMAC"
    } else {
        "Ed25519 (HMAC not checked: no --hmac-key)"
    };
    outln!(out, "  signatures:   {schemes}");
    let latest = match (report.latest_head, report.last_signed_seq) {
        (None, _) => "no head was signed yet".to_owned(),
        (Some(l), Some(s)) if l == s => format!("the latest, seq {l}, matches row {l}"),
        (Some(l), _) if l > r.to => format!("the latest, seq {l}, lies beyond this range"),
        (Some(l), _) => format!("the latest, seq {l}, lies before this range"),
    };
    outln!(
        out,
        "  signed heads: {} checked; {latest}",
        report.heads_checked
    );
    match report.last_signed_seq {
        Some(s) if s < r.to => outln!(out,
            "  note:         rows {} to {} are covered by the export's signature only, not yet by a signed head",
            s + 1,
            r.to
        ),
        None if report.rows > 0 => outln!(out,
            "  note:         no signed head falls in this range: the rows are covered by the export's signature only"
        ),
        _ => {}
    }
    outln!(out, "  export:       digest and signature valid");
    let key = hex::encode(report.public_key);
    match report.key_source {
        KeySource::Pinned => outln!(out, "  public key:   {key} (pinned with --pubkey or --keyring)"),
        KeySource::Witness => outln!(out, "  public key:   {key} (as accepted by the witness)"),
        KeySource::File => outln!(out,
            "  public key:   {key} (the file's own: compare it with `egress-collector pubkey`, or pin it with --pubkey or --witness)"
        ),
    }
    if let Some(path) = witness_path {
        match &report.next_witness {
            Some(w) => {
                w.save(path)?;
                match report.witness_before {
                    Some(before) if before == w.seq => {
                        outln!(out, "  witness:      seq {before} still present and unchanged")
                    }
                    Some(before) => outln!(out,
                        "  witness:      seq {before} present and unchanged; advanced to seq {} ({})",
                        w.seq,
                        path.display()
                    ),
                    None => outln!(out,
                        "  witness:      started at seq {} ({})",
                        w.seq,
                        path.display()
                    ),
                }
            }
            None => {
                outln!(
                    out,
                    "  witness:      nothing to remember: this export holds no signed head"
                )
            }
        }
    }
    Ok(())
}
