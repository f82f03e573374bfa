//! Trusted proxies: the trust list, and what X-Forwarded-* and RFC 7239 Forwarded change for
//! a trusted and an untrusted peer.
use std::net::IpAddr;

use ferrule_proto::forwarded::{
    resolve_forwarded, BadTrustEntry, ForwardedHeaders, ProxyOverrides, Scheme, TrustList,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn trust(s: &str) -> TrustList {
    s.parse().expect("test trust list")
}

const LOCAL: &str = "127.0.0.1,::1";

fn resolve<'a>(peer: &str, list: &str, h: &ForwardedHeaders<'a>) -> ProxyOverrides<'a> {
    resolve_forwarded(ip(peer), &trust(list), h)
}

fn xff(v: &'static [u8]) -> ForwardedHeaders<'static> {
    ForwardedHeaders {
        x_forwarded_for: Some(v),
        ..ForwardedHeaders::default()
    }
}

fn fwd(v: &'static [u8]) -> ForwardedHeaders<'static> {
    ForwardedHeaders {
        forwarded: Some(v),
        ..ForwardedHeaders::default()
    }
}

#[test]
fn trust_list_holds_addresses_and_networks() {
    let t = trust("127.0.0.1, ::1,10.0.0.0/8,2001:db8::/32, 192.168.1.7/24");
    assert!(t.contains(ip("127.0.0.1")));
    assert!(!t.contains(ip("127.0.0.2")));
    assert!(t.contains(ip("::1")));
    assert!(t.contains(ip("10.255.0.1")));
    assert!(!t.contains(ip("11.0.0.1")));
    assert!(t.contains(ip("2001:db8:ffff::1")));
    assert!(!t.contains(ip("2001:db9::1")));
    assert!(t.contains(ip("192.168.1.200")));
    assert!(!t.trusts_all());
}

#[test]
fn ipv4_mapped_ipv6_counts_as_ipv4() {
    let t = trust("127.0.0.1,10.0.0.0/8");
    assert!(t.contains(ip("::ffff:127.0.0.1")));
    assert!(t.contains(ip("::ffff:10.1.1.1")));
    let t = trust("::ffff:192.0.2.0/120");
    assert!(t.contains(ip("192.0.2.9")));
    assert!(!t.contains(ip("192.0.3.9")));
}

#[test]
fn star_trusts_everyone_and_empty_trusts_no_one() {
    let t = trust("*");
    assert!(t.trusts_all() && t.contains(ip("203.0.113.1")) && t.contains(ip("::2")));
    let t = trust("");
    assert!(t.is_empty() && !t.contains(ip("127.0.0.1")));
    let t = trust("0.0.0.0/0");
    assert!(t.contains(ip("8.8.8.8")) && !t.contains(ip("::8")));
}

#[test]
fn bad_trust_entries_are_named() {
    for bad in [
        "localhost",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "1.2.3.4.5",
        "**",
    ] {
        let list = format!("127.0.0.1,{bad}");
        assert_eq!(
            list.parse::<TrustList>(),
            Err(BadTrustEntry(bad.to_owned())),
            "{bad}"
        );
    }
    let e = "127.0.0.1,nope".parse::<TrustList>().unwrap_err();
    assert!(e.to_string().contains("\"nope\""));
}

#[test]
fn untrusted_peer_changes_nothing() {
    let h = ForwardedHeaders {
        forwarded: Some(b"for=1.2.3.4;proto=https"),
        x_forwarded_for: Some(b"1.2.3.4"),
        x_forwarded_proto: Some(b"https"),
        x_forwarded_host: Some(b"evil.example"),
        x_forwarded_port: Some(b"443"),
        x_forwarded_prefix: Some(b"/app"),
    };
    assert!(resolve("127.0.0.2", LOCAL, &h).is_empty());
    assert!(!resolve("127.0.0.1", LOCAL, &h).is_empty());
}

#[test]
fn x_forwarded_for_rightmost_untrusted_wins() {
    let h = xff(b"198.51.100.1, 203.0.113.7, 10.0.0.2, 10.0.0.1");
    let o = resolve("127.0.0.1", "127.0.0.1,10.0.0.0/8", &h);
    assert_eq!(o.remote_addr, Some(ip("203.0.113.7")));
    // Only the peer trusted: the rightmost entry.
    let o = resolve("127.0.0.1", LOCAL, &h);
    assert_eq!(o.remote_addr, Some(ip("10.0.0.1")));
}

#[test]
fn x_forwarded_for_all_trusted_gives_the_leftmost() {
    let o = resolve(
        "127.0.0.1",
        "127.0.0.1,10.0.0.0/8",
        &xff(b"10.0.0.9,10.0.0.2"),
    );
    assert_eq!(o.remote_addr, Some(ip("10.0.0.9")));
    let o = resolve("127.0.0.1", "*", &xff(b"1.1.1.1, 2.2.2.2"));
    assert_eq!(o.remote_addr, Some(ip("1.1.1.1")));
}

#[test]
fn x_forwarded_for_forms_and_junk() {
    let o = resolve("127.0.0.1", LOCAL, &xff(b"[2001:db8::1]:4711"));
    assert_eq!(
        (o.remote_addr, o.remote_port),
        (Some(ip("2001:db8::1")), Some(4711))
    );
    let o = resolve("127.0.0.1", LOCAL, &xff(b"192.0.2.1:80"));
    assert_eq!(
        (o.remote_addr, o.remote_port),
        (Some(ip("192.0.2.1")), Some(80))
    );
    let o = resolve("127.0.0.1", LOCAL, &xff(b"::ffff:192.0.2.1"));
    assert_eq!(o.remote_addr, Some(ip("192.0.2.1")));
    // Junk entries are skipped; only junk changes nothing.
    let o = resolve("127.0.0.1", LOCAL, &xff(b"192.0.2.1, unknown, garbage"));
    assert_eq!(o.remote_addr, Some(ip("192.0.2.1")));
    assert!(resolve("127.0.0.1", LOCAL, &xff(b"unknown, ,")).is_empty());
}

#[test]
fn x_forwarded_proto_host_port_prefix() {
    let h = ForwardedHeaders {
        x_forwarded_proto: Some(b"HTTPS"),
        x_forwarded_host: Some(b"example.com:8443"),
        x_forwarded_prefix: Some(b"/app/"),
        ..ForwardedHeaders::default()
    };
    let o = resolve("::1", LOCAL, &h);
    assert_eq!(o.scheme, Some(Scheme::Https));
    assert_eq!(o.host, Some(&b"example.com:8443"[..]));
    assert_eq!(o.server_name, Some(&b"example.com"[..]));
    assert_eq!(o.port, Some(8443));
    assert_eq!(o.prefix, Some(&b"/app"[..]));
    assert_eq!(o.remote_addr, None);
    // X-Forwarded-Port wins over the host's port; a list gives its rightmost item.
    let h = ForwardedHeaders {
        x_forwarded_proto: Some(b"https, http"),
        x_forwarded_host: Some(b"[::1]"),
        x_forwarded_port: Some(b"8080"),
        ..ForwardedHeaders::default()
    };
    let o = resolve("127.0.0.1", LOCAL, &h);
    assert_eq!(
        (o.scheme, o.server_name, o.port),
        (Some(Scheme::Http), Some(&b"[::1]"[..]), Some(8080))
    );
    assert_eq!(
        (Scheme::Https.as_str(), Scheme::Https.default_port()),
        ("https", 443)
    );
}

#[test]
fn unbelievable_values_are_ignored() {
    let h = ForwardedHeaders {
        x_forwarded_proto: Some(b"ftp"),
        x_forwarded_host: Some(b"bad host/"),
        x_forwarded_port: Some(b"99999"),
        x_forwarded_prefix: Some(b"app"),
        ..ForwardedHeaders::default()
    };
    assert!(resolve("127.0.0.1", LOCAL, &h).is_empty());
    let h = ForwardedHeaders {
        x_forwarded_prefix: Some(b"/"),
        ..ForwardedHeaders::default()
    };
    assert!(resolve("127.0.0.1", LOCAL, &h).is_empty());
}

#[test]
fn forwarded_is_read() {
    let o = resolve(
        "127.0.0.1",
        LOCAL,
        &fwd(b"for=\"[2001:db8:cafe::17]:4711\";proto=https;host=example.com"),
    );
    assert_eq!(
        (o.remote_addr, o.remote_port),
        (Some(ip("2001:db8:cafe::17")), Some(4711))
    );
    assert_eq!(
        (o.scheme, o.host, o.port),
        (Some(Scheme::Https), Some(&b"example.com"[..]), None)
    );
}

#[test]
fn forwarded_takes_precedence_over_x_forwarded() {
    let h = ForwardedHeaders {
        forwarded: Some(b"For=192.0.2.60;Proto=http"),
        x_forwarded_for: Some(b"198.51.100.9"),
        x_forwarded_proto: Some(b"https"),
        x_forwarded_host: Some(b"other.example"),
        x_forwarded_port: Some(b"8443"),
        x_forwarded_prefix: Some(b"/p"),
    };
    let o = resolve("127.0.0.1", LOCAL, &h);
    assert_eq!(o.remote_addr, Some(ip("192.0.2.60")));
    assert_eq!((o.scheme, o.host, o.port), (Some(Scheme::Http), None, None));
    // X-Forwarded-Prefix has no Forwarded counterpart and still applies.
    assert_eq!(o.prefix, Some(&b"/p"[..]));
}

#[test]
fn forwarded_elements_walk_like_x_forwarded_for() {
    let h = fwd(
        b"for=198.51.100.1;proto=http, for=203.0.113.7;proto=https;host=a.example, for=10.0.0.2",
    );
    let o = resolve("127.0.0.1", "127.0.0.1,10.0.0.0/8", &h);
    assert_eq!(o.remote_addr, Some(ip("203.0.113.7")));
    // Scheme and host come from the chosen element.
    assert_eq!(
        (o.scheme, o.host),
        (Some(Scheme::Https), Some(&b"a.example"[..]))
    );
}

#[test]
fn forwarded_unknown_and_obfuscated_are_skipped() {
    let o = resolve(
        "127.0.0.1",
        LOCAL,
        &fwd(b"for=192.0.2.43, for=unknown, for=_hidden"),
    );
    assert_eq!(o.remote_addr, Some(ip("192.0.2.43")));
    let o = resolve("127.0.0.1", LOCAL, &fwd(b"for=\"[2001:db8::1]:_port\""));
    assert_eq!(
        (o.remote_addr, o.remote_port),
        (Some(ip("2001:db8::1")), None)
    );
    // No address at all: scheme from the nearest element.
    let o = resolve("127.0.0.1", LOCAL, &fwd(b"for=unknown;proto=https"));
    assert_eq!((o.remote_addr, o.scheme), (None, Some(Scheme::Https)));
}

#[test]
fn malformed_forwarded_falls_back_to_x_forwarded() {
    let h = ForwardedHeaders {
        forwarded: Some(b"for=\"unterminated"),
        x_forwarded_for: Some(b"192.0.2.5"),
        ..ForwardedHeaders::default()
    };
    assert_eq!(
        resolve("127.0.0.1", LOCAL, &h).remote_addr,
        Some(ip("192.0.2.5"))
    );
}
