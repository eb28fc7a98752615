//! Scrubbing of secret-looking text: URL path segments and key names that
//! carry e-mail addresses, UUIDs, JWTs, API keys, long hex or base64 runs, or
//! numeric ids become stable placeholders (`{email}`, `{uuid}`, `{token}`,
//! `{id}`), so `/v1/users/jane@acme.com/keys/sk-…` reads
//! `/v1/users/{email}/keys/{token}` and two calls to the same endpoint look
//! the same. Used by the redaction stage only.

use std::borrow::Cow;

/// Scrubs every segment of a URL path.
pub fn path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, part) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&segment(part));
    }
    out
}

/// Scrubs one path segment, or a key or header name.
pub fn segment(segment: &str) -> Cow<'_, str> {
    if plainly_harmless(segment) {
        return Cow::Borrowed(segment);
    }
    if let Some(whole) = whole_segment(segment) {
        return Cow::Borrowed(whole);
    }
    // Secrets embedded in a longer segment ("key-<token>.json", "u=<email>"):
    // scrub each run of word characters on its own.
    let mut out = String::with_capacity(segment.len());
    let mut run = String::new();
    for c in segment.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            out.push_str(run_placeholder(&run));
            run.clear();
            out.push(c);
        }
    }
    out.push_str(run_placeholder(&run));
    Cow::Owned(out)
}

/// One cheap pass that proves no rule below can match, which is the case
/// for almost every route name, key and header name: no `@` or `%`, no JWT
/// start, no word run of 16 or more, no run of 4 or more digits.
fn plainly_harmless(segment: &str) -> bool {
    if segment.starts_with("eyJ") {
        return false;
    }
    let (mut run, mut digits) = (0usize, 0usize);
    for b in segment.bytes() {
        if b == b'@' || b == b'%' {
            return false;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'=' | b'~') {
            run += 1;
            digits += usize::from(b.is_ascii_digit());
            if run >= 16 || (digits >= 4 && digits == run) {
                return false;
            }
        } else if b >= 0x80 {
            return false;
        } else {
            run = 0;
            digits = 0;
        }
    }
    true
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '=' | '~')
}

/// A header name or query key that carries a value cut to the name alone,
/// or `None` when it carries none. A value rides along after `:`, `=` or
/// whitespace (`Authorization: Bearer …`, `token=…`, `Bearer …`), or after
/// a separator (`-`, `_`, `.`) as a high-entropy part
/// (`X-Api-Key-9f8a7b6c5d4e3f2a1b0c`). Names are never values: what is cut
/// is gone, not scrubbed into a placeholder.
pub fn cut_to_name(name: &str) -> Option<&str> {
    let mut cut = name.find(|c: char| c == ':' || c == '=' || c.is_whitespace());
    let head = &name[..cut.unwrap_or(name.len())];
    // A part after a separator that looks like a key ends the name there.
    let mut start = 0;
    for (at, c) in head.char_indices().chain([(head.len(), '-')]) {
        if matches!(c, '-' | '_' | '.') {
            if start > 0 && looks_secret(&head[start..at]) {
                cut = Some(cut.map_or(start - 1, |c| c.min(start - 1)));
                break;
            }
            start = at + c.len_utf8();
        }
    }
    cut.map(|at| name[..at].trim_end_matches(['-', '_', '.']))
}

/// Placeholders decided on the whole segment (they contain '.', '@', '%').
fn whole_segment(segment: &str) -> Option<&'static str> {
    let decoded = if segment.contains('%') {
        Cow::Owned(segment.replace("%40", "@").replace("%2B", "+"))
    } else {
        Cow::Borrowed(segment)
    };
    if is_email(&decoded) {
        return Some("{email}");
    }
    if is_jwt(segment) {
        return Some("{token}");
    }
    // Percent-encoded blobs are never meaningful route names.
    if segment.matches('%').count() >= 3 && segment.len() >= 16 {
        return Some("{token}");
    }
    None
}

fn run_placeholder(run: &str) -> &str {
    if is_uuid(run) {
        "{uuid}"
    } else if run.len() >= 4 && run.bytes().all(|b| b.is_ascii_digit()) {
        "{id}"
    } else if looks_secret(run) {
        "{token}"
    } else {
        run
    }
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

fn is_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            p.len() >= 4
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Long runs that mix character classes or are hex or high-entropy: API
/// keys, tokens, base64, hashes. Plain words ("completions", "oauth2") and
/// short versions ("v1") pass.
fn looks_secret(run: &str) -> bool {
    let len = run.chars().count();
    if len >= 16 && run.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    let uppers = run.bytes().filter(u8::is_ascii_uppercase).count();
    let lowers = run.bytes().filter(u8::is_ascii_lowercase).count();
    let classes = [digits, uppers, lowers].iter().filter(|n| **n > 0).count();
    if len >= 16 && classes >= 2 && (digits >= 2 || (uppers >= 2 && lowers >= 2)) {
        return entropy(run) >= 3.0;
    }
    // Long enough that no route name is like it.
    len >= 32 && entropy(run) >= 3.5
}

/// Shannon entropy in bits per character.
fn entropy(text: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in text.bytes() {
        counts[b as usize] += 1;
    }
    let len = text.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_secrets_and_keeps_route_names() {
        let cases = [
            ("/v1/chat/completions", "/v1/chat/completions"),
            ("/api/v2/oauth2/token", "/api/v2/oauth2/token"),
            ("/users/jane.doe@acme.com/profile", "/users/{email}/profile"),
            ("/users/jane.doe%40acme.com", "/users/{email}"),
            ("/orders/123456/lines/42", "/orders/{id}/lines/42"),
            (
                "/files/3f2b8c9e-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
                "/files/{uuid}",
            ),
            (
                "/hooks/sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv",
                "/hooks/{token}",
            ),
            (
                "/v1/keys/ghp_16C7e42F292c6912E7710c838347Ae178B4a",
                "/v1/keys/{token}",
            ),
            ("/blob/d41d8cd98f00b204e9800998ecf8427e", "/blob/{token}"),
            (
                "/jwt/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
                "/jwt/{token}",
            ),
            ("/dl/report-a8F3kLm9Qx2Zt7Wp.pdf", "/dl/{token}.pdf"),
            (
                "/web/image/res.partner/7/avatar_128",
                "/web/image/res.partner/7/avatar_128",
            ),
            ("/xmlrpc/2/object", "/xmlrpc/2/object"),
        ];
        for (input, expected) in cases {
            assert_eq!(path(input), expected, "{input}");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_rules() {
        for harmless in [
            "completions",
            "v1",
            "res.partner",
            "avatar_128",
            "Content-Type",
            "x-api-version",
        ] {
            assert!(plainly_harmless(harmless), "{harmless}");
            assert_eq!(segment(harmless), harmless);
        }
        for suspicious in [
            "a@b.co",
            "1234",
            "eyJhbGci.eyJzdWIi.c2ln",
            "abcdefghijklmnop",
            "%2F%2F",
            "é",
        ] {
            assert!(!plainly_harmless(suspicious), "{suspicious}");
        }
    }

    #[test]
    fn placeholders_are_stable() {
        assert_eq!(path("/u/a@b.co"), path("/u/other@mail.org"));
    }
}

#[cfg(test)]
mod name_properties {
    use super::*;
    use proptest::prelude::*;

    /// A header or key name as an honest client writes it.
    fn plain_name() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9]{0,12}(-[A-Za-z][a-z0-9]{0,10}){0,3}"
    }

    /// A secret as a value: letters and digits mixed, 20 to 40 long.
    fn secret() -> impl Strategy<Value = String> {
        "[a-z]{2}[A-Z]{2}[0-9]{2}[A-Za-z0-9]{14,34}"
    }

    proptest! {
        #[test]
        fn a_plain_name_is_kept_whole(name in plain_name()) {
            prop_assert_eq!(cut_to_name(&name), None);
        }

        #[test]
        fn a_value_after_a_colon_equals_or_space_never_survives(
            name in plain_name(),
            sep in prop::sample::select(vec![": ", ":", "=", " ", "\t", ": Bearer "]),
            value in secret(),
        ) {
            let carried = format!("{name}{sep}{value}");
            let cut = cut_to_name(&carried);
            prop_assert_eq!(cut, Some(name.as_str()));
        }

        #[test]
        fn a_high_entropy_part_after_a_separator_is_cut(
            name in plain_name(),
            sep in prop::sample::select(vec!["-", "_", "."]),
            value in secret(),
        ) {
            let carried = format!("{name}{sep}{value}");
            let cut = cut_to_name(&carried).unwrap_or(&carried);
            prop_assert!(!cut.contains(&value), "{} kept {}", carried, cut);
        }

        #[test]
        fn cutting_never_panics_and_only_shortens(name in "\\PC{0,80}") {
            if let Some(cut) = cut_to_name(&name) {
                prop_assert!(name.starts_with(cut));
                prop_assert!(cut.len() < name.len());
            }
        }
    }
}
