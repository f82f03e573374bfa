//! Private keys from PEM: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8 (`PRIVATE KEY`), SEC1
//! (`EC PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2) and the legacy OpenSSL
//! form (`Proc-Type: 4,ENCRYPTED` with `DEK-Info:`) of PKCS#1 and SEC1 keys. Decryption is pure
//! Rust (RustCrypto): no OpenSSL.
use std::path::Path;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use base64ct::{Base64, Encoding};
use md5::{Digest, Md5};
use pkcs8::der::Document;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};

use super::{file_error, TlsError};

/// One PEM block: its label (`RSA PRIVATE KEY`), its RFC 1421 headers and its decoded body.
#[derive(Debug)]
pub(super) struct PemBlock {
    pub label: String,
    pub headers: Vec<(String, String)>,
    pub der: Vec<u8>,
}

impl PemBlock {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The PEM blocks of a file, in order. Text outside blocks is skipped (OpenSSL writes comments
/// and `EC PARAMETERS` blocks beside keys); a block whose body is not base64 is an error.
pub(super) fn pem_blocks(path: &Path, text: &[u8]) -> Result<Vec<PemBlock>, TlsError> {
    let text = String::from_utf8_lossy(text);
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if body.is_empty() {
                if let Some((name, value)) = line.split_once(':') {
                    headers.push((name.trim().to_owned(), value.trim().to_owned()));
                    continue;
                }
            }
            body.push_str(line);
        }
        if !closed {
            return Err(file_error(
                path,
                format!("no `{end}` line closes the block"),
            ));
        }
        let der = Base64::decode_vec(&body)
            .map_err(|e| file_error(path, format!("the {label} block is not base64: {e}")))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            headers,
            der,
        });
    }
    Ok(blocks)
}

/// The private key in a PEM file, decrypted with `password` when the file holds an encrypted
/// one.
pub fn load_key(path: &Path, password: Option<&str>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    parse_key(path, &bytes, password)
}

/// [`load_key`] on bytes already read; `path` only names the file in errors.
pub fn parse_key(
    path: &Path,
    pem: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    for block in pem_blocks(path, pem)? {
        match block.label.as_str() {
            "PRIVATE KEY" => return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(block.der))),
            "ENCRYPTED PRIVATE KEY" => return decrypt_pkcs8(path, &block.der, password),
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                let der = if block
                    .header("Proc-Type")
                    .is_some_and(|v| v.contains("ENCRYPTED"))
                {
                    decrypt_legacy(path, &block, password)?
                } else {
                    block.der
                };
                return Ok(if block.label.starts_with("RSA") {
                    PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))
                } else {
                    PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))
                });
            }
            "OPENSSH PRIVATE KEY" => {
                return Err(file_error(
                    path,
                    "an OpenSSH key, not a TLS one: convert it with \
                     `ssh-keygen -p -m PKCS8 -f FILE` or make a key with `openssl genpkey`",
                ))
            }
            _ => {}
        }
    }
    Err(file_error(
        path,
        "no private key in the file (a PEM block `PRIVATE KEY`, `RSA PRIVATE KEY`, \
         `EC PRIVATE KEY` or `ENCRYPTED PRIVATE KEY`)",
    ))
}

fn no_password(path: &Path) -> TlsError {
    file_error(
        path,
        "the private key is encrypted: pass its password with --keyfile-password",
    )
}

fn wrong_password(path: &Path) -> TlsError {
    file_error(
        path,
        "the private key could not be decrypted: wrong password (check --keyfile-password)",
    )
}

/// An `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2: PBKDF2 or scrypt, AES-CBC or 3DES).
fn decrypt_pkcs8(
    path: &Path,
    der: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| file_error(path, format!("a malformed ENCRYPTED PRIVATE KEY: {e}")))?;
    let password = password.ok_or_else(|| no_password(path))?;
    let plain = match info.decrypt(password) {
        Ok(doc) => doc,
        // A bad padding after decryption: the wrong password. (pkcs5 0.7 reports it as
        // `EncryptFailed`.)
        Err(pkcs8::Error::EncryptedPrivateKey(
            pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
        )) => return Err(wrong_password(path)),
        Err(e) => {
            return Err(file_error(
                path,
                format!(
                    "cannot decrypt the private key ({e}); convert it with \
                     `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.new`"
                ),
            ))
        }
    };
    // A wrong password passes the padding check one time in 256: the text is then no key.
    if pkcs8::PrivateKeyInfo::try_from(plain.as_bytes()).is_err() {
        return Err(wrong_password(path));
    }
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.as_bytes().to_vec(),
    )))
}

/// The ciphers OpenSSL writes in a legacy `DEK-Info:` header that we decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegacyCipher {
    Aes128,
    Aes192,
    Aes256,
    DesEde3,
    Des,
}

impl LegacyCipher {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "AES-128-CBC" => Self::Aes128,
            "AES-192-CBC" => Self::Aes192,
            "AES-256-CBC" => Self::Aes256,
            "DES-EDE3-CBC" => Self::DesEde3,
            "DES-CBC" => Self::Des,
            _ => return None,
        })
    }

    fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes192 | Self::DesEde3 => 24,
            Self::Aes256 => 32,
            Self::Des => 8,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            Self::Aes128 | Self::Aes192 | Self::Aes256 => 16,
            Self::DesEde3 | Self::Des => 8,
        }
    }

    /// Decrypts `buf` in place; `None` when the padding is wrong (a wrong password).
    fn decrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Option<usize> {
        fn run<C: BlockDecryptMut + KeyIvInit>(
            key: &[u8],
            iv: &[u8],
            buf: &mut [u8],
        ) -> Option<usize> {
            let cipher = C::new_from_slices(key, iv).ok()?;
            cipher
                .decrypt_padded_mut::<Pkcs7>(buf)
                .ok()
                .map(<[u8]>::len)
        }
        match self {
            Self::Aes128 => run::<cbc::Decryptor<aes::Aes128>>(key, iv, buf),
            Self::Aes192 => run::<cbc::Decryptor<aes::Aes192>>(key, iv, buf),
            Self::Aes256 => run::<cbc::Decryptor<aes::Aes256>>(key, iv, buf),
            Self::DesEde3 => run::<cbc::Decryptor<des::TdesEde3>>(key, iv, buf),
            Self::Des => run::<cbc::Decryptor<des::Des>>(key, iv, buf),
        }
    }
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one iteration, as `PEM_write_*` derives the key of
/// a legacy encrypted PEM block: `D_i = MD5(D_{i-1} || password || salt)`.
pub(super) fn bytes_to_key(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(len + 16);
    let mut prev: Option<[u8; 16]> = None;
    while key.len() < len {
        let mut md5 = Md5::new();
        if let Some(prev) = prev {
            md5.update(prev);
        }
        md5.update(password);
        md5.update(salt);
        let digest: [u8; 16] = md5.finalize().into();
        key.extend_from_slice(&digest);
        prev = Some(digest);
    }
    key.truncate(len);
    key
}

pub(super) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// A legacy encrypted PKCS#1 or SEC1 block (`Proc-Type: 4,ENCRYPTED`,
/// `DEK-Info: AES-256-CBC,<iv hex>`), as `openssl genrsa -aes256` and old `openssl rsa -aes256`
/// write them.
fn decrypt_legacy(
    path: &Path,
    block: &PemBlock,
    password: Option<&str>,
) -> Result<Vec<u8>, TlsError> {
    let convert = "convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.new`";
    let dek = block.header("DEK-Info").ok_or_else(|| {
        file_error(
            path,
            format!("an encrypted key without a DEK-Info header; {convert}"),
        )
    })?;
    let (name, iv_hex) = dek.split_once(',').unwrap_or((dek, ""));
    let cipher = LegacyCipher::from_name(name.trim()).ok_or_else(|| {
        file_error(
            path,
            format!("the key is encrypted with {name}, which Ferrule cannot decrypt; {convert}"),
        )
    })?;
    let iv = hex_decode(iv_hex.trim())
        .filter(|iv| iv.len() == cipher.iv_len())
        .ok_or_else(|| file_error(path, format!("a malformed DEK-Info header `{dek}`")))?;
    let password = password.ok_or_else(|| no_password(path))?;
    let salt = iv.get(..8).unwrap_or(&iv);
    let key = bytes_to_key(password.as_bytes(), salt, cipher.key_len());
    let mut buf = block.der.clone();
    let len = cipher
        .decrypt(&key, &iv, &mut buf)
        .ok_or_else(|| wrong_password(path))?;
    buf.truncate(len);
    // One wrong password in 256 passes the padding check; then the text is not one DER SEQUENCE.
    if Document::try_from(buf.as_slice()).is_err() {
        return Err(wrong_password(path));
    }
    Ok(buf)
}
