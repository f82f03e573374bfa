//! What a finished handshake tells the app, in mod_ssl's forms: the protocol, the cipher by
//! its OpenSSL name, and the client's certificate (subject and issuer as OpenSSL prints them
//! with `-nameopt RFC2253`, the serial in upper-case hex, the PEM).
use std::fmt::Write as _;

use base64ct::{Base64, Encoding};
use rustls::ServerConnection;
use rustls_pki_types::CertificateDer;
use x509_parser::asn1_rs::{Tag, ToDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::ciphers::openssl_name;
use crate::net::{ClientCertInfo, TlsInfo};

/// What the app is told of a finished handshake.
pub fn handshake_info(conn: &ServerConnection) -> TlsInfo {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map_or("", |s| openssl_name(s.suite()));
    let client = conn
        .peer_certificates()
        .and_then(<[CertificateDer<'_>]>::first)
        .and_then(client_cert_info);
    TlsInfo {
        protocol,
        cipher,
        client,
    }
}

/// The mod_ssl view of a (verified) client certificate; `None` if it does not parse, which a
/// certificate that passed verification always does.
pub fn client_cert_info(der: &CertificateDer<'_>) -> Option<ClientCertInfo> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    Some(ClientCertInfo {
        subject: rfc2253(cert.subject()),
        issuer: rfc2253(cert.issuer()),
        serial: serial_hex(cert.raw_serial()),
        pem: pem_certificate(der.as_ref()),
    })
}

/// The serial as OpenSSL's `BN_bn2hex` (mod_ssl's `SSL_CLIENT_M_SERIAL`): upper-case hex, two
/// digits a byte, no leading zero bytes, `0` for zero.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    let Some(bytes) = raw.get(start..).filter(|b| !b.is_empty()) else {
        return "0".to_owned();
    };
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
    out
}

/// A certificate in PEM, 64 base64 characters a line, ending in a newline.
pub fn pem_certificate(der: &[u8]) -> String {
    let b64 = Base64::encode_string(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// OpenSSL's short name for an attribute type (as `-nameopt RFC2253` prints it).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        "2.5.4.15" => "businessCategory",
        _ => return None,
    })
}

/// A distinguished name as RFC 4514 / OpenSSL's `-nameopt RFC2253`: the most specific RDN
/// first, RDNs joined by `,`, multi-valued RDNs by `+`, special characters escaped. UTF-8 is
/// kept as is (mod_ssl's `SSL_CLIENT_S_DN` does not escape it either).
pub fn rfc2253(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // OpenSSL prints the whole list of attributes backwards, inside an RDN too.
        let atvs: Vec<_> = rdn.iter().collect();
        for (j, atv) in atvs.iter().rev().enumerate() {
            if j > 0 {
                out.push('+');
            }
            push_atv(&mut out, atv);
        }
    }
    out
}

fn push_atv(out: &mut String, atv: &AttributeTypeAndValue<'_>) {
    let oid = atv.attr_type().to_id_string();
    let value = atv.attr_value();
    let text = match value.tag() {
        Tag::NumericString
        | Tag::PrintableString
        | Tag::Utf8String
        | Tag::Ia5String
        | Tag::VisibleString => std::str::from_utf8(value.data).ok().map(str::to_owned),
        // OpenSSL reads a T61String as Latin-1.
        Tag::T61String => Some(value.data.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            let units: Option<Vec<u16>> = value
                .data
                .chunks_exact(2)
                .map(|p| <[u8; 2]>::try_from(p).ok().map(u16::from_be_bytes))
                .collect();
            units.and_then(|u| String::from_utf16(&u).ok())
        }
        Tag::UniversalString => value
            .data
            .chunks_exact(4)
            .map(|p| {
                <[u8; 4]>::try_from(p)
                    .ok()
                    .and_then(|b| char::from_u32(u32::from_be_bytes(b)))
            })
            .collect(),
        _ => None,
    };
    match (short_name(&oid), text) {
        (Some(short), Some(text)) => {
            out.push_str(short);
            out.push('=');
            escape_value(out, &text);
        }
        (short, _) => {
            // RFC 4514 §2.4: an unknown type (or a value that is no string) as its dotted OID
            // and the value's DER in hex.
            out.push_str(short.unwrap_or(&oid));
            out.push_str("=#");
            for b in value.to_der_vec().unwrap_or_default() {
                let _ = write!(out, "{b:02X}");
            }
        }
    }
}

/// RFC 4514 §2.4 escaping: `,+"\<>;` anywhere, `#` or a space at the start, a space at the end,
/// control characters as `\XX`.
fn escape_value(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:02X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}
