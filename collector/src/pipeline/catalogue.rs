//! The Egress Components catalogue: destination → component and class.
//! Rules are exact host names, `*.suffix` patterns and CIDRs, optionally
//! limited to ports. The most specific rule wins: exact host, then the
//! longest suffix, then the narrowest CIDR.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The seeded catalogue shipped with the collector.
pub const SEED: &str = include_str!("../../data/components.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// MIT-bound.
    Vendor,
    ThirdParty,
    Local,
    Unknown,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Vendor => "vendor",
            Class::ThirdParty => "third_party",
            Class::Local => "local",
            Class::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "vendor" => Some(Class::Vendor),
            "third_party" => Some(Class::ThirdParty),
            "local" => Some(Class::Local),
            "unknown" => Some(Class::Unknown),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    pub owner: String,
    pub purpose: String,
    pub class: Class,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub ports: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    component: Vec<Component>,
}

/// Parses a catalogue file (the seed's format).
pub fn parse_file(text: &str) -> Result<Vec<Component>> {
    let file: SeedFile =
        toml::from_str(text).map_err(|e| Error::Config(format!("components catalogue: {e}")))?;
    for component in &file.component {
        for cidr in &component.cidrs {
            Cidr::parse(cidr).ok_or_else(|| {
                Error::Config(format!("component {:?}: bad CIDR {cidr:?}", component.name))
            })?;
        }
    }
    Ok(file.component)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = text.split_once('/')?;
        let network: IpAddr = addr.trim().parse().ok()?;
        let prefix: u8 = prefix.trim().parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, bits) = match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u32::from(n) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            // An IPv4-mapped IPv6 address is the IPv4 address.
            (IpAddr::V4(_), IpAddr::V6(i)) => {
                return i
                    .to_ipv4_mapped()
                    .is_some_and(|v4| self.contains(IpAddr::V4(v4)))
            }
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (net >> shift) == (ip >> shift)
    }
}

/// What a destination is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub component: Option<String>,
    pub class: Class,
}

/// The collector's own database endpoint(s) as a `local` component: never
/// egress of Odoo's, whatever its name or address. Only the database's own
/// port(s): an SMTP relay or an API on the same host is another component.
pub fn database_host_component(endpoints: &[(String, u16)]) -> Option<Component> {
    if endpoints.is_empty() {
        return None;
    }
    let mut hosts = Vec::new();
    let mut cidrs = Vec::new();
    let mut ports = Vec::new();
    for (host, port) in endpoints {
        match host.parse::<IpAddr>() {
            Ok(ip) => cidrs.push(format!("{ip}/{}", if ip.is_ipv6() { 128 } else { 32 })),
            Err(_) => hosts.push(host.clone()),
        }
        if !ports.contains(port) {
            ports.push(*port);
        }
    }
    Some(Component {
        name: "PostgreSQL database host".into(),
        owner: "This deployment".into(),
        purpose: "The database server of this Odoo and of the audit journal.".into(),
        class: Class::Local,
        hosts,
        cidrs,
        ports,
    })
}

/// A catalogue ready for matching.
#[derive(Debug, Default)]
pub struct Catalogue {
    components: Vec<Component>,
    exact: HashMap<String, Vec<usize>>,
    /// (suffix without "*.", component), longest first.
    suffixes: Vec<(String, usize)>,
    /// (cidr, component), narrowest first.
    cidrs: Vec<(Cidr, usize)>,
}

impl Catalogue {
    pub fn new(components: Vec<Component>) -> Self {
        let mut catalogue = Catalogue::default();
        for (index, component) in components.iter().enumerate() {
            for host in &component.hosts {
                let host = host.trim().to_ascii_lowercase();
                match host.strip_prefix("*.") {
                    Some(suffix) => catalogue.suffixes.push((suffix.to_owned(), index)),
                    None => catalogue.exact.entry(host).or_default().push(index),
                }
            }
            for cidr in component.cidrs.iter().filter_map(|c| Cidr::parse(c)) {
                catalogue.cidrs.push((cidr, index));
            }
        }
        catalogue
            .suffixes
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        catalogue
            .cidrs
            .sort_by_key(|(cidr, _)| std::cmp::Reverse(cidr.prefix));
        catalogue.components = components;
        catalogue
    }

    pub fn components(&self) -> &[Component] {
        &self.components
    }

    /// Classifies a destination by host name, then by IP.
    pub fn classify(&self, host: &str, ip: Option<IpAddr>, port: u16) -> Classified {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let port_ok = |index: &usize| {
            let ports = &self.components[*index].ports;
            ports.is_empty() || ports.contains(&port)
        };
        let by_host = self
            .exact
            .get(&host)
            .and_then(|list| list.iter().find(|i| port_ok(i)).copied());
        let by_suffix = || {
            self.suffixes
                .iter()
                .find(|(suffix, index)| is_within(&host, suffix) && port_ok(index))
                .map(|(_, index)| *index)
        };
        // A host given as a literal address is matched as an IP too.
        let ip = ip.or_else(|| host.trim_matches(['[', ']']).parse().ok());
        let by_ip = || {
            let ip = ip?;
            self.cidrs
                .iter()
                .find(|(cidr, index)| cidr.contains(ip) && port_ok(index))
                .map(|(_, i)| *i)
        };
        match by_host.or_else(by_suffix).or_else(by_ip) {
            Some(index) => Classified {
                component: Some(self.components[index].name.clone()),
                class: self.components[index].class,
            },
            None => Classified {
                component: None,
                class: Class::Unknown,
            },
        }
    }
}

/// `host` is `suffix` or a subdomain of it.
fn is_within(host: &str, suffix: &str) -> bool {
    host == suffix
        || host.len() > suffix.len()
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Catalogue {
        Catalogue::new(parse_file(SEED).unwrap())
    }

    #[test]
    fn classifies_the_seeded_destinations() {
        let catalogue = seed();
        // (host, destination IP, port, component, class)
        type Case<'a> = (&'a str, Option<&'a str>, u16, Option<&'a str>, Class);
        let cases: &[Case] = &[
            (
                "license.maildesk.mit-odoo.example",
                None,
                443,
                Some("MailDesk licence validation"),
                Class::Vendor,
            ),
            (
                "api.openai.com",
                None,
                443,
                Some("OpenAI API"),
                Class::ThirdParty,
            ),
            (
                "API.OpenAI.com.",
                None,
                443,
                Some("OpenAI API"),
                Class::ThirdParty,
            ),
            (
                "smtp.gmail.com",
                None,
                587,
                Some("Gmail SMTP/IMAP"),
                Class::ThirdParty,
            ),
            (
                "www.googleapis.com",
                None,
                443,
                Some("Google OAuth and APIs"),
                Class::ThirdParty,
            ),
            (
                "googleapis.com",
                None,
                443,
                Some("Google OAuth and APIs"),
                Class::ThirdParty,
            ),
            (
                "email-smtp.eu-west-1.amazonaws.com",
                None,
                587,
                Some("Amazon SES"),
                Class::ThirdParty,
            ),
            ("s3.amazonaws.com", None, 443, None, Class::Unknown),
            (
                "services.odoo.com",
                None,
                443,
                Some("Odoo publisher warranty"),
                Class::ThirdParty,
            ),
            ("localhost", None, 5432, Some("Loopback"), Class::Local),
            (
                "db.internal",
                Some("10.1.2.3"),
                5432,
                Some("Private network"),
                Class::Local,
            ),
            ("127.0.0.1", None, 8069, Some("Loopback"), Class::Local),
            ("[::1]", None, 8069, Some("Loopback"), Class::Local),
            (
                "x",
                Some("::ffff:192.168.1.5"),
                25,
                Some("Private network"),
                Class::Local,
            ),
            (
                "evil.example.net",
                Some("203.0.113.9"),
                443,
                None,
                Class::Unknown,
            ),
            ("notopenai.com", None, 443, None, Class::Unknown),
        ];
        for (host, ip, port, component, class) in cases {
            let got = catalogue.classify(host, ip.map(|i| i.parse().unwrap()), *port);
            assert_eq!(got.component.as_deref(), *component, "{host}");
            assert_eq!(got.class, *class, "{host}");
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let component = |name: &str, class, hosts: &[&str], cidrs: &[&str]| Component {
            name: name.into(),
            owner: String::new(),
            purpose: String::new(),
            class,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
            ports: vec![],
        };
        let catalogue = Catalogue::new(vec![
            component(
                "wide",
                Class::ThirdParty,
                &["*.example.com"],
                &["10.0.0.0/8"],
            ),
            component(
                "narrow",
                Class::Vendor,
                &["*.mit.example.com"],
                &["10.9.0.0/16"],
            ),
            component("exact", Class::Local, &["relay.mit.example.com"], &[]),
        ]);
        let name = |host: &str, ip: &str| {
            catalogue
                .classify(host, ip.parse().ok(), 1)
                .component
                .unwrap()
        };
        assert_eq!(name("a.mit.example.com", ""), "narrow");
        assert_eq!(name("relay.mit.example.com", ""), "exact");
        assert_eq!(name("b.example.com", ""), "wide");
        assert_eq!(name("h", "10.9.1.1"), "narrow");
        assert_eq!(name("h", "10.8.1.1"), "wide");
    }

    #[test]
    fn the_database_host_is_local_whatever_its_name() {
        let mut components = parse_file(SEED).unwrap();
        components.extend(database_host_component(&[
            ("mydb.abc.eu-west-1.rds.amazonaws.com".into(), 5432),
            ("203.0.113.50".into(), 5432),
        ]));
        let catalogue = Catalogue::new(components);
        assert_eq!(
            catalogue
                .classify("mydb.abc.eu-west-1.rds.amazonaws.com", None, 5432)
                .class,
            Class::Local
        );
        assert_eq!(
            catalogue
                .classify("x", "203.0.113.50".parse().ok(), 5432)
                .class,
            Class::Local
        );
        assert!(database_host_component(&[]).is_none());
    }

    /// Host and port: only the database's own port is the database.
    #[test]
    fn another_port_of_the_database_host_is_another_component() {
        let mut components = parse_file(SEED).unwrap();
        components.extend(database_host_component(&[
            ("127.0.0.1".into(), 5432),
            ("db.internal.example".into(), 6432),
        ]));
        let catalogue = Catalogue::new(components);
        let classify = |host: &str, port| {
            let c = catalogue.classify(host, host.parse().ok(), port);
            (c.component, c.class)
        };
        let db = Some("PostgreSQL database host".to_string());
        assert_eq!(classify("127.0.0.1", 5432), (db.clone(), Class::Local));
        assert_eq!(classify("db.internal.example", 6432), (db, Class::Local));
        // An SMTP server on the database's host is loopback, not the database.
        assert_eq!(
            classify("127.0.0.1", 2525),
            (Some("Loopback".to_string()), Class::Local)
        );
        assert_eq!(classify("db.internal.example", 25).0, None);
    }

    #[test]
    fn refuses_a_bad_cidr_with_the_component_name() {
        let text =
            "[[component]]\nname='x'\nowner=''\npurpose=''\nclass='local'\ncidrs=['10.0.0.0/40']";
        assert!(parse_file(text).unwrap_err().to_string().contains("\"x\""));
    }
}
