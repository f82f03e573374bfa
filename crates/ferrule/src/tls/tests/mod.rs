//! Tests of the tls room. Keys and certificates are made at run time with rcgen (no private key
//! is committed); handshakes run in memory between a rustls client and server.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64ct::{Base64, Encoding};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    SerialNumber,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig};
use rustls::{ServerConnection, SignatureScheme};

use super::{CertPair, TlsOptions};

mod client;
mod handshake;
mod keys;
mod store;

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ferrule-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `name` as certbot does: a new file renamed over the old one.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A PEM block of `der` under `label`, with optional RFC 1421 headers.
pub fn pem(label: &str, headers: &[(&str, &str)], der: &[u8]) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    for (name, value) in headers {
        out.push_str(&[name, ": ", value, "\n"].concat());
    }
    if !headers.is_empty() {
        out.push('\n');
    }
    let b64 = Base64::encode_string(der);
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&["-----END ", label, "-----\n"].concat());
    out
}

fn dn(cn: &str, o: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, o);
    dn.push(DnType::CommonName, cn);
    dn
}

/// A certificate authority.
pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

pub fn ca(cn: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = dn(cn, "Example");
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// What a leaf is made of.
pub struct LeafSpec<'a> {
    pub sans: &'a [&'a str],
    pub cn: &'a str,
    pub serial: u64,
    /// Days from now: `not_after` (negative: expired).
    pub days: i64,
}

impl Default for LeafSpec<'_> {
    fn default() -> Self {
        Self {
            sans: &["localhost"],
            cn: "localhost",
            serial: 1,
            days: 30,
        }
    }
}

/// A leaf certificate for `key`, signed by `ca`, in PEM.
pub fn leaf(ca: &Ca, key: &KeyPair, spec: &LeafSpec<'_>) -> String {
    let sans: Vec<String> = spec.sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).unwrap();
    params.distinguished_name = dn(spec.cn, "Example");
    params.serial_number = Some(SerialNumber::from(spec.serial));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(60);
    params.not_after = now + time::Duration::days(spec.days);
    params.signed_by(key, &ca.issuer).unwrap().pem()
}

/// A directory with `ca.pem` and, for each spec, `certN.pem` and `keyN.pem` (fresh P-256
/// keys); the options name the pairs in order.
pub fn setup(specs: &[LeafSpec<'_>]) -> (TempDir, Ca, TlsOptions) {
    let dir = TempDir::new();
    let ca = ca("Test CA");
    dir.write("ca.pem", &ca.pem);
    let mut opts = TlsOptions::default();
    for (i, spec) in specs.iter().enumerate() {
        let key = KeyPair::generate().unwrap();
        let certfile = dir.write(&format!("cert{i}.pem"), leaf(&ca, &key, spec));
        let keyfile = dir.write(&format!("key{i}.pem"), key.serialize_pem());
        opts.certs.push(CertPair { certfile, keyfile });
    }
    (dir, ca, opts)
}

/// Accepts any server certificate: the SNI tests look at which one was sent.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client trusting `ca` (or anything, when `None`), presenting `identity` when asked.
pub fn client_config(
    ca: Option<&Ca>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> ClientConfig {
    let provider = Arc::new(super::provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider))),
    };
    match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// Runs a handshake in memory; `sni` is the name the client connects to.
pub fn handshake(
    server: Arc<ServerConfig>,
    client: ClientConfig,
    sni: &str,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut client = ClientConnection::new(Arc::new(client), name)?;
    let mut server = ServerConnection::new(server)?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        feed(&mut buf.as_slice(), |r| server.read_tls(r))?;
        server.process_new_packets()?;
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        feed(&mut buf.as_slice(), |r| client.read_tls(r))?;
        client.process_new_packets()?;
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            return Ok((client, server));
        }
    }
    Err(rustls::Error::General(
        "the handshake did not finish".to_owned(),
    ))
}

fn feed(
    input: &mut &[u8],
    mut read: impl FnMut(&mut &[u8]) -> std::io::Result<usize>,
) -> Result<(), rustls::Error> {
    while !input.is_empty() {
        read(input).map_err(|e| rustls::Error::General(e.to_string()))?;
    }
    Ok(())
}

/// The leaf certificate the server presented to `client`.
pub fn served_leaf(client: &ClientConnection) -> CertificateDer<'static> {
    client.peer_certificates().unwrap()[0].clone().into_owned()
}

/// The leaf in a PEM file.
pub fn leaf_in(path: &Path) -> CertificateDer<'static> {
    super::load_certs(path).unwrap().remove(0)
}
