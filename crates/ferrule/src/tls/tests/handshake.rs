//! What a handshake picks: the certificate by the client's server name (SNI), the suite by
//! `--ciphers` (and its OpenSSL name in `SSL_CIPHER`).
use super::{client_config, handshake, leaf_in, served_leaf, setup, LeafSpec};
use crate::tls::{build, handshake_info, name_matches, MinVersion, TlsError};

#[test]
fn wildcard_covers_exactly_one_label() {
    assert!(name_matches("*.example.com", "a.example.com"));
    assert!(!name_matches("*.example.com", "example.com"));
    assert!(!name_matches("*.example.com", "a.b.example.com"));
    assert!(!name_matches("*.example.com", ".example.com"));
    assert!(name_matches("www.example.com", "www.example.com"));
    assert!(!name_matches("www.example.com", "ww.example.com"));
}

#[test]
fn sni_chooses_by_subject_alt_name_and_falls_back_to_the_first() {
    let (_dir, _ca, opts) = setup(&[
        LeafSpec {
            sans: &["a.example.com"],
            cn: "a",
            ..LeafSpec::default()
        },
        LeafSpec {
            sans: &["b.example.com", "b2.example.com"],
            cn: "b",
            ..LeafSpec::default()
        },
    ]);
    let config = build(&opts).unwrap().config;
    let a = leaf_in(&opts.certs[0].certfile);
    let b = leaf_in(&opts.certs[1].certfile);
    for (name, want) in [
        ("a.example.com", &a),
        ("b.example.com", &b),
        ("B2.Example.COM", &b),
        ("c.example.org", &a),
    ] {
        let (client, _) = handshake(config.clone(), client_config(None, None), name).unwrap();
        assert_eq!(&served_leaf(&client), want, "{name}");
    }
    // No SNI at all (an IP address, or a client that sends none): the first certificate.
    let mut no_sni = client_config(None, None);
    no_sni.enable_sni = false;
    let (client, _) = handshake(config.clone(), no_sni, "b.example.com").unwrap();
    assert_eq!(served_leaf(&client), a);
    let (client, _) = handshake(config, client_config(None, None), "127.0.0.1").unwrap();
    assert_eq!(served_leaf(&client), a);
}

#[test]
fn sni_wildcard_and_exact_names_and_cn_fallback() {
    let (_dir, ca, opts) = setup(&[
        LeafSpec {
            sans: &["default.example.com"],
            ..LeafSpec::default()
        },
        LeafSpec {
            sans: &["*.example.net"],
            ..LeafSpec::default()
        },
        LeafSpec {
            sans: &["exact.example.net"],
            ..LeafSpec::default()
        },
        // No SubjectAltName: the CN is the name.
        LeafSpec {
            sans: &[],
            cn: "legacy.example.org",
            ..LeafSpec::default()
        },
    ]);
    let built = build(&opts).unwrap();
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);
    let leaves: Vec<_> = opts.certs.iter().map(|p| leaf_in(&p.certfile)).collect();
    for (name, want) in [
        ("x.example.net", 1),
        ("exact.example.net", 2),
        ("a.b.example.net", 0),
        ("example.net", 0),
        ("legacy.example.org", 3),
    ] {
        let (client, _) = handshake(built.config.clone(), client_config(None, None), name).unwrap();
        assert_eq!(served_leaf(&client), leaves[want], "{name}");
    }
    // A real client verifying the chain accepts the wildcard certificate.
    handshake(
        built.config,
        client_config(Some(&ca), None),
        "www.example.net",
    )
    .unwrap();
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn openssl_and_iana_names_select_suites_in_the_given_order() {
    let (_dir, ca, mut opts) = setup(&[LeafSpec::default()]);
    opts.ciphers = names(&[
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "tls_aes_128_gcm_sha256",
        "TLS13_AES_256_GCM_SHA384",
    ]);
    let config = build(&opts).unwrap().config;
    assert!(config.ignore_client_order);
    let suites: Vec<_> = config
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(rustls::SupportedCipherSuite::suite)
        .collect();
    assert_eq!(
        suites,
        [
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        ]
    );
    // The server's order wins over the client's (which prefers AES-256).
    let (_, server) = handshake(config, client_config(Some(&ca), None), "localhost").unwrap();
    let info = handshake_info(&server);
    assert_eq!(
        (info.protocol, info.cipher),
        ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
    );
}

#[test]
fn tls12_suite_reports_its_openssl_name() {
    let (_dir, ca, mut opts) = setup(&[LeafSpec::default()]);
    opts.ciphers = names(&["ECDHE-ECDSA-AES256-GCM-SHA384"]);
    let built = build(&opts).unwrap();
    assert!(built.warnings.is_empty(), "{:?}", built.warnings);
    let (_, server) = handshake(built.config, client_config(Some(&ca), None), "localhost").unwrap();
    let info = handshake_info(&server);
    assert_eq!(
        (info.protocol, info.cipher),
        ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    );
    assert!(info.client.is_none());
}

#[test]
fn default_suites_report_openssl_names() {
    let (_dir, ca, opts) = setup(&[LeafSpec::default()]);
    let config = build(&opts).unwrap().config;
    assert!(!config.ignore_client_order);
    let (_, server) = handshake(config, client_config(Some(&ca), None), "localhost").unwrap();
    let info = handshake_info(&server);
    assert_eq!(
        (info.protocol, info.cipher),
        ("TLSv1.3", "TLS_AES_256_GCM_SHA384")
    );
}

#[test]
fn unknown_cipher_is_named_with_the_supported_list() {
    let (_dir, _ca, mut opts) = setup(&[LeafSpec::default()]);
    opts.ciphers = names(&["ECDHE-RSA-AES128-GCM-SHA256", "AES128-SHA"]);
    let err = build(&opts).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Option {
                option: "--ciphers",
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("`AES128-SHA`"), "{text}");
    assert!(text.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{text}");
    assert!(
        text.contains("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        "{text}"
    );
    assert!(text.contains("TLS_AES_128_GCM_SHA256"), "{text}");
}

#[test]
fn only_tls12_suites_with_tls13_minimum_is_refused() {
    let (_dir, _ca, mut opts) = setup(&[LeafSpec::default()]);
    opts.ciphers = names(&[
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ]);
    opts.min_version = MinVersion::Tls13;
    let text = build(&opts).unwrap_err().to_string();
    assert!(text.contains("--ciphers") && text.contains("1.3"), "{text}");
    assert!(text.contains("TLS_AES_128_GCM_SHA256"), "{text}");
}

#[test]
fn only_tls13_suites_warn_that_tls12_clients_are_out() {
    let (_dir, _ca, mut opts) = setup(&[LeafSpec::default()]);
    opts.ciphers = names(&["TLS_AES_128_GCM_SHA256"]);
    let built = build(&opts).unwrap();
    assert!(
        built.warnings.iter().any(|w| w.contains("TLS 1.2")),
        "{:?}",
        built.warnings
    );
    opts.min_version = MinVersion::Tls13;
    assert!(build(&opts).unwrap().warnings.is_empty());
}
