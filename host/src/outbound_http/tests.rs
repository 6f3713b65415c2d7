//! The allow-list rules (`allowed_outbound_hosts` entries, self requests) and the
//! denial hint.

use super::*;

fn hosts(entries: &[&str]) -> AllowedHosts {
    let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
    AllowedHosts::parse(&entries, |v| (v == "port").then(|| "8080".to_string())).unwrap()
}

#[test]
fn exact_entries_use_the_schemes_default_port() {
    let h = hosts(&["https://api.example.com", "http://127.0.0.1:{{ port }}"]);
    assert!(h.allows("https", "api.example.com", 443));
    assert!(h.allows("https", "API.Example.com", 443));
    assert!(!h.allows("https", "api.example.com", 8443));
    assert!(!h.allows("http", "api.example.com", 443));
    assert!(h.allows("http", "127.0.0.1", 8080));
    assert!(!h.allows("http", "127.0.0.1", 80));
    assert!(!h.allows("https", "evil.com", 443));
    // A trailing slash is no path.
    assert!(hosts(&["https://example.com/"]).allows("https", "example.com", 443));
    assert!(hosts(&["https://example.com:8443/"]).allows("https", "example.com", 8443));
}

#[test]
fn wildcards() {
    let h = hosts(&["https://*.example.com"]);
    assert!(h.allows("https", "a.example.com", 443));
    assert!(h.allows("https", "a.b.example.com", 443));
    assert!(!h.allows("https", "example.com", 443));
    assert!(!h.allows("https", "badexample.com", 443));
    let all = hosts(&["*://*:*"]);
    assert!(all.allows("http", "anything", 1));
    assert!(all.allows("https", "x.y", 443));
    assert!(hosts(&["http://*:3000"]).allows("http", "h", 3000));
    assert!(!hosts(&["http://*:3000"]).allows("http", "h", 3001));
    // `*` scheme with a port: both schemes.
    let any_scheme = hosts(&["*://example.com:8080"]);
    assert!(any_scheme.allows("http", "example.com", 8080));
    assert!(any_scheme.allows("https", "example.com", 8080));
    assert!(!any_scheme.allows("https", "example.com", 443));
    assert!(hosts(&["https://*:*"]).allows("https", "x", 9));
    assert!(!hosts(&["https://*:*"]).allows("http", "x", 9));
}

#[test]
fn port_ranges_end_before_their_end() {
    let h = hosts(&["http://localhost:3000..3010"]);
    assert!(h.allows("http", "localhost", 3000));
    assert!(h.allows("http", "localhost", 3009));
    assert!(!h.allows("http", "localhost", 3010));
    assert!(!h.allows("http", "localhost", 2999));
    assert!(!h.allows("https", "localhost", 3005));
}

#[test]
fn addresses_and_ranges_of_them() {
    let h = hosts(&[
        "http://10.0.0.0/8",
        "http://[::1]:8080",
        "https://192.168.1.2",
    ]);
    assert!(h.allows("http", "10.1.2.3", 80));
    assert!(!h.allows("http", "11.0.0.1", 80));
    assert!(!h.allows("http", "10.1.2.3", 8080));
    assert!(h.allows("http", "[::1]", 8080));
    assert!(h.allows("http", "0:0::1", 8080));
    assert!(!h.allows("http", "::2", 8080));
    assert!(h.allows("https", "192.168.1.2", 443));
    let v6 = hosts(&["http://fd00::/8:*", "http://[::1]"]);
    assert!(v6.allows("http", "fd12::1", 1234));
    assert!(!v6.allows("http", "fe80::1", 1234));
    assert!(v6.allows("http", "::1", 80));
    // A range never matches a name.
    assert!(!hosts(&["http://0.0.0.0/0"]).allows("http", "example.com", 80));
}

#[test]
fn other_schemes_are_accepted_and_match_nothing_http() {
    let h = hosts(&[
        "mqtt://127.0.0.1:1883",
        "postgres://localhost",
        "redis://127.0.0.1",
    ]);
    assert!(!h.is_empty());
    assert!(!h.allows("http", "127.0.0.1", 1883));
    assert!(!h.allows("http", "localhost", 5432));
    assert!(!h.allows_self());
}

#[test]
fn self_is_not_a_network_host() {
    let h = hosts(&["http://self"]);
    assert!(h.allows_self() && !h.is_empty());
    assert!(!h.allows("http", "self", 80));
    assert!(!h.allows("http", "self.alt", 80));
    assert!(hosts(&["https://self.alt"]).allows_self());
    // A `*` host allows the app too (Spin's rule); a named host does not.
    assert!(hosts(&["*://*:*"]).allows_self());
    assert!(hosts(&["http://*:8080"]).allows_self());
    assert!(!hosts(&["http://localhost"]).allows_self());
    assert!(!hosts(&["redis://self"]).allows_self());
    assert!(hosts(&[]).is_empty() && !hosts(&[]).allows_self());
}

#[test]
fn self_requests_are_recognised_by_their_uri() {
    for (uri, own) in [
        ("http://:80/hello", true),
        ("https://:443/x?y", true),
        ("http://self.alt/hello", true),
        ("http://SELF.ALT:3000/", true),
        ("/hello", true),
        ("http://self/hello", false),
        ("http://localhost/hello", false),
    ] {
        let uri: http::Uri = uri.parse().unwrap();
        assert_eq!(is_self_request(&uri), own, "{uri}");
    }
}

#[test]
fn bad_entries_are_named() {
    for (entry, needle) in [
        ("example.com", "needs a scheme"),
        ("https://example.com/path", "path"),
        ("ht-tp://example.com", "letters only"),
        ("*://example.com", "needs a port"),
        ("ftp://example.com", "no default port"),
        ("https://ex*.com", "`*`"),
        ("https://*.", "`*`"),
        ("https://x:99999", "bad port"),
        ("http://localhost:3000-3010", "start..end"),
        ("http://localhost:3010..3000", "empty"),
        ("http://localhost:a..b", "bad port range"),
        ("http://10.0.0.0/33", "bad address range"),
        ("http://[::1", "without `]`"),
        ("insecure:allow-all", "*://*:*"),
        ("https://{{ missing }}", "missing"),
    ] {
        let e = AllowedHosts::parse(&[entry.to_string()], |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(entry) && e.contains(needle), "{entry}: {e}");
    }
}

#[test]
fn the_denial_hint_names_the_entry_to_add() {
    let uri = "https://example.com/x".parse().unwrap();
    let hint = denial_hint("api", "https://example.com", &uri);
    assert!(hint.contains("('https://example.com/x')"), "{hint}");
    assert!(
        hint.contains(
            "add `allowed_outbound_hosts = [\"https://example.com\"]` to [component.api]"
        ),
        "{hint}"
    );
    let uri = "http://:80/hello?x".parse().unwrap();
    let hint = denial_hint("api", "http://self", &uri);
    assert!(hint.contains("its own app ('/hello?x')"), "{hint}");
    assert!(hint.contains("[\"http://self\"]"), "{hint}");
    assert!(!hint.contains('\n'));
}
