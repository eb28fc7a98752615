"""The audit settings in ``ir.config_parameter``: their keys and how a
boolean is read. The addon's one copy of ``proto/src/settings.rs`` (the
collector's, the report's and the vacuum's), held to it by
``tests/odoo/test_addon_lib.py``. Pure Python, no Odoo import."""

#: The settings an administrator changes (Configuration → Settings).
KEY_ENABLED = "mit_network_audit.enabled"
KEY_STRICT = "mit_network_audit.strict_redaction"
KEY_RETENTION = "mit_network_audit.retention_days"
KEY_DISABLED_CHANNELS = "mit_network_audit.disabled_channels"
SETTING_KEYS = (KEY_ENABLED, KEY_STRICT, KEY_RETENTION, KEY_DISABLED_CHANNELS)


def truthy(value, default=False):
    """Odoo stores booleans as "True"/"False", or removes the key (then
    ``default``)."""
    if value is None or value is False:
        return default
    return str(value).strip().lower() in ("true", "1", "yes", "on")
