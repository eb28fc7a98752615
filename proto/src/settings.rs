//! The audit settings an Odoo database keeps in `ir_config_parameter`, read
//! by the collector (policy), the rollup report and the retention vacuum;
//! the addon's copy is `hook-client/odoo/mit_network_audit/lib/settings.py`,
//! held to these keys by its tests.

/// Capture on or off (default on).
pub const KEY_ENABLED: &str = "mit_network_audit.enabled";
/// Strict redaction (default off).
pub const KEY_STRICT: &str = "mit_network_audit.strict_redaction";
/// Days of journal kept (default 0: keep everything).
pub const KEY_RETENTION: &str = "mit_network_audit.retention_days";
/// Channels not captured, comma-separated (default none).
pub const KEY_DISABLED_CHANNELS: &str = "mit_network_audit.disabled_channels";
/// Every audit setting an administrator changes.
pub const SETTING_KEYS: [&str; 4] = [
    KEY_ENABLED,
    KEY_STRICT,
    KEY_RETENTION,
    KEY_DISABLED_CHANNELS,
];

/// A boolean setting's value: Odoo stores booleans as "True"/"False" (or
/// removes the key, and the default applies).
pub fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odoo_booleans_are_read() {
        for yes in ["True", "true", " 1", "yes", "ON"] {
            assert!(truthy(yes), "{yes:?}");
        }
        for no in ["False", "", "0", "no", "off", "maybe"] {
            assert!(!truthy(no), "{no:?}");
        }
    }
}
