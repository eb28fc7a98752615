//! Redaction actor: the single policy point between what a worker sent and
//! what may reach disk, logs or the watch stream (docs/REDACTION.md).
//! Always: secret-looking path segments and names become placeholders,
//! userinfo and query strings a sender should never have sent are cut,
//! every length is capped, and the payload digest becomes a salted HMAC
//! fingerprint. Strict mode keeps only destination, sizes and timing.
//! Calls the database's settings exclude are reduced to their sequence
//! number. The logic is `redact`.

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix::{Actor, Context, Handler, ResponseFuture};
use egress_proto::{JournalRow, StackFrame};

use crate::pipeline::link::{HandsOn, Link};
use crate::pipeline::policy::{Policy, PolicyMap, Settings};
use crate::pipeline::salts::Salts;
use crate::pipeline::scrub;
use crate::pipeline::stage::{AttributedCall, Batch, Drain, Item, RedactedEntry};
use crate::stats::Stats;

const MAX_TEXT: usize = 256;
const MAX_PATH: usize = 1024;
const MAX_LIST: usize = 64;
const MAX_STACK: usize = 32;
/// 2200-01-01 in microseconds: later (or negative) start times are garbage.
const MAX_PLAUSIBLE_US: i64 = 7_258_118_400_000_000;

pub struct Redaction {
    next: Link<RedactedEntry>,
    /// A retry of what `next` holds is scheduled (`HandsOn`).
    retry_scheduled: bool,
    stats: Arc<Stats>,
    policies: PolicyMap,
    salts: Arc<Salts>,
}

impl Redaction {
    pub fn new(
        next: Link<RedactedEntry>,
        stats: Arc<Stats>,
        policies: PolicyMap,
        salts: Arc<Salts>,
    ) -> Self {
        Redaction {
            next,
            retry_scheduled: false,
            stats,
            policies,
            salts,
        }
    }
}

impl Actor for Redaction {
    type Context = Context<Self>;
}

impl HandsOn for Redaction {
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

impl Handler<Batch<AttributedCall>> for Redaction {
    type Result = ();

    fn handle(&mut self, Batch(items, _ticket): Batch<AttributedCall>, ctx: &mut Context<Self>) {
        let fail_closed = Settings::fail_closed();
        // Batches mostly hold one database's calls: look its policy up once.
        let mut current: Option<(String, Option<Arc<Policy>>)> = None;
        let out: Vec<Item<RedactedEntry>> = items
            .into_iter()
            .map(|item| match item {
                Item::Call(call) => {
                    self.stats.redacted.fetch_add(1, Relaxed);
                    let database = &call.raw.call.database;
                    if current.as_ref().is_none_or(|(d, _)| d != database) {
                        current = Some((database.clone(), self.policies.get(database)));
                    }
                    // Attribution let no call through before its policy.
                    let settings = current
                        .as_ref()
                        .and_then(|(_, p)| p.as_deref())
                        .map_or(&fail_closed, |p| &p.settings);
                    let fingerprint = |digest: &[u8; 32]| {
                        self.salts.fingerprint(&call.raw.call.database, digest).ok()
                    };
                    let fingerprint = call.raw.call.payload_sha256.as_ref().and_then(fingerprint);
                    let (entry, cut) = redact_counted(call, settings, fingerprint);
                    if cut > 0 {
                        self.stats.names_cut.fetch_add(cut, Relaxed);
                    }
                    Item::Call(entry)
                }
                // Not journaled: the appenders keep only its hook mode and
                // versions, short and printable (`workers::HookInfo`).
                Item::Hello(s, h) => Item::Hello(s, h),
                Item::Drops(s, d) => Item::Drops(s, d),
                Item::ConfigChange(s, mut c) => {
                    c.key = text(&c.key, MAX_TEXT);
                    c.user_login = text(&c.user_login, MAX_TEXT);
                    c.old_value = c.old_value.map(|v| text(&v, MAX_PATH));
                    c.new_value = c.new_value.map(|v| text(&v, MAX_PATH));
                    Item::ConfigChange(s, c)
                }
                Item::Lost(l) => Item::Lost(l),
            })
            .collect();
        self.next.send(out);
        self.retry_while_holding(ctx);
    }
}

impl Handler<Drain> for Redaction {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.next.drain())
    }
}

/// Reduces an attributed call to a journal row template under `settings`.
/// `fingerprint` is the salted HMAC of the payload digest, if one was sent.
pub fn redact(
    attributed: AttributedCall,
    settings: &Settings,
    fingerprint: Option<Vec<u8>>,
) -> RedactedEntry {
    redact_counted(attributed, settings, fingerprint).0
}

/// `redact`, and how many header names and query keys carried a value
/// (cut to the name).
pub fn redact_counted(
    attributed: AttributedCall,
    settings: &Settings,
    fingerprint: Option<Vec<u8>>,
) -> (RedactedEntry, u64) {
    let mut names_cut = 0;
    let AttributedCall {
        raw,
        addon,
        addon_path,
        self_egress,
        component,
        class,
        frame_origins,
    } = attributed;
    let call = raw.call;
    let strict = settings.strict || captured_strict(&call.stack);
    // Strings the call owns move into the row when they pass unchanged: no
    // copy, and nothing to free here.
    let non_empty = |s: String, max| (!s.is_empty()).then(|| cap(s, max));
    let stack = Some(
        call.stack
            .into_iter()
            .zip(
                frame_origins
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::repeat("?")),
            )
            .take(MAX_STACK)
            .map(|(f, origin)| cap(frame_line(origin, &f), MAX_PATH))
            .collect(),
    );
    let host = if call.host.contains('@') {
        text(strip_userinfo(&call.host), MAX_TEXT)
    } else {
        cap(call.host, MAX_TEXT)
    };
    let mut row = JournalRow {
        worker_id: Some(call.worker_id as i64),
        worker_pid: Some(raw.sender.pid),
        worker_uid: Some(raw.sender.uid),
        // A seq beyond bigint's range is kept at its top, never wrapped.
        worker_seq: Some(crate::chain::plan::count_column(call.seq)),
        started_at_us: (0..=MAX_PLAUSIBLE_US)
            .contains(&call.started_at_us)
            .then_some(call.started_at_us),
        duration_us: Some(clamp(call.duration_us)),
        channel: Some(cap(call.channel, MAX_TEXT)),
        protocol: non_empty(call.protocol, MAX_TEXT),
        direction: non_empty(call.direction, MAX_TEXT),
        method: non_empty(call.method, MAX_TEXT),
        host: Some(host),
        port: Some(i64::from(call.port)),
        path: Some(cap(scrub::path(strip_query(&call.path)), MAX_PATH)),
        query_keys: Some(names(call.query_keys, &mut names_cut)),
        header_names: Some(names(call.header_names, &mut names_cut)),
        src_ip: non_empty(call.src_ip, MAX_TEXT),
        src_port: (call.src_port != 0).then_some(i64::from(call.src_port)),
        dst_ip: non_empty(call.dst_ip, MAX_TEXT),
        dst_port: (call.dst_port != 0).then_some(i64::from(call.dst_port)),
        tls: Some(call.tls),
        status: call.status.map(i64::from),
        error_class: non_empty(call.error_class, MAX_TEXT),
        bytes_out: Some(clamp(call.bytes_out)),
        bytes_in: Some(clamp(call.bytes_in)),
        fingerprint,
        addon: addon.map(|a| cap(a, MAX_TEXT)),
        addon_path: Some(
            addon_path
                .into_iter()
                .take(MAX_LIST)
                .map(|a| cap(a, MAX_TEXT))
                .collect(),
        ),
        stack,
        trigger_kind: non_empty(call.trigger.kind, MAX_TEXT),
        trigger_name: non_empty(scrub::path(strip_query(&call.trigger.name)), MAX_PATH),
        odoo_uid: call.trigger.uid,
        component: component.map(|c| cap(c, MAX_TEXT)),
        class: Some(class.as_str().to_owned()),
        self_egress: Some(self_egress),
        ..JournalRow::default()
    };
    if strict {
        keep_only_destination_sizes_and_timing(&mut row);
    }
    let entry = RedactedEntry {
        database: call.database,
        worker_id: call.worker_id,
        worker_seq: call.seq,
        row,
        // The worker decides what is captured (policy::Settings): a call it
        // sent is journaled.
        suppressed: None,
    };
    (entry, names_cut)
}

/// Whether the worker captured this call under strict redaction: it then
/// sends the stack's file names only (no function, no line), for
/// attribution. Such a call is redacted strictly whatever this collector's
/// copy of the settings says (it may lag behind the worker's).
fn captured_strict(stack: &[StackFrame]) -> bool {
    !stack.is_empty() && stack.iter().all(|f| f.function.is_empty() && f.line == 0)
}

/// Strict redaction: the destination (host, IPs, ports), sizes and timing,
/// plus what the collector derived from them (channel, addon, component,
/// class, self-egress) and the worker's identity. Nothing the call carried
/// beyond that: no method, path, names, status, error, fingerprint, stack
/// or trigger.
fn keep_only_destination_sizes_and_timing(row: &mut JournalRow) {
    row.method = None;
    row.path = None;
    row.query_keys = None;
    row.header_names = None;
    row.status = None;
    row.error_class = None;
    row.fingerprint = None;
    row.stack = None;
    row.trigger_kind = None;
    row.trigger_name = None;
    row.odoo_uid = None;
}

/// `text` for a string we already own: no copy when nothing changes.
fn cap(value: String, max: usize) -> String {
    if value.len() <= max && !value.contains('\0') {
        value
    } else {
        text(&value, max)
    }
}

/// Caps a string on a character boundary and removes NUL, which PostgreSQL
/// text cannot hold (one such byte would make the whole batch fail).
fn text(value: &str, max: usize) -> String {
    if value.len() <= max && !value.contains('\0') {
        return value.to_owned();
    }
    let mut out: String = value.chars().filter(|&c| c != '\0').collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Key and header names: a name can itself be a secret (`?<api-key>=1`),
/// or carry its value (`Authorization: Bearer …`): cut to the name, and
/// counted in `names_cut`.
fn names(values: Vec<String>, names_cut: &mut u64) -> Vec<String> {
    values
        .into_iter()
        .take(MAX_LIST)
        .map(|v| {
            let v = match scrub::cut_to_name(&v) {
                Some(name) => {
                    *names_cut += 1;
                    name.to_owned()
                }
                None => v,
            };
            let scrubbed = match scrub::segment(&v) {
                // Unchanged: the name itself is kept (capped), not a copy.
                Cow::Borrowed(same) if std::ptr::eq(same, v.as_str()) => None,
                other => Some(text(&other, MAX_TEXT)),
            };
            scrubbed.unwrap_or_else(|| cap(v, MAX_TEXT))
        })
        .collect()
}

/// A stack frame as journaled: `[origin] file:line function`, with the
/// function name scrubbed.
fn frame_line(origin: &str, frame: &StackFrame) -> String {
    let function = scrub::segment(&frame.function);
    let mut line = String::with_capacity(origin.len() + frame.file.len() + function.len() + 16);
    line.push('[');
    line.push_str(origin);
    line.push_str("] ");
    line.push_str(&frame.file);
    line.push(':');
    push_decimal(&mut line, frame.line);
    line.push(' ');
    line.push_str(&function);
    line
}

/// `value` in decimal, as `format!("{value}")` writes it, without the
/// formatting machinery.
fn push_decimal(out: &mut String, mut value: u32) {
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn strip_userinfo(host: &str) -> &str {
    host.rsplit_once('@').map_or(host, |(_, after)| after)
}

fn strip_query(path: &str) -> &str {
    path.split(['?', '#', ';']).next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stage::{RawCall, Sender};
    use egress_proto::Call;

    fn attributed(call: Call) -> AttributedCall {
        AttributedCall {
            raw: RawCall {
                call,
                sender: Sender { pid: 10, uid: 20 },
            },
            addon: None,
            addon_path: vec![],
            self_egress: false,
            component: None,
            class: crate::pipeline::catalogue::Class::Unknown,
            frame_origins: vec![],
        }
    }

    fn plain(call: Call) -> RedactedEntry {
        redact(attributed(call), &Settings::default(), None)
    }

    #[test]
    fn frame_lines_read_as_formatted() {
        for line in [0, 7, 10, 1869, u32::MAX] {
            let frame = StackFrame {
                file: "/opt/odoo/odoo/http.py".into(),
                function: "dispatch".into(),
                line,
            };
            assert_eq!(
                frame_line("odoo", &frame),
                format!("[odoo] /opt/odoo/odoo/http.py:{line} dispatch")
            );
        }
    }

    #[test]
    fn never_keeps_userinfo_query_values_or_the_raw_digest() {
        let entry = plain(Call {
            host: "user:secret@api.example.com".into(),
            path: "/v1/x?token=hunter2#frag".into(),
            payload_sha256: Some([7; 32]),
            ..Call::default()
        });
        assert_eq!(entry.row.host.as_deref(), Some("api.example.com"));
        assert_eq!(entry.row.path.as_deref(), Some("/v1/x"));
        assert_eq!(entry.row.fingerprint, None);
        assert_eq!(
            (entry.row.worker_pid, entry.row.worker_uid),
            (Some(10), Some(20))
        );
    }

    #[test]
    fn a_header_name_or_query_key_carrying_a_value_is_cut_and_counted() {
        let (entry, cut) = redact_counted(
            attributed(Call {
                header_names: vec![
                    "Authorization: Bearer SEKRET085".into(),
                    "Content-Type".into(),
                ],
                query_keys: vec!["token=SEKRET085".into(), "since".into()],
                ..Call::default()
            }),
            &Settings::default(),
            None,
        );
        assert_eq!(cut, 2);
        assert_eq!(
            entry.row.header_names.unwrap(),
            ["Authorization", "Content-Type"]
        );
        assert_eq!(entry.row.query_keys.unwrap(), ["token", "since"]);
    }

    #[test]
    fn caps_lengths_on_char_boundaries_and_drops_nul() {
        let entry = plain(Call {
            method: "é".repeat(300),
            channel: "ht\0tp".into(),
            query_keys: (0..100).map(|i| i.to_string()).collect(),
            started_at_us: i64::MAX,
            bytes_out: u64::MAX,
            ..Call::default()
        });
        assert!(entry.row.method.as_ref().unwrap().len() <= MAX_TEXT);
        assert_eq!(entry.row.channel.as_deref(), Some("http"));
        assert_eq!(entry.row.query_keys.as_ref().unwrap().len(), MAX_LIST);
        assert_eq!(entry.row.started_at_us, None);
        assert_eq!(entry.row.bytes_out, Some(i64::MAX));
    }

    #[test]
    fn the_trigger_context_is_kept() {
        use egress_proto::Trigger;
        let cases = [
            ("http", "/web/dataset/call_kw/res.partner/write", Some(2)),
            ("cron", "Mail: Email Queue Manager", None),
            ("queue_job", "crm.lead.action_enrich", Some(7)),
        ];
        for (kind, name, uid) in cases {
            let trigger = Trigger {
                kind: kind.into(),
                name: name.into(),
                uid,
            };
            let row = plain(Call {
                trigger,
                ..Call::default()
            })
            .row;
            assert_eq!(row.trigger_kind.as_deref(), Some(kind));
            assert_eq!(row.trigger_name.as_deref(), Some(name));
            assert_eq!(row.odoo_uid, uid);
        }
    }

    #[test]
    fn strict_mode_keeps_only_destination_sizes_and_timing() {
        let call = Call {
            method: "POST".into(),
            host: "api.example.com".into(),
            port: 443,
            path: "/v1/x".into(),
            query_keys: vec!["k".into()],
            header_names: vec!["Authorization".into()],
            status: Some(200),
            bytes_out: 10,
            duration_us: 5,
            ..Call::default()
        };
        let strict = Settings {
            strict: true,
            ..Settings::default()
        };
        let row = redact(attributed(call), &strict, Some(vec![1; 32])).row;
        assert_eq!(
            (
                row.host.as_deref(),
                row.port,
                row.bytes_out,
                row.duration_us
            ),
            (Some("api.example.com"), Some(443), Some(10), Some(5))
        );
        assert_eq!(
            (row.method, row.path, row.query_keys, row.header_names),
            (None, None, None, None)
        );
        assert_eq!((row.status, row.fingerprint, row.stack), (None, None, None));
    }

    #[test]
    fn a_call_the_worker_captured_strictly_is_stored_strictly() {
        let frame = |function: &str, line| StackFrame {
            file: "/srv/addons/connector/models/sync.py".into(),
            function: function.into(),
            line,
        };
        let call = |frames: Vec<StackFrame>| Call {
            host: "api.example.com".into(),
            port: 443,
            status: Some(200),
            stack: frames,
            trigger: egress_proto::Trigger {
                kind: "http".into(),
                name: "/web".into(),
                uid: Some(2),
            },
            ..Call::default()
        };
        let defaults = Settings::default();
        let strict = redact(attributed(call(vec![frame("", 0)])), &defaults, None).row;
        assert_eq!(
            (
                strict.stack,
                strict.status,
                strict.trigger_kind,
                strict.odoo_uid
            ),
            (None, None, None, None)
        );
        assert_eq!(strict.host.as_deref(), Some("api.example.com"));
        let full = redact(attributed(call(vec![frame("sync", 3)])), &defaults, None).row;
        assert!(full.stack.is_some() && full.status == Some(200));
    }
}
