//! The configuration's copies agree with the code: docs/CONFIGURATION.md's
//! TOML block and packaging/egress-collector.toml hold exactly the defaults
//! of `Config::default()`, every flag of `egress-collector run --help` is
//! documented, and the example passes `run --check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use egress_collector::config::Config;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the collector crate is in the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn defaults() -> toml::Value {
    toml::Value::try_from(Config::default()).expect("the defaults serialise")
}

/// The first ```toml block of a Markdown text.
fn toml_block(markdown: &str) -> &str {
    let start = markdown.find("```toml\n").expect("a ```toml block") + "```toml\n".len();
    let len = markdown[start..].find("```").expect("the block ends");
    &markdown[start..start + len]
}

/// Every `--flag` in `egress-collector run --help`.
fn run_flags() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_egress-collector"))
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    help.lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .map(|rest| format!("--{}", rest.split([' ', '<']).next().unwrap_or("")))
        .filter(|flag| flag != "--help")
        .collect()
}

#[test]
fn configuration_md_shows_every_key_with_its_default() {
    let doc = read("docs/CONFIGURATION.md");
    let shown: toml::Value = toml::from_str(toml_block(&doc)).expect("the block parses");
    assert_eq!(
        shown,
        defaults(),
        "docs/CONFIGURATION.md's TOML block must be Config::default() (code: left is the doc)"
    );
    for flag in run_flags() {
        // The flag itself, not a longer one it begins (`--socket-mode`).
        let named = doc.match_indices(&flag).any(|(at, _)| {
            !doc[at + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
        });
        assert!(named, "docs/CONFIGURATION.md does not name {flag}");
    }
}

#[test]
fn run_help_shows_the_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_egress-collector"))
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "[default: 2000]",
        "[default: 600]",
        "[default: host=/var/run/postgresql user=egress_collector dbname={db}]",
        "[default: /var/lib/egress-collector]",
    ] {
        assert!(
            help.contains(expected),
            "run --help lacks {expected}:\n{help}"
        );
    }
}

#[test]
fn the_example_configuration_is_the_defaults_and_passes_check() {
    let text = read("packaging/egress-collector.toml");
    let example: toml::Value = toml::from_str(&text).expect("the example parses");
    assert_eq!(
        example,
        defaults(),
        "packaging/egress-collector.toml must set every key to its default (left)"
    );
    let config = Config::from_toml(&text).expect("the example is a Config");
    config.validate().expect("the example is valid");
    let out = Command::new(env!("CARGO_BIN_EXE_egress-collector"))
        .args(["run", "--check", "--config"])
        .arg(repo().join("packaging/egress-collector.toml"))
        .env_clear()
        .output()
        .expect("run --check");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("configuration OK"));
}

#[test]
fn run_check_names_the_bad_key_and_exits_1() {
    let dir = std::env::temp_dir().join(format!("egress-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[chain]\nflush_intervall_ms = 5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_egress-collector"))
        .args(["run", "--check", "--config"])
        .arg(&file)
        .env_clear()
        .output()
        .expect("run --check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("flush_intervall_ms"), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
