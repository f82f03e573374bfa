//! Client certificates: the verifier per `--client-cert`, and the mod_ssl view of one.
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SerialNumber};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{client_config, handshake, setup, Ca, LeafSpec};
use crate::tls::{
    build, client_cert_info, handshake_info, rfc2253, serial_hex, ClientCert, TlsError,
};

/// A client certificate (CN=client, O=Example) issued by `ca`.
fn client_identity(ca: &Ca) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Example");
    dn.push(DnType::CommonName, "client");
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&[0x00, 0xab, 0x01, 0xfe]));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

#[test]
fn client_cert_without_ca_certs_is_an_error() {
    let (_dir, _ca, mut opts) = setup(&[LeafSpec::default()]);
    for mode in [ClientCert::Optional, ClientCert::Required] {
        opts.client_cert = mode;
        let err = build(&opts).unwrap_err();
        assert!(matches!(err, TlsError::Option { .. }), "{err:?}");
        assert!(err.to_string().contains("--ca-certs"), "{err}");
    }
}

#[test]
fn required_client_cert_is_verified_and_described() {
    let (dir, ca, mut opts) = setup(&[LeafSpec::default()]);
    opts.ca_certs = Some(dir.path("ca.pem"));
    opts.client_cert = ClientCert::Required;
    let config = build(&opts).unwrap().config;
    // Without a certificate the handshake fails.
    assert!(handshake(config.clone(), client_config(Some(&ca), None), "localhost").is_err());
    // With one from another CA too.
    let other = super::ca("Other CA");
    let stranger = client_config(Some(&ca), Some(client_identity(&other)));
    assert!(handshake(config.clone(), stranger, "localhost").is_err());

    let identity = client_identity(&ca);
    let leaf = identity.0[0].clone();
    let (_, server) = handshake(
        config,
        client_config(Some(&ca), Some(identity)),
        "localhost",
    )
    .unwrap();
    let client = handshake_info(&server).client.unwrap();
    assert_eq!(client.subject, "CN=client,O=Example");
    assert_eq!(client.issuer, "CN=Test CA,O=Example");
    assert_eq!(client.serial, "AB01FE");
    assert!(client.pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(client.pem.ends_with("-----END CERTIFICATE-----\n"));
    assert!(client.pem.lines().all(|l| l.len() <= 64));
    let parsed = crate::tls::parse_certs("x".as_ref(), client.pem.as_bytes()).unwrap();
    assert_eq!(parsed, [leaf]);
}

#[test]
fn optional_client_cert_allows_none() {
    let (dir, ca, mut opts) = setup(&[LeafSpec::default()]);
    opts.ca_certs = Some(dir.path("ca.pem"));
    opts.client_cert = ClientCert::Optional;
    let config = build(&opts).unwrap().config;
    let (_, server) =
        handshake(config.clone(), client_config(Some(&ca), None), "localhost").unwrap();
    assert!(handshake_info(&server).client.is_none());
    let identity = client_config(Some(&ca), Some(client_identity(&ca)));
    let (_, server) = handshake(config, identity, "localhost").unwrap();
    assert_eq!(
        handshake_info(&server).client.unwrap().subject,
        "CN=client,O=Example"
    );
}

#[test]
fn ca_certs_alone_asks_for_nothing() {
    let (dir, ca, mut opts) = setup(&[LeafSpec::default()]);
    // Not even read: a missing file is no error while --client-cert is none.
    opts.ca_certs = Some(dir.path("missing.pem"));
    let config = build(&opts).unwrap().config;
    let identity = client_config(Some(&ca), Some(client_identity(&ca)));
    let (_, server) = handshake(config, identity, "localhost").unwrap();
    assert!(handshake_info(&server).client.is_none());
}

#[test]
fn distinguished_names_are_escaped_as_rfc4514() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "#1 Widgets, Inc.");
    dn.push(DnType::OrganizationalUnitName, "R&D + \"QA\" ");
    dn.push(DnType::CommonName, "Zoë <z@example.com>;");
    params.distinguished_name = dn;
    let cert = params.self_signed(&key).unwrap();
    let info = client_cert_info(cert.der()).unwrap();
    assert_eq!(
        info.subject,
        r#"CN=Zoë \<z@example.com\>\;,OU=R&D \+ \"QA\"\ ,O=\#1 Widgets\, Inc.,C=US"#
    );
    assert_eq!(info.subject, info.issuer);
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
    assert_eq!(rfc2253(parsed.subject()), info.subject);
}

#[test]
fn serial_is_upper_hex_without_leading_zero_bytes() {
    assert_eq!(serial_hex(&[0x00, 0x9f, 0x0a]), "9F0A");
    assert_eq!(serial_hex(&[0x01]), "01");
    assert_eq!(serial_hex(&[0x00]), "0");
    assert_eq!(serial_hex(&[]), "0");
}
