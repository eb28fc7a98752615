//! Where a stack frame's code comes from: an Odoo addon (by name), Odoo's
//! core, the Python standard library, or a third-party package. The rules
//! are in docs/ATTRIBUTION.md; the table-driven tests below are its examples.

/// The origin of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Addon(String),
    OdooCore,
    SitePackages,
    Stdlib,
    Unknown,
}

impl Origin {
    /// The label used in the journal's `stack` column.
    pub fn label(&self) -> &str {
        match self {
            Origin::Addon(name) => name,
            Origin::OdooCore => "odoo",
            Origin::SitePackages => "site-packages",
            Origin::Stdlib => "stdlib",
            Origin::Unknown => "?",
        }
    }
}

/// Directories that hold an addon's code: the segment before them is the
/// addon in layouts with no directory named like `addons`.
const ADDON_SUBDIRS: &[&str] = &[
    "models",
    "controllers",
    "wizard",
    "wizards",
    "report",
    "tests",
    "lib",
    "tools",
    "services",
    "components",
];

/// Classifies `file`, using the worker's addons paths when known.
pub fn origin_of(file: &str, addons_paths: Option<&[String]>) -> Origin {
    if let Some(addon) = addon_by_paths(file, addons_paths.unwrap_or_default()) {
        return Origin::Addon(addon);
    }
    let segments: Vec<&str> = file.split('/').filter(|s| !s.is_empty()).collect();
    let dirs = &segments[..segments.len().saturating_sub(1)];
    // `.../odoo/addons/<name>/`, `/mnt/extra-addons/<name>/`, `custom_addons/<name>/`.
    if let Some(root) = dirs.iter().rposition(|s| s.ends_with("addons")) {
        if let Some(name) = dirs.get(root + 1).filter(|n| valid_addon_name(n)) {
            return Origin::Addon((*name).to_owned());
        }
    }
    let in_site_packages = dirs
        .iter()
        .any(|s| *s == "site-packages" || *s == "dist-packages");
    if is_odoo_package(dirs) {
        return Origin::OdooCore;
    }
    if in_site_packages {
        return Origin::SitePackages;
    }
    if dirs
        .iter()
        .any(|s| s.starts_with("python3") || s.starts_with("python2"))
    {
        return Origin::Stdlib;
    }
    // Enterprise, odoo.sh `src/user`, or any checkout: `<name>/models/x.py`.
    if let Some(at) = dirs.iter().rposition(|s| ADDON_SUBDIRS.contains(s)) {
        if let Some(name) = at
            .checked_sub(1)
            .and_then(|i| dirs.get(i))
            .filter(|n| valid_addon_name(n))
        {
            return Origin::Addon((*name).to_owned());
        }
    }
    Origin::Unknown
}

/// Inside the `odoo` package (addons were matched before): an `odoo`
/// directory inside a checkout (`/opt/odoo/odoo`, `/opt/odoo17/odoo`) or
/// installed (`dist-packages/odoo`), not a home directory named odoo.
fn is_odoo_package(dirs: &[&str]) -> bool {
    dirs.windows(2).any(|pair| {
        let (parent, dir) = (pair[0], pair[1]);
        dir == "odoo"
            && (parent.starts_with("odoo")
                || parent == "site-packages"
                || parent == "dist-packages")
    })
}

/// The addon under the longest of the worker's addons paths containing `file`
/// (addons paths can nest: `/opt/custom` and `/opt/custom/oca/server-tools`).
fn addon_by_paths(file: &str, addons_paths: &[String]) -> Option<String> {
    addons_paths
        .iter()
        .map(|root| root.trim_end_matches('/'))
        .filter_map(|root| {
            let rest = file.strip_prefix(root)?.strip_prefix('/')?;
            let (name, below) = rest.split_once('/')?;
            (valid_addon_name(name) && !below.is_empty()).then_some((root.len(), name))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, name)| name.to_owned())
}

fn valid_addon_name(name: &str) -> bool {
    !name.is_empty()
        && !name.ends_with(".py")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addon(name: &str) -> Origin {
        Origin::Addon(name.into())
    }

    #[test]
    fn classifies_frames_of_real_layouts() {
        let cases: &[(&str, Origin)] = &[
            // Odoo 17/18/19 from source.
            (
                "/opt/odoo/odoo/addons/base/models/ir_mail_server.py",
                addon("base"),
            ),
            ("/opt/odoo/addons/mail/models/mail_mail.py", addon("mail")),
            ("/opt/odoo/odoo/http.py", Origin::OdooCore),
            ("/opt/odoo/odoo/service/server.py", Origin::OdooCore),
            ("/opt/odoo/odoo/models.py", Origin::OdooCore),
            ("/opt/odoo/odoo/orm/models.py", Origin::OdooCore),
            // Debian package and the official Docker image.
            (
                "/usr/lib/python3/dist-packages/odoo/addons/mail/models/mail_thread.py",
                addon("mail"),
            ),
            (
                "/usr/lib/python3/dist-packages/odoo/http.py",
                Origin::OdooCore,
            ),
            (
                "/mnt/extra-addons/maildesk/models/license.py",
                addon("maildesk"),
            ),
            // odoo.sh.
            (
                "/home/odoo/src/odoo/addons/iap/tools/iap_tools.py",
                addon("iap"),
            ),
            (
                "/home/odoo/src/enterprise/documents/models/documents_document.py",
                addon("documents"),
            ),
            (
                "/home/odoo/src/user/ai_connector/models/chat.py",
                addon("ai_connector"),
            ),
            // Custom checkouts.
            (
                "/opt/odoo/custom/addons/mit_network_audit/models/res_config_settings.py",
                addon("mit_network_audit"),
            ),
            (
                "/opt/odoo/custom_addons/crm_sync/controllers/main.py",
                addon("crm_sync"),
            ),
            // Third-party packages and the standard library.
            (
                "/usr/lib/python3/dist-packages/requests/sessions.py",
                Origin::SitePackages,
            ),
            (
                "/opt/venv/lib/python3.11/site-packages/urllib3/connectionpool.py",
                Origin::SitePackages,
            ),
            (
                "/opt/venv/lib/python3.11/site-packages/egress_hook/interceptor/http.py",
                Origin::SitePackages,
            ),
            ("/usr/lib/python3.11/smtplib.py", Origin::Stdlib),
            ("/usr/local/lib/python3.12/http/client.py", Origin::Stdlib),
            ("<frozen importlib._bootstrap>", Origin::Unknown),
        ];
        for (file, expected) in cases {
            assert_eq!(&origin_of(file, None), expected, "{file}");
        }
    }

    #[test]
    fn the_workers_addons_paths_win_and_the_longest_root_is_used() {
        let paths = vec![
            "/srv/custom".to_string(),
            "/srv/custom/oca/server-tools".to_string(),
        ];
        let origin = |f: &str| origin_of(f, Some(&paths));
        assert_eq!(
            origin("/srv/custom/oca/server-tools/auditlog/models/rule.py"),
            addon("auditlog")
        );
        assert_eq!(
            origin("/srv/custom/ai_connector/__init__.py"),
            addon("ai_connector")
        );
        // Outside the paths, the heuristics still apply.
        assert_eq!(origin("/usr/lib/python3.11/socket.py"), Origin::Stdlib);
    }
}
