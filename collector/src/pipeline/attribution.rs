//! Attribution actor: maps a call's stack frames to Odoo addons, using where
//! each worker announced in `Hello` that its core, addons and libraries live
//! (falling back to a path heuristic for what it did not announce), and
//! classifies its destination
//! with the database's Egress Components catalogue. The logic is `attribute`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Context, Handler, Message, Recipient, ResponseFuture};

use crate::pipeline::catalogue::{Catalogue, Class, Classified};
use crate::pipeline::origin::{origin_of, Layout, Origin};
use crate::pipeline::policy::{Policy, PolicyMap};
use crate::pipeline::policy_watcher::{PolicyReady, ReportedChanges, WatchDatabase};

use crate::pipeline::link::{HandsOn, Link};
use crate::pipeline::peers::PeerTable;
use crate::pipeline::stage::{AttributedCall, Batch, Drain, Item, RawCall};
use crate::pipeline::streams::announcing_workers;
use crate::stats::Stats;
use egress_proto::StackFrame;

/// The addon whose own code is the audit; any call from it outside its
/// pass-through frames is a self-egress alarm (DESIGN §1.5).
pub const AUDIT_ADDON: &str = "mit_network_audit";

/// The audit addon's frames that only pass a call through: its `dispatch/`
/// glue, which wraps every HTTP request and cron job to fill the hook's
/// context (so it is on the stack of every call made meanwhile), and an
/// `interceptor/` inside the addon (older layouts). They are neither
/// self-egress nor an addon on the path.
fn audit_pass_through(file: &str) -> bool {
    file.contains("/dispatch/") || file.contains("/interceptor/")
}

/// Framework addons that send on behalf of others: the addon that called
/// them is the one attributed, when there is one.
const PLUMBING_ADDONS: &[&str] = &["base", "web", "mail", "bus", "iap"];

/// Plumbing addons whose frames mostly start work rather than do it (the
/// cron runner, server actions, HTTP dispatch and controllers).
const DISPATCH_ADDONS: &[&str] = &["base", "web"];

pub struct Attribution {
    /// worker id → where its code lives, from its latest `Hello` (bounded
    /// per uid, forgotten when silent: `peers`).
    layouts: PeerTable<Layout>,
    next: Link<AttributedCall>,
    /// A retry of what `next` holds is scheduled (`HandsOn`).
    retry_scheduled: bool,
    stats: Arc<Stats>,
    policies: PolicyMap,
    reported: ReportedChanges,
    watcher: Option<Recipient<WatchDatabase>>,
    /// Items waiting, in arrival order, for a database's first policy load:
    /// holding them all keeps every worker's events in order, which exact
    /// gap accounting depends on. Bounded by the watcher's first-load timeout.
    held: VecDeque<Item<RawCall>>,
    requested: HashSet<String>,
    origins: OriginCache,
}

/// Most frames an `OriginCache` keeps, over all workers, before it starts
/// again (a worker's stacks repeat the same few hundred files).
const MAX_CACHED_ORIGINS: usize = 16_384;

/// Each worker's frames already classified: `origin_of` splits and scans
/// every path, and the same files come back in every call. Per worker,
/// since an origin depends on the worker's layout.
#[derive(Default)]
struct OriginCache {
    workers: HashMap<u64, HashMap<String, Origin>>,
    /// Frames cached over all workers.
    entries: usize,
}

impl OriginCache {
    /// The origin of each frame of `stack`, from the worker's cache or
    /// `origin_of` (then cached). A full cache starts again.
    fn classify<'a>(
        &'a mut self,
        worker: u64,
        stack: &[StackFrame],
        layout: Option<&Layout>,
    ) -> Vec<&'a Origin> {
        if self.entries >= MAX_CACHED_ORIGINS {
            self.workers.clear();
            self.entries = 0;
        }
        let known = self.workers.entry(worker).or_default();
        for frame in stack {
            if !known.contains_key(&frame.file) {
                known.insert(frame.file.clone(), origin_of(&frame.file, layout));
                self.entries += 1;
            }
        }
        stack.iter().map(|frame| &known[&frame.file]).collect()
    }

    fn forget(&mut self, worker: u64) {
        if let Some(known) = self.workers.remove(&worker) {
            self.entries -= known.len();
        }
    }
}

impl Attribution {
    pub fn new(
        next: Link<AttributedCall>,
        stats: Arc<Stats>,
        policies: PolicyMap,
        reported: ReportedChanges,
    ) -> Self {
        Attribution {
            layouts: PeerTable::default(),
            next,
            retry_scheduled: false,
            stats,
            policies,
            reported,
            watcher: None,
            held: VecDeque::new(),
            requested: HashSet::new(),
            origins: OriginCache::default(),
        }
    }

    /// Databases of `item` whose policy is not loaded yet (asks for them).
    fn missing_policy(&mut self, item: &Item<RawCall>) -> bool {
        let mut missing = false;
        for database in databases_of(item) {
            if self.policies.get(database).is_none() {
                missing = true;
                if self.requested.insert(database.to_owned()) {
                    if let Some(watcher) = &self.watcher {
                        let _ = watcher.try_send(WatchDatabase(database.to_owned()));
                    }
                }
            }
        }
        missing
    }

    fn process(&mut self, item: Item<RawCall>, out: &mut Vec<Item<AttributedCall>>) {
        match item {
            Item::Hello(sender, mut hello) => {
                let layout = Layout::from_announced(&std::mem::take(&mut hello.addons_paths));
                // Its frames' origins depend on its layout: learn them again.
                self.origins.forget(hello.worker_id);
                if self
                    .layouts
                    .insert(hello.worker_id, sender.uid, layout, Instant::now())
                {
                    self.stats.workers_seen.fetch_add(1, Relaxed);
                }
                // On to the appenders, which record the worker's hook mode.
                out.push(Item::Hello(sender, hello));
            }
            Item::Call(raw) => {
                let layout = announcing_workers(raw.call.worker_id)
                    .into_iter()
                    .find_map(|worker| self.layouts.get(worker));
                let policy = self.policies.get(&raw.call.database);
                let catalogue = policy.as_deref().map(|p| &p.catalogue);
                let origins = self
                    .origins
                    .classify(raw.call.worker_id, &raw.call.stack, layout);
                let call = attribute_from(raw, &origins, catalogue);
                if call.self_egress {
                    self.stats.self_egress.fetch_add(1, Relaxed);
                }
                out.push(Item::Call(call));
                self.stats.attributed.fetch_add(1, Relaxed);
            }
            Item::Drops(s, d) => out.push(Item::Drops(s, d)),
            Item::ConfigChange(s, c) => {
                if c.worker_id != 0 {
                    self.reported.record(&c);
                }
                out.push(Item::ConfigChange(s, c));
            }
            Item::Lost(l) => out.push(Item::Lost(l)),
        }
    }

    /// Processes held items from the front until one still lacks a policy.
    fn release(&mut self, out: &mut Vec<Item<AttributedCall>>) {
        while let Some(front) = self.held.pop_front() {
            if self.missing_policy(&front) {
                self.held.push_front(front);
                break;
            }
            self.process(front, out);
        }
    }
}

fn databases_of(item: &Item<RawCall>) -> Vec<&str> {
    match item {
        Item::Call(raw) => vec![raw.call.database.as_str()],
        Item::ConfigChange(_, c) => vec![c.database.as_str()],
        Item::Drops(_, d) => d
            .counts
            .iter()
            .map(|c| c.database.as_str())
            .chain(d.cursors.iter().map(|c| c.database.as_str()))
            .collect(),
        Item::Lost(l) => l.workers.keys().map(|(db, _)| db.as_str()).collect(),
        Item::Hello(..) => vec![],
    }
}

impl Actor for Attribution {
    type Context = Context<Self>;
}

impl HandsOn for Attribution {
    fn flush_links(&mut self) {
        self.next.flush();
    }

    fn links_holding(&self) -> bool {
        self.next.is_holding()
    }

    fn retry_scheduled(&mut self) -> &mut bool {
        &mut self.retry_scheduled
    }
}

/// Gives attribution the watcher to ask for policies (wired after both start).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UseWatcher(pub Recipient<WatchDatabase>);

impl Handler<UseWatcher> for Attribution {
    type Result = ();

    fn handle(&mut self, UseWatcher(watcher): UseWatcher, ctx: &mut Context<Self>) {
        self.watcher = Some(watcher);
        self.requested.clear();
        let mut out = Vec::new();
        self.release(&mut out);
        self.next.send(out);
        self.retry_while_holding(ctx);
    }
}

impl Handler<Batch<RawCall>> for Attribution {
    type Result = ();

    fn handle(&mut self, Batch(items, _ticket): Batch<RawCall>, ctx: &mut Context<Self>) {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if self.held.is_empty() && !self.missing_policy(&item) {
                self.process(item, &mut out);
            } else {
                self.held.push_back(item);
            }
        }
        self.next.send(out);
        self.retry_while_holding(ctx);
    }
}

impl Handler<PolicyReady> for Attribution {
    type Result = ();

    fn handle(&mut self, PolicyReady(database): PolicyReady, ctx: &mut Context<Self>) {
        // Answered: asked again if its policy is ever forgotten (a made-up
        // name, `policy_watcher`), and not remembered here meanwhile.
        self.requested.remove(&database);
        let mut out = Vec::new();
        self.release(&mut out);
        self.next.send(out);
        self.retry_while_holding(ctx);
    }
}

impl Handler<Drain> for Attribution {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        // Whatever still waits for a policy goes on under the fail-closed one.
        let mut out = Vec::new();
        while let Some(item) = self.held.pop_front() {
            for database in databases_of(&item) {
                if self.policies.get(database).is_none() {
                    self.policies.set(database, Arc::new(Policy::fail_closed()));
                }
            }
            self.process(item, &mut out);
        }
        self.next.send(out);
        Box::pin(self.next.drain())
    }
}

/// Attributes one call. `layout` is what the worker announced, when it
/// did; the catalogue is the call's database's.
pub fn attribute(
    raw: RawCall,
    layout: Option<&Layout>,
    catalogue: Option<&Catalogue>,
) -> AttributedCall {
    let origins: Vec<Origin> = raw
        .call
        .stack
        .iter()
        .map(|frame| origin_of(&frame.file, layout))
        .collect();
    let origins: Vec<&Origin> = origins.iter().collect();
    attribute_from(raw, &origins, catalogue)
}

/// `attribute` with each frame's origin already known (`origins` aligned
/// with the call's stack).
fn attribute_from(
    raw: RawCall,
    origins: &[&Origin],
    catalogue: Option<&Catalogue>,
) -> AttributedCall {
    // Addons on the stack innermost first, each with whether it is plumbing
    // there.
    let mut path: Vec<(String, bool)> = Vec::new();
    let mut self_egress = false;
    for (frame, origin) in raw.call.stack.iter().zip(origins) {
        let Origin::Addon(addon) = origin else {
            continue;
        };
        if addon == AUDIT_ADDON {
            if audit_pass_through(&frame.file) {
                continue;
            }
            self_egress = true;
        }
        let plumbing = PLUMBING_ADDONS.contains(&addon.as_str());
        match path.last_mut() {
            Some((last, last_plumbing)) if last == addon => *last_plumbing &= plumbing,
            _ => path.push((addon.clone(), plumbing)),
        }
    }
    // The innermost addon that is not plumbing. With only plumbing, the
    // innermost plumbing addon other than `base` and `web`, whose frames are
    // mostly dispatch (cron, server actions, HTTP, the mail server): mail's
    // queue sending through base is mail's call, whether the cron or a web
    // button started it. `base` alone (its mail server's test button) is
    // base's.
    let addon = path
        .iter()
        .find(|(_, plumbing)| !plumbing)
        .or_else(|| {
            path.iter()
                .find(|(a, _)| !DISPATCH_ADDONS.contains(&a.as_str()))
        })
        .or_else(|| path.first())
        .map(|(a, _)| a.clone());
    let addon_path: Vec<String> = path.into_iter().map(|(a, _)| a).collect();
    let dst_ip = raw.call.dst_ip.parse().ok();
    let classified = catalogue
        .map(|c| c.classify(&raw.call.host, dst_ip, raw.call.port))
        .unwrap_or(Classified {
            component: None,
            class: Class::Unknown,
        });
    AttributedCall {
        raw,
        addon,
        addon_path,
        self_egress,
        component: classified.component,
        class: classified.class,
        frame_origins: origins.iter().map(|o| o.label().to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::catalogue::{parse_file, SEED};
    use crate::pipeline::stage::Sender;
    use egress_proto::{Call, StackFrame};

    const REQUESTS: &str = "/usr/lib/python3/dist-packages/requests/sessions.py";
    const URLLIB3: &str = "/opt/venv/lib/python3.11/site-packages/urllib3/connectionpool.py";
    const SMTPLIB: &str = "/usr/lib/python3.11/smtplib.py";
    const HOOK: &str = "/opt/venv/lib/python3.11/site-packages/egress_hook/interceptor/http.py";
    const IR_MAIL_SERVER_17: &str = "/opt/odoo/odoo/addons/base/models/ir_mail_server.py";
    const IR_MAIL_SERVER_DEB: &str =
        "/usr/lib/python3/dist-packages/odoo/addons/base/models/ir_mail_server.py";
    const MAIL_MAIL: &str = "/opt/odoo/addons/mail/models/mail_mail.py";
    const MAIL_THREAD_DEB: &str =
        "/usr/lib/python3/dist-packages/odoo/addons/mail/models/mail_thread.py";
    const IR_CRON: &str = "/opt/odoo/odoo/addons/base/models/ir_cron.py";
    const HTTP: &str = "/opt/odoo/odoo/http.py";
    const IAP_TOOLS: &str = "/home/odoo/src/odoo/addons/iap/tools/iap_tools.py";

    fn raw(files: &[&str], host: &str) -> RawCall {
        let stack = files
            .iter()
            .map(|f| StackFrame {
                file: (*f).into(),
                function: "f".into(),
                line: 1,
            })
            .collect();
        let call = Call {
            stack,
            host: host.into(),
            port: 443,
            ..Call::default()
        };
        RawCall {
            call,
            sender: Sender { pid: 1, uid: 1 },
        }
    }

    /// (stack innermost first, host, attributed addon, addon path, self-egress, class)
    type Case = (
        &'static [&'static str],
        &'static str,
        Option<&'static str>,
        &'static [&'static str],
        bool,
        Class,
    );

    #[test]
    fn cached_origins_are_origin_of_for_the_worker_s_paths() {
        let stack = raw(
            &[REQUESTS, MAIL_MAIL, IR_CRON, "/srv/custom/acme/models/x.py"],
            "x",
        )
        .call
        .stack;
        let paths = Layout::from_announced(&["/srv/custom".to_string()]);
        let mut cache = OriginCache::default();
        for _ in 0..2 {
            let cached: Vec<Origin> = cache
                .classify(1, &stack, Some(&paths))
                .into_iter()
                .cloned()
                .collect();
            let fresh: Vec<Origin> = stack
                .iter()
                .map(|f| origin_of(&f.file, Some(&paths)))
                .collect();
            assert_eq!(cached, fresh);
        }
        assert_eq!(cache.entries, 4);
        // Another worker, without those paths, gets its own answer.
        let other = cache.classify(2, &stack[3..], None)[0].clone();
        assert_eq!(other, origin_of(&stack[3].file, None));
        cache.forget(1);
        assert_eq!(cache.entries, 1);
    }

    #[test]
    fn attributes_realistic_stacks() {
        let catalogue = Catalogue::new(parse_file(SEED).unwrap());
        let cases: &[Case] = &[
            // A third-party addon sending mail through mail and base (Odoo 17 source).
            (&[SMTPLIB, IR_MAIL_SERVER_17, MAIL_MAIL, "/mnt/extra-addons/maildesk/models/mail.py", IR_CRON],
                "smtp.gmail.com", Some("maildesk"), &["base", "mail", "maildesk", "base"], false, Class::ThirdParty),
            // The same on the Debian package layout (Odoo 18).
            (&[SMTPLIB, IR_MAIL_SERVER_DEB, MAIL_THREAD_DEB, "/mnt/extra-addons/helpdesk_mail/models/ticket.py"],
                "smtp.office365.com", Some("helpdesk_mail"), &["base", "mail", "helpdesk_mail"], false, Class::ThirdParty),
            // Mail's own queue: only plumbing, the outermost but base (mail) is attributed.
            (&[SMTPLIB, IR_MAIL_SERVER_17, MAIL_MAIL, IR_CRON],
                "smtp.gmail.com", Some("mail"), &["base", "mail", "base"], false, Class::ThirdParty),
            (&[SMTPLIB, IR_MAIL_SERVER_17, MAIL_MAIL],
                "smtp.gmail.com", Some("mail"), &["base", "mail"], false, Class::ThirdParty),
            // Licence check of an MIT module through requests (custom path).
            (&[URLLIB3, REQUESTS, "/opt/odoo/custom/addons/maildesk/models/license.py", HTTP],
                "license.maildesk.mit-odoo.example", Some("maildesk"), &["maildesk"], false, Class::Vendor),
            // An AI connector in /mnt/extra-addons, called from an HTTP route.
            (&[HOOK, URLLIB3, REQUESTS, "/mnt/extra-addons/ai_connector/models/chat.py", HTTP],
                "api.openai.com", Some("ai_connector"), &["ai_connector"], false, Class::ThirdParty),
            (&[REQUESTS, "/mnt/extra-addons/ai_connector/models/claude.py"],
                "api.anthropic.com", Some("ai_connector"), &["ai_connector"], false, Class::ThirdParty),
            (&[REQUESTS, "/mnt/extra-addons/ai_connector/models/mistral.py"],
                "api.mistral.ai", Some("ai_connector"), &["ai_connector"], false, Class::ThirdParty),
            // IAP tools on odoo.sh, on behalf of an enterprise addon.
            (&[REQUESTS, IAP_TOOLS, "/home/odoo/src/enterprise/crm_iap_enrich/models/crm_lead.py"],
                "iap.odoo.com", Some("crm_iap_enrich"), &["iap", "crm_iap_enrich"], false, Class::ThirdParty),
            // Publisher warranty (mail's update.py) from the cron (Odoo 19 layout).
            (&[REQUESTS, "/opt/odoo19/addons/mail/models/update.py", IR_CRON],
                "services.odoo.com", Some("mail"), &["mail", "base"], false, Class::ThirdParty),
            // odoo.sh user addon.
            (&[REQUESTS, "/home/odoo/src/user/shop_sync/models/sync.py"],
                "api.stripe.com", Some("shop_sync"), &["shop_sync"], false, Class::ThirdParty),
            // Nested custom path without an "addons" directory.
            (&[URLLIB3, "/opt/odoo/custom/oca/connector_x/components/backend.py"],
                "example.org", Some("connector_x"), &["connector_x"], false, Class::Unknown),
            // A site-packages-only call (a library thread, nothing of Odoo).
            (&[URLLIB3, REQUESTS], "pypi.org", None, &[], false, Class::Unknown),
            // Odoo core alone (e.g. the server itself).
            (&[HTTP, "/opt/odoo/odoo/service/server.py"], "localhost", None, &[], false, Class::Local),
            // Self-egress: the audit addon's own code made a call.
            (&[REQUESTS, "/mnt/extra-addons/mit_network_audit/models/trust_report.py", HTTP],
                "evil.example.net", Some("mit_network_audit"), &["mit_network_audit"], true, Class::Unknown),
            // The audit addon's interceptor frames are not self-egress...
            (&["/mnt/extra-addons/mit_network_audit/interceptor/http.py", REQUESTS, "/mnt/extra-addons/ai_connector/models/chat.py"],
                "api.openai.com", Some("ai_connector"), &["ai_connector"], false, Class::ThirdParty),
            // ...nor its dispatch glue around every request and cron job,
            // even when only plumbing made the call.
            (&[REQUESTS, "/mnt/extra-addons/ai_connector/models/chat.py", "/mnt/extra-addons/mit_network_audit/dispatch/ir_http.py", HTTP],
                "api.openai.com", Some("ai_connector"), &["ai_connector"], false, Class::ThirdParty),
            (&["/usr/lib/python3.11/smtplib.py", "/opt/odoo/odoo/addons/base/models/ir_mail_server.py", IR_CRON,
               "/mnt/extra-addons/mit_network_audit/dispatch/ir_cron.py", IR_CRON],
                "smtp.gmail.com", Some("base"), &["base"], false, Class::ThirdParty),
            // ...and neither are egress_hook's (site-packages).
            (&[HOOK, "/mnt/extra-addons/maildesk/models/license.py"],
                "locker.mit-odoo.example", Some("maildesk"), &["maildesk"], false, Class::Vendor),
            // A call to the database host over the private network.
            (&["/usr/lib/python3/dist-packages/psycopg2/__init__.py", HTTP], "10.0.0.12", None, &[], false, Class::Local),
            // Pip-installed OCA addon (setuptools-odoo namespace).
            (&[REQUESTS, "/usr/local/lib/python3.10/site-packages/odoo/addons/queue_job/jobrunner/runner.py"],
                "127.0.0.1", Some("queue_job"), &["queue_job"], false, Class::Local),
            // Enterprise path without any "addons" directory.
            (&[REQUESTS, "/opt/odoo/enterprise/documents/models/documents.py", "/opt/odoo/odoo/models.py"],
                "www.googleapis.com", Some("documents"), &["documents"], false, Class::ThirdParty),
            // Custom addon calling an unknown host through a raw socket.
            (&["/usr/lib/python3.11/socket.py", "/opt/odoo/custom_addons/exfil/models/x.py"],
                "203.0.113.7", Some("exfil"), &["exfil"], false, Class::Unknown),
            // Payment provider through base's plumbing.
            (&[REQUESTS, "/opt/odoo/addons/payment_stripe/models/payment_provider.py", "/opt/odoo/addons/web/controllers/home.py"],
                "api.stripe.com", Some("payment_stripe"), &["payment_stripe", "web"], false, Class::ThirdParty),
        ];
        assert!(cases.len() >= 20);
        for (files, host, addon, path, self_egress, class) in cases {
            let call = attribute(raw(files, host), None, Some(&catalogue));
            assert_eq!(call.addon.as_deref(), *addon, "{files:?}");
            assert_eq!(call.addon_path, *path, "{files:?}");
            assert_eq!(call.self_egress, *self_egress, "{files:?}");
            assert_eq!(call.class, *class, "{host}");
        }
    }

    #[test]
    fn origins_label_every_frame() {
        let call = attribute(raw(&[SMTPLIB, REQUESTS, MAIL_MAIL, HTTP], "x"), None, None);
        assert_eq!(
            call.frame_origins,
            ["stdlib", "site-packages", "mail", "odoo"]
        );
    }

    #[test]
    fn uses_the_workers_addons_paths_first() {
        let paths = Layout::from_announced(&["/srv/custom".to_string()]);
        let call = attribute(
            raw(&["/srv/custom/ai_connector/chat.py"], "x"),
            Some(&paths),
            None,
        );
        assert_eq!(call.addon.as_deref(), Some("ai_connector"));
    }

    /// The examples of docs/ATTRIBUTION.md §2 "When core wraps the call":
    /// stacks as a worker of a checkout in `/srv/src-18` sends them, with
    /// the layout it announced, and the same stacks from a worker not heard
    /// from (the guess must agree).
    #[test]
    fn wrapped_calls_are_the_innermost_addon_s() {
        const SRC: &str = "/srv/src-18";
        let announced: Vec<String> = [
            "/srv/src-18/odoo/addons",
            "/srv/src-18/addons",
            "/srv/extra",
            "odoo:/srv/src-18/odoo",
            "stdlib:/usr/lib/python3.11",
            "lib:/srv/venv/lib/python3.11/site-packages",
        ]
        .map(String::from)
        .to_vec();
        let layout = Layout::from_announced(&announced);
        let f = |p: &str| format!("{SRC}/{p}");
        let lib = |p: &str| format!("/srv/venv/lib/python3.11/site-packages/{p}");
        let smtplib = "/usr/lib/python3.11/smtplib.py".to_string();
        let requests = [
            lib("urllib3/connectionpool.py"),
            lib("requests/adapters.py"),
            lib("requests/sessions.py"),
        ];
        let caller = "/srv/extra/egress_test_caller/models/caller.py".to_string();
        let dispatch_http = "/srv/extra/mit_network_audit/dispatch/ir_http.py".to_string();
        let dispatch_cron = "/srv/extra/mit_network_audit/dispatch/ir_cron.py".to_string();
        let http_dispatch = [
            f("odoo/http.py"),
            f("odoo/addons/base/models/ir_http.py"),
            dispatch_http.clone(),
            f("odoo/http.py"),
            f("odoo/service/server.py"),
        ];
        let server_action = [
            "ir.actions.server(12,)".to_string(),
            f("odoo/tools/safe_eval.py"),
            f("odoo/addons/base/models/ir_actions.py"),
        ];
        let cron = [
            f("odoo/addons/base/models/ir_cron.py"),
            dispatch_cron,
            f("odoo/addons/base/models/ir_cron.py"),
            f("odoo/service/server.py"),
        ];
        let mail_send = [
            smtplib.clone(),
            f("odoo/addons/base/models/ir_mail_server.py"),
            f("addons/mail/models/mail_mail.py"),
        ];
        let cases: Vec<(&str, Vec<String>, &str, &[&str])> = vec![
            (
                "Odoo's test wrapper around requests, in a route",
                [
                    &requests[..],
                    &[
                        f("odoo/tests/common.py"),
                        lib("requests/api.py"),
                        caller.clone(),
                    ],
                    &["/srv/extra/egress_test_caller/controllers/main.py".to_string()],
                    &http_dispatch,
                ]
                .concat(),
                "egress_test_caller",
                &["egress_test_caller", "base"],
            ),
            (
                "a server action calling an addon's method",
                [
                    &[
                        smtplib.clone(),
                        f("odoo/addons/base/models/ir_mail_server.py"),
                        caller.clone(),
                    ][..],
                    &server_action,
                    &[f("addons/web/controllers/action.py")],
                    &http_dispatch,
                ]
                .concat(),
                "egress_test_caller",
                &["base", "egress_test_caller", "base", "web", "base"],
            ),
            (
                "a server action's own code sending with the mail server",
                [
                    &[
                        smtplib.clone(),
                        f("odoo/addons/base/models/ir_mail_server.py"),
                    ][..],
                    &server_action,
                    &[f("addons/web/controllers/action.py")],
                    &http_dispatch,
                ]
                .concat(),
                "base",
                &["base", "web", "base"],
            ),
            (
                "a cron job calling an addon's method",
                [
                    &[
                        smtplib.clone(),
                        f("odoo/addons/base/models/ir_mail_server.py"),
                        caller.clone(),
                    ][..],
                    &server_action,
                    &cron,
                ]
                .concat(),
                "egress_test_caller",
                &["base", "egress_test_caller", "base"],
            ),
            (
                "the mail server's test button (ir.mail_server.send_email's connection)",
                [
                    &[
                        smtplib.clone(),
                        f("odoo/addons/base/models/ir_mail_server.py"),
                        f("odoo/api.py"),
                        f("odoo/service/model.py"),
                        f("addons/web/controllers/dataset.py"),
                    ][..],
                    &http_dispatch,
                ]
                .concat(),
                "base",
                &["base", "web", "base"],
            ),
            (
                "mail.mail's queue, from its cron",
                [
                    &mail_send[..],
                    &[f("addons/mail/models/mail_mail.py")],
                    &server_action,
                    &cron,
                ]
                .concat(),
                "mail",
                &["base", "mail", "base"],
            ),
            (
                "mail.mail sent at once for an addon's message, in a route",
                [
                    &mail_send[..],
                    &[
                        f("addons/mail/models/mail_thread.py"),
                        "/srv/extra/helpdesk_x/models/ticket.py".to_string(),
                        "/srv/extra/helpdesk_x/controllers/portal.py".to_string(),
                    ],
                    &http_dispatch,
                ]
                .concat(),
                "helpdesk_x",
                &["base", "mail", "helpdesk_x", "base"],
            ),
            (
                "a queue_job job",
                [
                    &requests[..],
                    &[
                        "/srv/extra/shop_sync/models/sync.py".to_string(),
                        "/srv/extra/queue_job/job.py".to_string(),
                        "/srv/extra/mit_network_audit/dispatch/queue_job.py".to_string(),
                        "/srv/extra/queue_job/controllers/main.py".to_string(),
                    ],
                    &http_dispatch,
                ]
                .concat(),
                "shop_sync",
                &["shop_sync", "queue_job", "base"],
            ),
            (
                "odoo-bin shell calling an addon's method",
                [
                    &requests[..],
                    &[
                        lib("requests/api.py"),
                        caller.clone(),
                        "<string>".to_string(),
                        f("odoo/cli/shell.py"),
                        f("odoo/cli/command.py"),
                    ],
                ]
                .concat(),
                "egress_test_caller",
                &["egress_test_caller"],
            ),
        ];
        for (what, files, addon, path) in cases {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            for layout in [Some(&layout), None] {
                let call = attribute(raw(&files, "127.0.0.1"), layout, None);
                assert_eq!(call.addon.as_deref(), Some(addon), "{what} ({layout:?})");
                assert_eq!(call.addon_path, path, "{what} ({layout:?})");
                assert!(!call.self_egress, "{what}");
                // Every frame of the core package is the core's.
                for (file, origin) in files.iter().zip(&call.frame_origins) {
                    if file.starts_with("/srv/src-18/odoo/") && !file.contains("/odoo/addons/") {
                        assert_eq!(origin, "odoo", "{what}: {file}");
                    }
                }
            }
        }
    }
}
