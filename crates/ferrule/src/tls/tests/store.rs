//! The certificate store: reloads that pick up renewed files and keep working ones.
use std::sync::Arc;

use rcgen::KeyPair;

use super::{client_config, handshake, leaf, served_leaf, setup, Ca, LeafSpec, TempDir};
use crate::tls::{client_cert_info, CertStore, TlsError};

fn served_serial(store: &CertStore) -> String {
    let (client, _) = handshake(store.current(), client_config(None, None), "localhost").unwrap();
    client_cert_info(&served_leaf(&client)).unwrap().serial
}

/// Renews `cert0.pem` for the same key (`key0.pem`) with a new serial.
fn renew(dir: &TempDir, ca: &Ca, serial: u64) {
    let key = KeyPair::from_pem(&std::fs::read_to_string(dir.path("key0.pem")).unwrap()).unwrap();
    let spec = LeafSpec {
        serial,
        ..LeafSpec::default()
    };
    dir.write("cert0.pem", leaf(ca, &key, &spec));
}

#[test]
fn reload_picks_up_a_renewed_certificate() {
    let (dir, ca, opts) = setup(&[LeafSpec::default()]);
    let store = CertStore::new(opts).unwrap();
    assert!(store.warnings().is_empty());
    assert_eq!(served_serial(&store), "01");
    assert!(!store.changed_since_load());
    assert!(!store.reload().unwrap(), "nothing changed");

    renew(&dir, &ca, 2);
    assert!(store.changed_since_load());
    assert!(store.reload().unwrap());
    assert_eq!(served_serial(&store), "02");
    assert!(!store.changed_since_load());
}

#[test]
fn broken_files_keep_the_old_configuration() {
    let (dir, ca, opts) = setup(&[LeafSpec::default()]);
    let store = CertStore::new(opts).unwrap();
    let old = store.current();

    dir.write("cert0.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    assert!(store.changed_since_load());
    assert!(store.reload().is_err());
    assert!(Arc::ptr_eq(&store.current(), &old));
    assert_eq!(served_serial(&store), "01");
    // Reported once: the next poll sees no change until the file is written again.
    assert!(!store.changed_since_load());

    // A certificate for another key (the key not renewed yet): refused, the old one stays.
    let other = KeyPair::generate().unwrap();
    dir.write("cert0.pem", leaf(&ca, &other, &LeafSpec::default()));
    assert!(store.changed_since_load());
    assert!(matches!(store.reload(), Err(TlsError::KeyMismatch { .. })));
    assert!(Arc::ptr_eq(&store.current(), &old));

    // Then the key arrives: the pair loads.
    dir.write("key0.pem", other.serialize_pem());
    assert!(store.changed_since_load());
    assert!(store.reload().unwrap());
    assert!(!Arc::ptr_eq(&store.current(), &old));

    renew(&dir, &ca, 3);
    assert!(store.reload().unwrap());
    assert_eq!(served_serial(&store), "03");
}

#[test]
fn missing_file_is_an_error_and_keeps_the_old_configuration() {
    let (dir, _ca, opts) = setup(&[LeafSpec::default()]);
    let store = CertStore::new(opts).unwrap();
    let old = store.current();
    std::fs::remove_file(dir.path("key0.pem")).unwrap();
    assert!(store.changed_since_load());
    let err = store.reload().unwrap_err().to_string();
    assert!(err.contains("key0.pem"), "{err}");
    assert!(Arc::ptr_eq(&store.current(), &old));
}

#[test]
fn expired_certificate_loads_with_a_warning() {
    let (_dir, _ca, opts) = setup(&[LeafSpec {
        days: -1,
        ..LeafSpec::default()
    }]);
    let store = CertStore::new(opts).unwrap();
    let warnings = store.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("cert0.pem") && warnings[0].contains("expired"),
        "{warnings:?}"
    );
    assert_eq!(served_serial(&store), "01");
}

#[test]
fn replace_takes_new_options_or_keeps_the_old_ones() {
    let (_dir, _ca, opts) = setup(&[LeafSpec::default()]);
    let store = CertStore::new(opts.clone()).unwrap();
    let old = store.current();
    let mut bad = opts.clone();
    bad.ciphers = vec!["NOPE".to_owned()];
    assert!(store.replace(bad).is_err());
    assert!(Arc::ptr_eq(&store.current(), &old));
    assert_eq!(store.options(), opts);

    let mut good = opts;
    good.ciphers = vec!["TLS_AES_128_GCM_SHA256".to_owned()];
    store.replace(good.clone()).unwrap();
    assert!(store.current().ignore_client_order);
    assert_eq!(store.options(), good);
    assert!(!store.reload().unwrap());
}
