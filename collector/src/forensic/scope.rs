//! What capture covers, until when, and the state file a worker polls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// At least one of host, addon and channel; a call is in scope when it
/// matches every one given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl Scope {
    /// Empty values count as absent; host names compare in lower case.
    pub fn new(host: Option<String>, addon: Option<String>, channel: Option<String>) -> Self {
        let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        Scope {
            host: clean(host).map(|h| h.to_ascii_lowercase()),
            addon: clean(addon),
            channel: clean(channel).map(|c| c.to_ascii_lowercase()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.host.is_none() && self.addon.is_none() && self.channel.is_none()
    }

    /// Whether a journaled call (as the collector attributed it) is in scope.
    pub fn covers(&self, host: Option<&str>, addon: Option<&str>, channel: Option<&str>) -> bool {
        let same = |want: &Option<String>, got: Option<&str>, fold: bool| match want {
            None => true,
            Some(w) => got.is_some_and(|g| {
                if fold {
                    w.eq_ignore_ascii_case(g)
                } else {
                    w == g
                }
            }),
        };
        same(&self.host, host, true)
            && same(&self.addon, addon, false)
            && same(&self.channel, channel, true)
    }

    /// `host=api.example.com addon=sale channel=http`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, value) in [
            ("host", &self.host),
            ("addon", &self.addon),
            ("channel", &self.channel),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
        parts.join(" ")
    }
}

/// `90s`, `30m`, `2h`, `7d` or `1w`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration like 90s, 30m, 2h, 7d or 1w");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        "w" => n.checked_mul(7 * 86_400),
        _ => None,
    }
    .filter(|s| *s > 0)
    .ok_or_else(bad)?;
    Ok(Duration::from_secs(secs))
}

/// What a worker reads from `<dir>/<database>.json` (docs/WIRE_FORMAT.md
/// §9): the file exists only while capture is on, and a worker also stops
/// at `expires_at_us` by its own clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    pub database: String,
    #[serde(flatten)]
    pub scope: Scope,
    pub expires_at_us: i64,
    pub max_body_bytes: u64,
    /// The journal entry that switched capture on.
    pub entry_seq: i64,
}

pub fn state_file_path(dir: &Path, database: &str) -> PathBuf {
    dir.join(format!("{database}.json"))
}

/// Writes the state file whole (a temporary file renamed over it), readable
/// by everyone who can reach the directory, writable by the collector only.
pub fn write_state_file(dir: &Path, file: &StateFile) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)?;
    let path = state_file_path(dir, &file.database);
    let tmp = dir.join(format!(".{}.json.tmp", file.database));
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    out.write_all(&serde_json::to_vec(file).unwrap_or_default())?;
    out.sync_all()?;
    std::fs::rename(&tmp, &path)
}

pub fn remove_state_file(dir: &Path, database: &str) -> std::io::Result<()> {
    match std::fs::remove_file(state_file_path(dir, database)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        for bad in ["", "2", "h", "0h", "-1h", "2y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_matches_every_given_part() {
        let scope = Scope::new(Some("API.example.com".into()), None, Some("http".into()));
        assert!(scope.covers(Some("api.example.com"), Some("sale"), Some("http")));
        assert!(!scope.covers(Some("api.example.com"), None, Some("smtp")));
        assert!(!scope.covers(None, None, Some("http")));
        assert!(Scope::new(Some(" ".into()), None, None).is_empty());
        let addon = Scope::new(None, Some("sale".into()), None);
        assert!(addon.covers(None, Some("sale"), None));
        assert!(!addon.covers(None, Some("Sale"), None));
        assert_eq!(scope.describe(), "host=api.example.com channel=http");
    }
}
