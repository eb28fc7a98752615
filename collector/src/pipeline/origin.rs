//! Where a stack frame's code comes from: an Odoo addon (by name), Odoo's
//! core, the Python standard library, or a third-party package. The worker
//! announces where each of these lives (`Layout`, from its `Hello`); a file
//! outside what it announced, or from a worker not heard from yet, is
//! placed by a path heuristic. The rules are in docs/ATTRIBUTION.md; the
//! table-driven tests below are its examples.

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

/// What a directory a worker announced holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// An addons path: each directory in it is an addon.
    Addons,
    /// Odoo's core package (`odoo.__path__`).
    Core,
    /// Third-party packages (site-packages, dist-packages).
    Lib,
    /// The Python standard library.
    Stdlib,
}

/// Where one worker's code lives, from the entries of its `Hello`'s
/// `addons_paths` (docs/WIRE_FORMAT.md): a plain path is an addons path;
/// `odoo:`, `lib:` and `stdlib:` before a path name Odoo's core package,
/// a directory of third-party packages and the standard library. A hook
/// that predates the prefixes sends plain addons paths only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Longest first, so that the first root containing a file is the
    /// innermost one (addons paths nest in one another, `odoo/addons` is
    /// inside the core package, which may be inside site-packages).
    roots: Vec<(String, RootKind)>,
}

impl Layout {
    pub fn from_announced(entries: &[String]) -> Layout {
        let mut roots: Vec<(String, RootKind)> = entries
            .iter()
            .filter_map(|entry| {
                let (kind, path) = match entry.split_once(':') {
                    Some(("odoo", path)) => (RootKind::Core, path),
                    Some(("lib", path)) => (RootKind::Lib, path),
                    Some(("stdlib", path)) => (RootKind::Stdlib, path),
                    _ => (RootKind::Addons, entry.as_str()),
                };
                let path = path.trim_end_matches('/');
                // Relative or empty paths cannot contain a frame's file.
                path.starts_with('/').then(|| (path.to_owned(), kind))
            })
            .collect();
        roots.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        roots.dedup_by(|a, b| a.0 == b.0);
        Layout { roots }
    }

    /// Whether the worker announced where Odoo's core is (a hook that
    /// predates it announced addons paths only).
    pub fn knows_core(&self) -> bool {
        self.roots.iter().any(|(_, kind)| *kind == RootKind::Core)
    }

    /// The origin of `file` by the innermost announced root containing it.
    fn origin(&self, file: &str) -> Option<Origin> {
        self.roots.iter().find_map(|(root, kind)| {
            let rest = file.strip_prefix(root.as_str())?.strip_prefix('/')?;
            Some(match kind {
                RootKind::Addons => match rest.split_once('/') {
                    Some((name, below)) if valid_addon_name(name) && !below.is_empty() => {
                        Origin::Addon(name.to_owned())
                    }
                    // A file in the addons directory itself
                    // (`odoo/addons/__init__.py`) is the namespace's.
                    _ => Origin::OdooCore,
                },
                RootKind::Core => Origin::OdooCore,
                RootKind::Lib => Origin::SitePackages,
                RootKind::Stdlib => Origin::Stdlib,
            })
        })
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

/// What Odoo's core package holds at its top (17, 18 and 19): an `odoo`
/// directory followed by one of these is the core, whatever the folders
/// above it are called (`/srv/src-18/odoo/http.py`).
const CORE_ENTRIES: &[&str] = &[
    "__init__.py",
    "__main__.py",
    "_monkeypatches",
    "addons",
    "api",
    "api.py",
    "cli",
    "conf",
    "exceptions.py",
    "fields",
    "fields.py",
    "http.py",
    "init.py",
    "loglevels.py",
    "models",
    "models.py",
    "modules",
    "netsvc.py",
    "orm",
    "osv",
    "release.py",
    "service",
    "sql_db.py",
    "tests",
    "tools",
    "upgrade",
    "upgrade_code",
];

/// Classifies `file` by what its worker announced (`layout`), else by the
/// path heuristic.
pub fn origin_of(file: &str, layout: Option<&Layout>) -> Origin {
    if let Some(origin) = layout.and_then(|l| l.origin(file)) {
        return origin;
    }
    guess(file)
}

/// The path heuristic, for a worker that never said where its code lives.
/// It may miss an addon, but never makes Odoo's core an addon: no addon
/// is named `odoo` or like the directories addons hold.
fn guess(file: &str) -> Origin {
    let segments: Vec<&str> = file.split('/').filter(|s| !s.is_empty()).collect();
    let dirs = &segments[..segments.len().saturating_sub(1)];
    // `.../odoo/addons/<name>/`, `/mnt/extra-addons/<name>/`, `custom_addons/<name>/`.
    if let Some(root) = dirs.iter().rposition(|s| s.ends_with("addons")) {
        if let Some(name) = dirs.get(root + 1).filter(|n| guessable_addon(n)) {
            return Origin::Addon((*name).to_owned());
        }
    }
    if is_odoo_package(&segments) {
        return Origin::OdooCore;
    }
    if dirs
        .iter()
        .any(|s| *s == "site-packages" || *s == "dist-packages")
    {
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
            .filter(|n| guessable_addon(n))
        {
            return Origin::Addon((*name).to_owned());
        }
    }
    Origin::Unknown
}

/// Inside the `odoo` package (addons were matched before): an `odoo`
/// directory followed by one of the core's own entries, or any `odoo`
/// directory in site-packages. A home directory named odoo
/// (`/home/odoo/src/…`) is neither.
fn is_odoo_package(segments: &[&str]) -> bool {
    segments.windows(2).enumerate().any(|(i, pair)| {
        pair[0] == "odoo"
            && (CORE_ENTRIES.contains(&pair[1])
                || i.checked_sub(1).is_some_and(|p| {
                    segments[p] == "site-packages" || segments[p] == "dist-packages"
                }))
    })
}

/// A name the heuristic may call an addon: a valid one that is neither
/// Odoo's package nor a directory addons (and the core) hold.
fn guessable_addon(name: &str) -> bool {
    valid_addon_name(name) && name != "odoo" && !ADDON_SUBDIRS.contains(&name)
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

    fn layout(entries: &[&str]) -> Layout {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        Layout::from_announced(&entries)
    }

    /// Checks each file against what its worker announced, and the guess
    /// for a worker not heard from: it finds the core as well, and never
    /// makes a core file an addon named `odoo` or `tests`, or unknown.
    fn check(announced: &Layout, cases: &[(&str, Origin)]) {
        assert!(announced.knows_core());
        for (file, expected) in cases {
            assert_eq!(&origin_of(file, Some(announced)), expected, "{file}");
            let guessed = origin_of(file, None);
            if *expected == Origin::OdooCore {
                assert_eq!(guessed, Origin::OdooCore, "guess for {file}");
            }
            assert!(
                !matches!(&guessed, Origin::Addon(a) if a == "odoo" || a == "tests"),
                "guess for {file}: {guessed:?}"
            );
        }
    }

    // What each install's workers announce (egress_hook's
    // `interceptor/_layout.py`: odoo.__path__, odoo.addons.__path__, the
    // configured addons_path, site-packages and the standard library), as
    // printed by a worker of that layout.

    #[test]
    fn debian_package_with_extra_addons() {
        let announced = layout(&[
            "/usr/lib/python3/dist-packages/odoo/addons",
            "/var/lib/odoo/.local/share/Odoo/addons/17.0",
            "/mnt/extra-addons",
            "odoo:/usr/lib/python3/dist-packages/odoo",
            "stdlib:/usr/lib/python3.11",
            "lib:/usr/local/lib/python3.11/dist-packages",
            "lib:/usr/lib/python3/dist-packages",
        ]);
        let dist = "/usr/lib/python3/dist-packages";
        check(
            &announced,
            &[
                (&format!("{dist}/odoo/http.py"), Origin::OdooCore),
                (&format!("{dist}/odoo/tests/common.py"), Origin::OdooCore),
                (&format!("{dist}/odoo/tools/safe_eval.py"), Origin::OdooCore),
                (&format!("{dist}/odoo/service/server.py"), Origin::OdooCore),
                (&format!("{dist}/odoo/addons/__init__.py"), Origin::OdooCore),
                (
                    &format!("{dist}/odoo/addons/base/models/ir_mail_server.py"),
                    addon("base"),
                ),
                (
                    &format!("{dist}/odoo/addons/mail/models/mail_thread.py"),
                    addon("mail"),
                ),
                (
                    "/mnt/extra-addons/maildesk/models/license.py",
                    addon("maildesk"),
                ),
                (
                    "/var/lib/odoo/.local/share/Odoo/addons/17.0/ai_connector/models/chat.py",
                    addon("ai_connector"),
                ),
                (
                    &format!("{dist}/requests/sessions.py"),
                    Origin::SitePackages,
                ),
                ("/usr/lib/python3.11/smtplib.py", Origin::Stdlib),
            ],
        );
    }

    #[test]
    fn official_docker_image() {
        let announced = layout(&[
            "/usr/lib/python3/dist-packages/odoo/addons",
            "/var/lib/odoo/addons/18.0",
            "/mnt/extra-addons",
            "odoo:/usr/lib/python3/dist-packages/odoo",
            "stdlib:/usr/lib/python3.12",
            "lib:/usr/local/lib/python3.12/dist-packages",
            "lib:/usr/lib/python3/dist-packages",
        ]);
        check(
            &announced,
            &[
                (
                    "/usr/lib/python3/dist-packages/odoo/orm/models.py",
                    Origin::OdooCore,
                ),
                (
                    "/usr/lib/python3/dist-packages/odoo/addons/base/models/ir_cron.py",
                    addon("base"),
                ),
                (
                    "/mnt/extra-addons/shop_sync/controllers/main.py",
                    addon("shop_sync"),
                ),
                (
                    "/var/lib/odoo/addons/18.0/payment_x/models/provider.py",
                    addon("payment_x"),
                ),
                (
                    "/usr/local/lib/python3.12/dist-packages/openai/_client.py",
                    Origin::SitePackages,
                ),
                ("/usr/lib/python3.12/http/client.py", Origin::Stdlib),
            ],
        );
    }

    #[test]
    fn pip_install_into_a_virtualenv() {
        let site = "/opt/venv/lib/python3.11/site-packages";
        let announced = layout(&[
            &format!("{site}/odoo/addons"),
            "/root/.local/share/Odoo/addons/18.0",
            "/opt/custom",
            &format!("odoo:{site}/odoo"),
            "stdlib:/usr/local/lib/python3.11",
            &format!("lib:{site}"),
        ]);
        check(
            &announced,
            &[
                (&format!("{site}/odoo/http.py"), Origin::OdooCore),
                (&format!("{site}/odoo/tests/common.py"), Origin::OdooCore),
                (
                    &format!("{site}/odoo/addons/queue_job/jobrunner/runner.py"),
                    addon("queue_job"),
                ),
                (
                    "/opt/custom/crm_sync/controllers/main.py",
                    addon("crm_sync"),
                ),
                (
                    &format!("{site}/urllib3/connectionpool.py"),
                    Origin::SitePackages,
                ),
                (
                    &format!("{site}/egress_hook/interceptor/_http.py"),
                    Origin::SitePackages,
                ),
                ("/usr/local/lib/python3.11/smtplib.py", Origin::Stdlib),
            ],
        );
    }

    /// A source checkout in any folder: the folder's name says nothing.
    #[test]
    fn source_checkouts_in_any_folder() {
        for checkout in ["/srv/src-18", "/opt/odoo", "/home/jane/work/18.0", "/srv/x"] {
            let announced = layout(&[
                &format!("{checkout}/odoo/addons"),
                &format!("{checkout}/addons"),
                "/srv/custom-addons",
                &format!("odoo:{checkout}/odoo"),
                "stdlib:/usr/lib/python3.11",
                "lib:/srv/venv-18/lib/python3.11/site-packages",
            ]);
            check(
                &announced,
                &[
                    (&format!("{checkout}/odoo/http.py"), Origin::OdooCore),
                    (
                        &format!("{checkout}/odoo/tests/common.py"),
                        Origin::OdooCore,
                    ),
                    (
                        &format!("{checkout}/odoo/tools/safe_eval.py"),
                        Origin::OdooCore,
                    ),
                    (
                        &format!("{checkout}/odoo/service/server.py"),
                        Origin::OdooCore,
                    ),
                    (
                        &format!("{checkout}/odoo/modules/registry.py"),
                        Origin::OdooCore,
                    ),
                    (
                        &format!("{checkout}/odoo/addons/base/models/ir_actions.py"),
                        addon("base"),
                    ),
                    (
                        &format!("{checkout}/addons/web/controllers/home.py"),
                        addon("web"),
                    ),
                    (
                        &format!("{checkout}/addons/mail/models/mail_mail.py"),
                        addon("mail"),
                    ),
                    (
                        "/srv/custom-addons/acme_sync/models/sync.py",
                        addon("acme_sync"),
                    ),
                    (
                        "/srv/venv-18/lib/python3.11/site-packages/requests/sessions.py",
                        Origin::SitePackages,
                    ),
                ],
            );
        }
    }

    #[test]
    fn odoo_sh_trees() {
        let announced = layout(&[
            "/home/odoo/src/odoo/odoo/addons",
            "/home/odoo/src/odoo/addons",
            "/home/odoo/src/enterprise",
            "/home/odoo/src/themes",
            "/home/odoo/src/user",
            "/home/odoo/data/addons/18.0",
            "odoo:/home/odoo/src/odoo/odoo",
            "stdlib:/usr/lib/python3.12",
            "lib:/home/odoo/.local/lib/python3.12/site-packages",
            "lib:/usr/lib/python3/dist-packages",
        ]);
        check(
            &announced,
            &[
                ("/home/odoo/src/odoo/odoo/http.py", Origin::OdooCore),
                ("/home/odoo/src/odoo/odoo/tests/common.py", Origin::OdooCore),
                (
                    "/home/odoo/src/odoo/addons/iap/tools/iap_tools.py",
                    addon("iap"),
                ),
                (
                    "/home/odoo/src/enterprise/documents/models/documents_document.py",
                    addon("documents"),
                ),
                (
                    "/home/odoo/src/user/shop_sync/models/sync.py",
                    addon("shop_sync"),
                ),
                // A user addon with files at its top: only the announced
                // path can tell.
                ("/home/odoo/src/user/shop_sync/hooks.py", addon("shop_sync")),
                (
                    "/home/odoo/.local/lib/python3.12/site-packages/stripe/api.py",
                    Origin::SitePackages,
                ),
            ],
        );
    }

    #[test]
    fn addons_paths_nested_in_one_another() {
        let announced = layout(&[
            "/srv/addons",
            "/srv/addons/oca/server-tools",
            "/srv/addons/oca/queue/",
            "/opt/odoo/addons",
            "/opt/odoo/odoo/addons",
            "odoo:/opt/odoo/odoo",
            "lib:/usr/lib/python3/dist-packages",
        ]);
        check(
            &announced,
            &[
                (
                    "/srv/addons/oca/server-tools/auditlog/models/rule.py",
                    addon("auditlog"),
                ),
                (
                    "/srv/addons/oca/queue/queue_job/models/queue_job.py",
                    addon("queue_job"),
                ),
                ("/srv/addons/acme/models/x.py", addon("acme")),
                (
                    "/opt/odoo/odoo/addons/base/models/ir_cron.py",
                    addon("base"),
                ),
                ("/opt/odoo/odoo/http.py", Origin::OdooCore),
            ],
        );
    }

    #[test]
    fn a_hook_that_announces_only_addons_paths_keeps_the_guess_for_the_rest() {
        let old = layout(&["/srv/src-18/odoo/addons", "/srv/src-18/addons"]);
        assert!(!old.knows_core());
        let origin = |f: &str| origin_of(f, Some(&old));
        assert_eq!(
            origin("/srv/src-18/addons/web/controllers/home.py"),
            addon("web")
        );
        assert_eq!(origin("/srv/src-18/odoo/tests/common.py"), Origin::OdooCore);
        assert_eq!(origin("/srv/src-18/odoo/http.py"), Origin::OdooCore);
        assert_eq!(origin("/usr/lib/python3.11/socket.py"), Origin::Stdlib);
    }

    #[test]
    fn announced_entries_that_cannot_hold_a_file_are_ignored() {
        let odd = layout(&[
            "",
            "relative/addons",
            "odoo:",
            "lib:relative",
            "/srv/a",
            "/srv/a/",
        ]);
        assert_eq!(odd.roots, [("/srv/a".to_string(), RootKind::Addons)]);
    }

    /// Without any `Hello`: the guess, on the frames of real layouts.
    #[test]
    fn guesses_frames_of_real_layouts() {
        let cases: &[(&str, Origin)] = &[
            (
                "/opt/odoo/odoo/addons/base/models/ir_mail_server.py",
                addon("base"),
            ),
            ("/opt/odoo/addons/mail/models/mail_mail.py", addon("mail")),
            ("/opt/odoo/odoo/http.py", Origin::OdooCore),
            ("/opt/odoo/odoo/service/server.py", Origin::OdooCore),
            ("/opt/odoo/odoo/models.py", Origin::OdooCore),
            ("/opt/odoo/odoo/orm/models.py", Origin::OdooCore),
            // Checkouts in folders whose names say nothing.
            ("/srv/src-18/odoo/http.py", Origin::OdooCore),
            ("/srv/src-18/odoo/tests/common.py", Origin::OdooCore),
            ("/srv/src-19/odoo/tools/safe_eval.py", Origin::OdooCore),
            (
                "/home/jane/work/18.0/odoo/addons/base/models/ir_cron.py",
                addon("base"),
            ),
            (
                "/home/jane/work/18.0/odoo/modules/loading.py",
                Origin::OdooCore,
            ),
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
            (
                "/home/odoo/src/odoo/addons/iap/tools/iap_tools.py",
                addon("iap"),
            ),
            ("/home/odoo/src/odoo/odoo/http.py", Origin::OdooCore),
            (
                "/home/odoo/src/enterprise/documents/models/documents_document.py",
                addon("documents"),
            ),
            (
                "/home/odoo/src/user/ai_connector/models/chat.py",
                addon("ai_connector"),
            ),
            (
                "/opt/odoo/custom/addons/mit_network_audit/models/res_config_settings.py",
                addon("mit_network_audit"),
            ),
            (
                "/opt/odoo/custom_addons/crm_sync/controllers/main.py",
                addon("crm_sync"),
            ),
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
            ("<string>", Origin::Unknown),
        ];
        for (file, expected) in cases {
            assert_eq!(&origin_of(file, None), expected, "{file}");
        }
    }
}
