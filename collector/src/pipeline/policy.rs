//! What each Odoo database asks of the collector: its audit settings (from
//! Odoo's settings page, handed over through `egress.setting`) and its
//! Egress Components catalogue. Loaded and kept current by the policy
//! watcher; read by attribution and redaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use crate::pipeline::catalogue::{self, Catalogue};

use egress_proto::settings::truthy;
pub use egress_proto::settings::{
    KEY_DISABLED_CHANNELS, KEY_ENABLED, KEY_RETENTION, KEY_STRICT, SETTING_KEYS,
};

/// The audit settings of one database. Absent keys take the defaults the
/// FAQ promises: capture on, not strict, keep everything, all channels.
///
/// The master switch and the disabled channels are applied by the worker at
/// the moment of capture (the hook sends nothing for them): the collector
/// journals every call a worker sent, so that a call captured under "on" is
/// never dropped during the moment the collector's copy lags behind. It
/// reads them for the Trust Report and the journal of changes only. Strict
/// redaction is applied by the worker and again here (`redaction`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    pub strict: bool,
    pub retention_days: u32,
    pub disabled_channels: BTreeSet<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: true,
            strict: false,
            retention_days: 0,
            disabled_channels: BTreeSet::new(),
        }
    }
}

impl Settings {
    /// From the raw setting values (key → value), as Odoo handed them over.
    pub fn from_parameters(values: &BTreeMap<String, String>) -> Self {
        let mut settings = Settings::default();
        if let Some(v) = values.get(KEY_ENABLED) {
            settings.enabled = truthy(v);
        }
        if let Some(v) = values.get(KEY_STRICT) {
            settings.strict = truthy(v);
        }
        if let Some(v) = values.get(KEY_RETENTION) {
            settings.retention_days = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = values.get(KEY_DISABLED_CHANNELS) {
            settings.disabled_channels = v
                .split([',', ' ', ';'])
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty())
                .collect();
        }
        settings
    }

    /// Privacy first when a database's settings cannot be read: keep only
    /// what strict mode keeps until they can.
    pub fn fail_closed() -> Self {
        Settings {
            strict: true,
            ..Settings::default()
        }
    }
}

#[derive(Debug)]
pub struct Policy {
    pub settings: Settings,
    pub catalogue: Catalogue,
    /// Whether this came from the database (false: fail-closed stand-in).
    pub loaded: bool,
}

impl Policy {
    pub fn fail_closed() -> Self {
        let components = catalogue::parse_file(catalogue::SEED).unwrap_or_default();
        Policy {
            settings: Settings::fail_closed(),
            catalogue: Catalogue::new(components),
            loaded: false,
        }
    }
}

/// Current policy per database, shared by the stages that apply it.
#[derive(Clone, Default)]
pub struct PolicyMap(Arc<RwLock<HashMap<String, Arc<Policy>>>>);

impl PolicyMap {
    pub fn get(&self, database: &str) -> Option<Arc<Policy>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(database)
            .cloned()
    }

    pub fn set(&self, database: &str, policy: Arc<Policy>) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(database.to_owned(), policy);
    }

    pub fn remove(&self, database: &str) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(database);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_odoo_style_values_and_defaults() {
        let params = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(Settings::from_parameters(&params(&[])), Settings::default());
        let s = Settings::from_parameters(&params(&[
            (KEY_ENABLED, "False"),
            (KEY_STRICT, "True"),
            (KEY_RETENTION, "30"),
            (KEY_DISABLED_CHANNELS, "socket, SMTP"),
        ]));
        assert!(!s.enabled && s.strict);
        assert_eq!(s.retention_days, 30);
        assert_eq!(
            s.disabled_channels,
            BTreeSet::from(["smtp".to_string(), "socket".to_string()])
        );
    }
}
