//! The certificate chosen by the client's server name.
use super::{client_config, handshake, leaf_in, served_leaf, setup, LeafSpec};
use crate::tls::{build, name_matches};

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
