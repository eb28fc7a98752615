//! Redaction actor: the single policy point between what a worker sent and
//! what may reach disk, logs or the watch stream. Today it caps every length,
//! removes what PostgreSQL cannot store, strips userinfo and query strings
//! that a sender should never have sent, and keeps no payload digest (the
//! salted fingerprint comes with the per-database salt). The logic is `redact`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use actix::{Actor, Context, Handler, ResponseFuture};
use egress_proto::JournalRow;

use crate::link::Link;
use crate::router::Router;
use crate::stage::{AttributedCall, Batch, Drain, Item, RedactedEntry};
use crate::stats::Stats;

const MAX_TEXT: usize = 256;
const MAX_PATH: usize = 1024;
const MAX_LIST: usize = 64;
const MAX_STACK: usize = 32;
/// 2200-01-01 in microseconds: later (or negative) start times are garbage.
const MAX_PLAUSIBLE_US: i64 = 7_258_118_400_000_000;

pub struct Redaction {
    next: Link<RedactedEntry, Router>,
    stats: Arc<Stats>,
}

impl Redaction {
    pub fn new(next: Link<RedactedEntry, Router>, stats: Arc<Stats>) -> Self {
        Redaction { next, stats }
    }
}

impl Actor for Redaction {
    type Context = Context<Self>;
}

impl Handler<Batch<AttributedCall>> for Redaction {
    type Result = ();

    fn handle(&mut self, Batch(items): Batch<AttributedCall>, _: &mut Context<Self>) {
        let out: Vec<Item<RedactedEntry>> = items
            .into_iter()
            .map(|item| match item {
                Item::Call(call) => {
                    self.stats.redacted.fetch_add(1, Relaxed);
                    Item::Call(redact(call))
                }
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
    }
}

impl Handler<Drain> for Redaction {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.next.drain())
    }
}

/// Reduces an attributed call to a journal row template.
pub fn redact(attributed: AttributedCall) -> RedactedEntry {
    let AttributedCall {
        raw,
        addon,
        addon_path,
        self_egress,
    } = attributed;
    let call = raw.call;
    let non_empty = |s: &str, max| (!s.is_empty()).then(|| text(s, max));
    let row = JournalRow {
        worker_id: Some(call.worker_id as i64),
        worker_pid: Some(raw.sender.pid),
        worker_uid: Some(raw.sender.uid),
        worker_seq: Some(call.seq as i64),
        started_at_us: (0..=MAX_PLAUSIBLE_US)
            .contains(&call.started_at_us)
            .then_some(call.started_at_us),
        duration_us: Some(clamp(call.duration_us)),
        channel: Some(text(&call.channel, MAX_TEXT)),
        protocol: non_empty(&call.protocol, MAX_TEXT),
        direction: non_empty(&call.direction, MAX_TEXT),
        method: non_empty(&call.method, MAX_TEXT),
        host: Some(text(strip_userinfo(&call.host), MAX_TEXT)),
        port: Some(i64::from(call.port)),
        path: Some(text(strip_query(&call.path), MAX_PATH)),
        query_keys: Some(list(&call.query_keys)),
        header_names: Some(list(&call.header_names)),
        src_ip: non_empty(&call.src_ip, MAX_TEXT),
        src_port: (call.src_port != 0).then_some(i64::from(call.src_port)),
        dst_ip: non_empty(&call.dst_ip, MAX_TEXT),
        dst_port: (call.dst_port != 0).then_some(i64::from(call.dst_port)),
        tls: Some(call.tls),
        status: call.status.map(i64::from),
        error_class: non_empty(&call.error_class, MAX_TEXT),
        bytes_out: Some(clamp(call.bytes_out)),
        bytes_in: Some(clamp(call.bytes_in)),
        fingerprint: None,
        addon: addon.map(|a| text(&a, MAX_TEXT)),
        addon_path: Some(
            addon_path
                .iter()
                .take(MAX_LIST)
                .map(|a| text(a, MAX_TEXT))
                .collect(),
        ),
        stack: Some(
            call.stack
                .iter()
                .take(MAX_STACK)
                .map(|f| text(&format!("{}:{} {}", f.file, f.line, f.function), MAX_PATH))
                .collect(),
        ),
        trigger_kind: non_empty(&call.trigger.kind, MAX_TEXT),
        trigger_name: non_empty(&call.trigger.name, MAX_PATH),
        odoo_uid: call.trigger.uid,
        self_egress: Some(self_egress),
        ..JournalRow::default()
    };
    RedactedEntry {
        database: call.database,
        worker_id: call.worker_id,
        worker_seq: call.seq,
        row,
    }
}

/// Caps a string on a character boundary and removes NUL, which PostgreSQL
/// text cannot hold (one such byte would make the whole batch fail).
fn text(value: &str, max: usize) -> String {
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

fn list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .take(MAX_LIST)
        .map(|v| text(v, MAX_TEXT))
        .collect()
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn strip_userinfo(host: &str) -> &str {
    host.rsplit_once('@').map_or(host, |(_, after)| after)
}

fn strip_query(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{RawCall, Sender};
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
        }
    }

    #[test]
    fn never_keeps_userinfo_query_values_or_the_raw_digest() {
        let entry = redact(attributed(Call {
            host: "user:secret@api.example.com".into(),
            path: "/v1/x?token=hunter2#frag".into(),
            payload_sha256: Some([7; 32]),
            ..Call::default()
        }));
        assert_eq!(entry.row.host.as_deref(), Some("api.example.com"));
        assert_eq!(entry.row.path.as_deref(), Some("/v1/x"));
        assert_eq!(entry.row.fingerprint, None);
        assert_eq!(
            (entry.row.worker_pid, entry.row.worker_uid),
            (Some(10), Some(20))
        );
    }

    #[test]
    fn caps_lengths_on_char_boundaries_and_drops_nul() {
        let entry = redact(attributed(Call {
            method: "é".repeat(300),
            channel: "ht\0tp".into(),
            query_keys: (0..100).map(|i| i.to_string()).collect(),
            started_at_us: i64::MAX,
            bytes_out: u64::MAX,
            ..Call::default()
        }));
        assert!(entry.row.method.as_ref().unwrap().len() <= MAX_TEXT);
        assert_eq!(entry.row.channel.as_deref(), Some("http"));
        assert_eq!(entry.row.query_keys.as_ref().unwrap().len(), MAX_LIST);
        assert_eq!(entry.row.started_at_us, None);
        assert_eq!(entry.row.bytes_out, Some(i64::MAX));
    }
}
