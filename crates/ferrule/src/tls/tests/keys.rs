//! Private keys in each PEM form, encrypted ones, and a key that is not its certificate's.
use std::sync::OnceLock;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use rcgen::KeyPair;
use rustls_pki_types::PrivateKeyDer;

use super::{ca, leaf, pem, setup, LeafSpec, TempDir};
use crate::tls::keys::{bytes_to_key, hex_decode};
use crate::tls::{build, parse_key, CertPair, TlsError, TlsOptions};

/// One RSA key for the tests that need one (made once: RSA generation is slow unoptimised).
fn rsa_pkcs8_pem() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
        key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    })
}

/// The DER inside a PEM text's first block.
fn der_of(pem_text: &str) -> Vec<u8> {
    let blocks = crate::tls::keys::pem_blocks(std::path::Path::new("x"), pem_text.as_bytes());
    blocks.unwrap().remove(0).der
}

/// The PKCS#1 or SEC1 key inside a PKCS#8 one.
fn inner_key(pkcs8_der: &[u8]) -> Vec<u8> {
    pkcs8::PrivateKeyInfo::try_from(pkcs8_der)
        .unwrap()
        .private_key
        .to_vec()
}

/// A SEC1 key as OpenSSL writes it: with the curve (P-256) in `[0] parameters`, which ring's
/// PKCS#8 leaves out.
fn sec1_with_curve(sec1: &[u8]) -> Vec<u8> {
    assert_eq!(sec1[0], 0x30);
    let len = usize::from(sec1[1]);
    assert!(len < 0x80 && sec1.len() == len + 2);
    // version (3 bytes) and the 32-byte private key (2 + 32) come first.
    let split = 2 + 3 + 34;
    let curve = [
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut out = vec![0x30, u8::try_from(len + curve.len()).unwrap()];
    out.extend_from_slice(&sec1[2..split]);
    out.extend_from_slice(&curve);
    out.extend_from_slice(&sec1[split..]);
    out
}

/// A directory with a CA-signed certificate for `key` and the key written as `key_pem`.
fn pair_with(key: &KeyPair, key_pem: &str) -> (TempDir, TlsOptions) {
    let dir = TempDir::new();
    let ca = ca("Test CA");
    let certfile = dir.write("cert.pem", leaf(&ca, key, &LeafSpec::default()));
    let keyfile = dir.write("key.pem", key_pem);
    let opts = TlsOptions {
        certs: vec![CertPair { certfile, keyfile }],
        ..TlsOptions::default()
    };
    (dir, opts)
}

/// A legacy `Proc-Type: 4,ENCRYPTED` block as `openssl rsa -aes256` writes it.
fn legacy_encrypted(label: &str, der: &[u8], password: &str, cipher: &str) -> String {
    let iv: Vec<u8> = (1..=16).collect();
    let mut buf = der.to_vec();
    let len = buf.len();
    buf.resize(len + 16, 0);
    let out = match cipher {
        "AES-256-CBC" => {
            let key = bytes_to_key(password.as_bytes(), &iv[..8], 32);
            cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
                .unwrap()
                .encrypt_padded_mut::<Pkcs7>(&mut buf, len)
                .unwrap()
                .to_vec()
        }
        "DES-EDE3-CBC" => {
            let key = bytes_to_key(password.as_bytes(), &iv[..8], 24);
            cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv[..8])
                .unwrap()
                .encrypt_padded_mut::<Pkcs7>(&mut buf, len)
                .unwrap()
                .to_vec()
        }
        _ => unreachable!(),
    };
    let iv_len = if cipher.starts_with("AES") { 16 } else { 8 };
    let iv_hex = crate::tls::serial_hex(&iv[..iv_len]);
    pem(
        label,
        &[
            ("Proc-Type", "4,ENCRYPTED"),
            ("DEK-Info", &format!("{cipher},{iv_hex}")),
        ],
        &out,
    )
}

fn message(err: &TlsError) -> String {
    err.to_string()
}

#[test]
fn pkcs8_ec_key_loads_and_builds() {
    let key = KeyPair::generate().unwrap();
    let (_dir, opts) = pair_with(&key, &key.serialize_pem());
    let parsed = parse_key(&opts.certs[0].keyfile, key.serialize_pem().as_bytes(), None).unwrap();
    assert!(matches!(parsed, PrivateKeyDer::Pkcs8(_)));
    build(&opts).unwrap();
}

#[test]
fn sec1_ec_key_loads_and_builds() {
    let key = KeyPair::generate().unwrap();
    let sec1 = sec1_with_curve(&inner_key(&key.serialize_der()));
    // OpenSSL's `ecparam -genkey` puts an EC PARAMETERS block first: it is skipped.
    let text = format!(
        "{}{}",
        pem(
            "EC PARAMETERS",
            &[],
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
        ),
        pem("EC PRIVATE KEY", &[], &sec1)
    );
    let (_dir, opts) = pair_with(&key, &text);
    let parsed = parse_key(&opts.certs[0].keyfile, text.as_bytes(), None).unwrap();
    assert!(matches!(parsed, PrivateKeyDer::Sec1(_)));
    build(&opts).unwrap();
}

#[test]
fn pkcs1_rsa_key_loads_and_builds_and_legacy_encrypted_forms_decrypt() {
    let pkcs8_pem = rsa_pkcs8_pem();
    let key = KeyPair::from_pkcs8_pem_and_sign_algo(pkcs8_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let pkcs1 = inner_key(&der_of(pkcs8_pem));
    let text = pem("RSA PRIVATE KEY", &[], &pkcs1);
    let (dir, mut opts) = pair_with(&key, &text);
    let parsed = parse_key(&opts.certs[0].keyfile, text.as_bytes(), None).unwrap();
    assert!(matches!(parsed, PrivateKeyDer::Pkcs1(_)));
    build(&opts).unwrap();

    // `openssl rsa -aes256` and `-des3`: the legacy encrypted PEM form.
    for cipher in ["AES-256-CBC", "DES-EDE3-CBC"] {
        let text = legacy_encrypted("RSA PRIVATE KEY", &pkcs1, "s3cret", cipher);
        dir.write("key.pem", &text);
        opts.key_password = Some("s3cret".to_owned());
        build(&opts).unwrap();
        match parse_key(&opts.certs[0].keyfile, text.as_bytes(), Some("s3cret")).unwrap() {
            PrivateKeyDer::Pkcs1(k) => assert_eq!(k.secret_pkcs1_der(), pkcs1.as_slice()),
            other => panic!("{other:?}"),
        }
        opts.key_password = Some("wrong".to_owned());
        let err = message(&build(&opts).unwrap_err());
        assert!(
            err.contains("wrong password") && err.contains("key.pem"),
            "{err}"
        );
        opts.key_password = None;
        let err = message(&build(&opts).unwrap_err());
        assert!(
            err.contains("--keyfile-password") && err.contains("key.pem"),
            "{err}"
        );
    }
}

#[test]
fn legacy_encrypted_sec1_key_decrypts() {
    let key = KeyPair::generate().unwrap();
    let sec1 = sec1_with_curve(&inner_key(&key.serialize_der()));
    let text = legacy_encrypted("EC PRIVATE KEY", &sec1, "pw", "AES-256-CBC");
    let (_dir, mut opts) = pair_with(&key, &text);
    opts.key_password = Some("pw".to_owned());
    build(&opts).unwrap();
}

#[test]
fn legacy_cipher_we_cannot_decrypt_says_to_convert() {
    let text = pem(
        "RSA PRIVATE KEY",
        &[
            ("Proc-Type", "4,ENCRYPTED"),
            (
                "DEK-Info",
                "CAMELLIA-256-CBC,0102030405060708090A0B0C0D0E0F10",
            ),
        ],
        &[0; 32],
    );
    let err = parse_key("k.pem".as_ref(), text.as_bytes(), Some("pw")).unwrap_err();
    assert!(message(&err).contains("openssl pkcs8 -topk8"), "{err}");
}

#[test]
fn evp_bytes_to_key_matches_openssl() {
    // `openssl enc -aes-256-cbc -k password -S 0102030405060708 -P -md md5`
    let out = bytes_to_key(b"password", &hex_decode("0102030405060708").unwrap(), 48);
    let expect = hex_decode(concat!(
        "E7B0971E52CA5CC8D0539FB3412F6316F7BA2E6EE293D9F3457B99436B51CE02",
        "8D450E2ED75A84A923D4EAC9FE49226B"
    ))
    .unwrap();
    assert_eq!(out, expect);
    // `openssl enc -des-ede3-cbc -k secret -S a1b2c3d4e5f60708 -P -md md5`
    let out = bytes_to_key(b"secret", &hex_decode("a1b2c3d4e5f60708").unwrap(), 24);
    let expect = hex_decode("5343A5977748E86A77ADACB1BBBC3EF8DF08C5549CA4FE22").unwrap();
    assert_eq!(out, expect);
}

#[test]
fn encrypted_pkcs8_needs_the_right_password() {
    let key = KeyPair::generate().unwrap();
    let info_der = key.serialize_der();
    let info = pkcs8::PrivateKeyInfo::try_from(info_der.as_slice()).unwrap();
    let salt = [7u8; 16];
    let iv = [9u8; 16];
    // What `openssl pkcs8 -topk8` writes by default: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC.
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &salt, &iv).unwrap();
    let encrypted = info.encrypt_with_params(params, "hunter2").unwrap();
    let text = pem("ENCRYPTED PRIVATE KEY", &[], encrypted.as_bytes());
    let (_dir, mut opts) = pair_with(&key, &text);

    let err = message(&build(&opts).unwrap_err());
    assert!(
        err.contains("key.pem") && err.contains("--keyfile-password"),
        "{err}"
    );
    assert!(err.contains("encrypted"), "{err}");

    opts.key_password = Some("hunter3".to_owned());
    let err = message(&build(&opts).unwrap_err());
    assert!(
        err.contains("key.pem") && err.contains("wrong password"),
        "{err}"
    );
    assert!(err.contains("--keyfile-password"), "{err}");

    opts.key_password = Some("hunter2".to_owned());
    build(&opts).unwrap();
    match parse_key("k".as_ref(), text.as_bytes(), Some("hunter2")).unwrap() {
        PrivateKeyDer::Pkcs8(k) => assert_eq!(k.secret_pkcs8_der(), info_der.as_slice()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn key_of_another_certificate_names_both_files() {
    let (_dir, _ca, mut opts) = setup(&[LeafSpec::default(), LeafSpec::default()]);
    opts.certs[0].keyfile = opts.certs[1].keyfile.clone();
    opts.certs.truncate(1);
    let err = build(&opts).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    let text = message(&err);
    assert!(
        text.contains("key1.pem") && text.contains("cert0.pem"),
        "{text}"
    );
}

#[test]
fn file_without_a_key_says_what_it_wants() {
    let (_dir, _ca, opts) = setup(&[LeafSpec::default()]);
    let err = parse_key(
        &opts.certs[0].certfile,
        &std::fs::read(&opts.certs[0].certfile).unwrap(),
        None,
    )
    .unwrap_err();
    let text = message(&err);
    assert!(
        text.contains("cert0.pem") && text.contains("PRIVATE KEY"),
        "{text}"
    );
}

#[test]
fn certificate_and_key_in_one_file() {
    let (dir, _ca, mut opts) = setup(&[LeafSpec::default()]);
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&opts.certs[0].certfile).unwrap(),
        std::fs::read_to_string(&opts.certs[0].keyfile).unwrap()
    );
    let path = dir.write("both.pem", both);
    opts.certs[0] = CertPair {
        certfile: path.clone(),
        keyfile: path,
    };
    assert_eq!(opts.files().len(), 1);
    build(&opts).unwrap();
}
