//! Attribution actor: maps a call's stack frames to Odoo addons, using the
//! addons paths each worker announced in `Hello`, and falling back to a path
//! heuristic for workers not yet heard from. The logic is `attribute`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix::{Actor, Context, Handler, ResponseFuture};

use crate::link::Link;
use crate::redaction::Redaction;
use crate::stage::{AttributedCall, Batch, Drain, Item, RawCall};
use crate::stats::Stats;

/// The addon whose own code is the audit; any call from it outside the
/// interceptor is a self-egress alarm (DESIGN §1.5).
pub const AUDIT_ADDON: &str = "mit_network_audit";

/// Framework addons that send on behalf of others: the addon that called
/// them is the one attributed, when there is one.
const PLUMBING_ADDONS: &[&str] = &["base", "web", "mail", "bus", "iap"];

pub struct Attribution {
    /// worker id → addons paths from its latest `Hello`.
    addons_paths: HashMap<u64, Vec<String>>,
    next: Link<AttributedCall, Redaction>,
    stats: Arc<Stats>,
}

impl Attribution {
    pub fn new(next: Link<AttributedCall, Redaction>, stats: Arc<Stats>) -> Self {
        Attribution {
            addons_paths: HashMap::new(),
            next,
            stats,
        }
    }
}

impl Actor for Attribution {
    type Context = Context<Self>;
}

impl Handler<Batch<RawCall>> for Attribution {
    type Result = ();

    fn handle(&mut self, Batch(items): Batch<RawCall>, _: &mut Context<Self>) {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Item::Hello(_, hello) => {
                    if self
                        .addons_paths
                        .insert(hello.worker_id, hello.addons_paths)
                        .is_none()
                    {
                        self.stats.workers_seen.fetch_add(1, Relaxed);
                    }
                }
                Item::Call(raw) => {
                    let paths = self
                        .addons_paths
                        .get(&raw.call.worker_id)
                        .map(Vec::as_slice);
                    out.push(Item::Call(attribute(raw, paths)));
                    self.stats.attributed.fetch_add(1, Relaxed);
                }
                Item::Drops(s, d) => out.push(Item::Drops(s, d)),
                Item::ConfigChange(s, c) => out.push(Item::ConfigChange(s, c)),
                Item::Lost(l) => out.push(Item::Lost(l)),
            }
        }
        self.next.send(out);
    }
}

impl Handler<Drain> for Attribution {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.next.drain())
    }
}

/// Attributes one call. `addons_paths` are the worker's, when known.
pub fn attribute(raw: RawCall, addons_paths: Option<&[String]>) -> AttributedCall {
    let mut addon_path: Vec<String> = Vec::new();
    let mut self_egress = false;
    for frame in &raw.call.stack {
        let Some(addon) = addon_of(&frame.file, addons_paths) else {
            continue;
        };
        if addon == AUDIT_ADDON && !frame.file.contains("/interceptor/") {
            self_egress = true;
        }
        if addon_path.last() != Some(&addon) {
            addon_path.push(addon);
        }
    }
    let addon = addon_path
        .iter()
        .find(|a| !PLUMBING_ADDONS.contains(&a.as_str()))
        .or_else(|| addon_path.first())
        .cloned();
    AttributedCall {
        raw,
        addon,
        addon_path,
        self_egress,
    }
}

/// The addon a source file belongs to, if any.
fn addon_of(file: &str, addons_paths: Option<&[String]>) -> Option<String> {
    if let Some(paths) = addons_paths {
        for root in paths {
            let root = root.trim_end_matches('/');
            if let Some(rest) = file.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
                return first_segment(rest);
            }
        }
    }
    // Heuristic: the segment after the last directory named like an addons
    // directory (`addons`, `extra-addons`, `odoo/addons`, `custom_addons`...).
    let segments: Vec<&str> = file.split('/').collect();
    let root = segments[..segments.len().saturating_sub(1)]
        .iter()
        .rposition(|s| s.ends_with("addons"))?;
    // The addon is a directory: there must be a file below it.
    if root + 2 >= segments.len() {
        return None;
    }
    first_segment(&segments[root + 1..].join("/"))
}

fn first_segment(rest: &str) -> Option<String> {
    let name = rest.split('/').next()?;
    let valid = !name.is_empty()
        && !name.ends_with(".py")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Sender;
    use egress_proto::{Call, StackFrame};

    fn raw(files: &[&str]) -> RawCall {
        let stack = files
            .iter()
            .map(|f| StackFrame {
                file: (*f).into(),
                function: "f".into(),
                line: 1,
            })
            .collect();
        RawCall {
            call: Call {
                stack,
                ..Call::default()
            },
            sender: Sender { pid: 1, uid: 1 },
        }
    }

    #[test]
    fn attributes_the_addon_behind_the_mail_plumbing() {
        let call = attribute(
            raw(&[
                "/usr/lib/python3/dist-packages/requests/sessions.py",
                "/opt/odoo/odoo/addons/base/models/ir_mail_server.py",
                "/opt/odoo/addons/mail/models/mail_mail.py",
                "/mnt/extra-addons/maildesk/models/license.py",
            ]),
            None,
        );
        assert_eq!(call.addon.as_deref(), Some("maildesk"));
        assert_eq!(call.addon_path, ["base", "mail", "maildesk"]);
        assert!(!call.self_egress);
    }

    #[test]
    fn uses_the_workers_addons_paths_first() {
        let paths = vec!["/srv/custom".to_string()];
        let call = attribute(
            raw(&["/srv/custom/ai_connector/models/chat.py"]),
            Some(&paths),
        );
        assert_eq!(call.addon.as_deref(), Some("ai_connector"));
    }

    #[test]
    fn the_audit_addon_outside_its_interceptor_is_self_egress() {
        let call = attribute(
            raw(&["/mnt/extra-addons/mit_network_audit/models/report.py"]),
            None,
        );
        assert!(call.self_egress);
        let hook = attribute(
            raw(&["/mnt/extra-addons/mit_network_audit/interceptor/http.py"]),
            None,
        );
        assert!(!hook.self_egress);
    }

    #[test]
    fn only_plumbing_is_attributed_to_the_innermost() {
        let call = attribute(
            raw(&["/opt/odoo/odoo/addons/base/models/ir_mail_server.py"]),
            None,
        );
        assert_eq!(call.addon.as_deref(), Some("base"));
        assert_eq!(
            attribute(raw(&["/usr/lib/python3.11/socket.py"]), None).addon,
            None
        );
    }
}
