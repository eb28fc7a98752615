//! Truncation that makes a message fit in one datagram of `MAX_DATAGRAM_SIZE`.
//!
//! A call is worth recording even when its stack or header list is huge, so
//! the sender cuts fields rather than dropping the event: caps are tried from
//! generous to strict and the first level whose encoding fits is sent.

use egress_proto::{encode, Call, ConfigChange, Hello, Message};

/// Byte and count caps for one truncation level.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// An ordinary string field (host, method, versions, ...).
    text: usize,
    /// URL path, HTTP route, addons path, setting value.
    path: usize,
    /// Entries of a list of names.
    items: usize,
    /// Bytes of one list entry.
    item: usize,
    /// Stack frames kept, innermost first.
    frames: usize,
    /// File and function name of one frame.
    frame_text: usize,
}

/// Level 0 applies to every message and bounds what any call may carry; the
/// last level fits any `Call` with a lot of room to spare, so `too_large`
/// only comes from the kernel refusing the datagram.
const LEVELS: [Limits; 4] = [
    Limits {
        text: 512,
        path: 2048,
        items: 64,
        item: 128,
        frames: 32,
        frame_text: 512,
    },
    Limits {
        text: 256,
        path: 1024,
        items: 32,
        item: 64,
        frames: 16,
        frame_text: 256,
    },
    Limits {
        text: 128,
        path: 512,
        items: 16,
        item: 64,
        frames: 8,
        frame_text: 192,
    },
    Limits {
        text: 64,
        path: 128,
        items: 8,
        item: 32,
        frames: 4,
        frame_text: 128,
    },
];

/// Database names are capped once and never shrunk further: the name keys the
/// sequence numbers and the journal the event goes to (PostgreSQL's own limit
/// is 63 bytes, so real names are never cut).
pub(crate) const DATABASE_MAX: usize = 255;

/// Cuts `text` to at most `max` bytes, on a char boundary.
pub(crate) fn truncate(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

fn truncate_list(list: &mut Vec<String>, items: usize, item: usize) {
    list.truncate(items);
    for entry in list.iter_mut() {
        truncate(entry, item);
    }
}

fn truncate_opt(text: &mut Option<String>, max: usize) {
    if let Some(text) = text {
        truncate(text, max);
    }
}

fn fit_call(call: &mut Call, l: &Limits) {
    truncate(&mut call.database, DATABASE_MAX);
    for text in [
        &mut call.channel,
        &mut call.protocol,
        &mut call.direction,
        &mut call.method,
        &mut call.host,
        &mut call.src_ip,
        &mut call.dst_ip,
        &mut call.error_class,
        &mut call.trigger.kind,
    ] {
        truncate(text, l.text);
    }
    truncate(&mut call.path, l.path);
    truncate(&mut call.trigger.name, l.path);
    truncate_list(&mut call.query_keys, l.items, l.item);
    truncate_list(&mut call.header_names, l.items, l.item);
    // Innermost frames name the addon that made the call; the outermost ones
    // are the server loop and go first.
    call.stack.truncate(l.frames);
    for frame in &mut call.stack {
        truncate(&mut frame.file, l.frame_text);
        truncate(&mut frame.function, l.frame_text);
    }
}

fn fit_hello(hello: &mut Hello, l: &Limits) {
    for text in [
        &mut hello.odoo_version,
        &mut hello.python_version,
        &mut hello.hook_mode,
        &mut hello.hook_version,
    ] {
        truncate(text, l.text);
    }
    truncate_list(&mut hello.addons_paths, l.items, l.path);
    truncate_list(&mut hello.databases, l.items, DATABASE_MAX);
}

fn fit_change(change: &mut ConfigChange, l: &Limits) {
    truncate(&mut change.database, DATABASE_MAX);
    truncate(&mut change.key, l.text);
    truncate(&mut change.user_login, l.text);
    truncate_opt(&mut change.old_value, l.path);
    truncate_opt(&mut change.new_value, l.path);
}

fn fit(message: &mut Message, limits: &Limits) {
    match message {
        Message::Call(call) => fit_call(call, limits),
        Message::Hello(hello) => fit_hello(hello, limits),
        Message::ConfigChange(change) => fit_change(change, limits),
        // Drops are split into several messages by the sender instead.
        Message::Drops(_) => {}
        // Chunked to fit by `ForensicBody::chunks`; the database is capped
        // with the call's.
        Message::ForensicBody(body) => truncate(&mut body.database, DATABASE_MAX),
    }
}

/// Truncates `message` level by level until it encodes, and returns the
/// datagram; `None` when even the strictest level does not fit.
pub(crate) fn encode_fitting(message: &mut Message) -> Option<Vec<u8>> {
    LEVELS.iter().find_map(|limits| {
        fit(message, limits);
        encode(message).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use egress_proto::{decode, StackFrame, MAX_DATAGRAM_SIZE};

    #[test]
    fn truncates_on_a_char_boundary() {
        let mut text = "société".to_string();
        truncate(&mut text, 5);
        assert_eq!(text, "soci");
        truncate(&mut text, 10);
        assert_eq!(text, "soci");
        let mut emoji = "🙂🙂".to_string();
        truncate(&mut emoji, 3);
        assert_eq!(emoji, "");
    }

    #[test]
    fn a_normal_call_is_untouched() {
        let call = Call {
            database: "prod".into(),
            host: "api.openai.com".into(),
            path: "/v1/chat/completions".into(),
            header_names: vec!["Authorization".into()],
            stack: vec![StackFrame {
                file: "/a.py".into(),
                function: "f".into(),
                line: 1,
            }],
            ..Call::default()
        };
        let mut message = Message::Call(call.clone());
        let bytes = encode_fitting(&mut message).unwrap();
        assert_eq!(decode(&bytes).unwrap(), Message::Call(call));
    }

    #[test]
    fn a_huge_call_is_cut_to_fit_keeping_the_innermost_frames() {
        let frame = |i: u32| StackFrame {
            file: format!("/mnt/extra-addons/a{i}/{}.py", "é".repeat(400)),
            function: "f".repeat(1000),
            line: i,
        };
        let call = Call {
            database: "d".repeat(1000),
            path: "/ü".repeat(20_000),
            query_keys: (0..5000).map(|i| format!("key{i}")).collect(),
            header_names: (0..5000).map(|i| "h".repeat(i % 300)).collect(),
            stack: (0..500).map(frame).collect(),
            ..Call::default()
        };
        let mut message = Message::Call(call);
        let bytes = encode_fitting(&mut message).unwrap();
        assert!(bytes.len() <= MAX_DATAGRAM_SIZE);
        let Ok(Message::Call(sent)) = decode(&bytes) else {
            panic!("not a call")
        };
        assert_eq!(sent.database.len(), DATABASE_MAX);
        assert!(sent.path.starts_with("/ü/ü"));
        assert!(!sent.stack.is_empty());
        assert_eq!(sent.stack[0].line, 0, "innermost frame kept");
        assert_eq!(sent.query_keys[0], "key0");
    }

    #[test]
    fn a_hello_with_many_addons_paths_fits() {
        let hello = Hello {
            addons_paths: (0..1000)
                .map(|i| format!("/srv/{i}/{}", "x".repeat(500)))
                .collect(),
            ..Hello::default()
        };
        let mut message = Message::Hello(hello);
        let bytes = encode_fitting(&mut message).unwrap();
        assert!(bytes.len() <= MAX_DATAGRAM_SIZE);
    }
}
