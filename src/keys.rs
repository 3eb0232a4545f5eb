//! RSA keys and signatures. Pure: parses and produces bytes, never touches files
//! (see [`crate::keyfile`] for that).
//!
//! - Public keys: PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
//! - Secret keys: PEM PKCS#8, `ENCRYPTED PRIVATE KEY` (PBES2: scrypt N=2^17 r=8 p=1,
//!   AES-256-CBC; or N=2^14, which OpenSSL 3's scrypt memory limit allows, on request) or, when the operator opts out, `PRIVATE KEY`. PKCS#1
//!   `RSA PRIVATE KEY` files (older `openssl genrsa`) are accepted on import.
//! - Signatures: RSASSA-PKCS1-v1_5 with SHA-256 over the message bytes. Deterministic, so
//!   a record signed twice by the same key is byte-identical, and checkable with
//!   `openssl dgst -sha256 -verify key.pub -signature sig msg`.
//!
//! Signing goes through aws-lc-rs (constant-time; the `rsa` crate's private-key operation is
//! subject to RUSTSEC-2023-0071). The `rsa` crate reads and writes key files and checks keys.

use crate::ids::{AccountId, CodId, Fingerprint};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature as lc;
use pkcs8::der::zeroize::Zeroizing;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

/// The smallest key accepted anywhere.
pub const MIN_BITS: usize = 2048;
/// The size `cod keygen` makes unless told otherwise.
pub const DEFAULT_BITS: usize = 3072;
/// Sizes `cod keygen` can make (what the constant-time backend supports).
pub const GENERATED_BITS: [usize; 3] = [2048, 3072, 4096];
/// Largest key accepted (bounds the cost of verifying a forged record).
pub const MAX_BITS: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM key file ({0})")]
    NotPem(String),
    #[error("the PEM block is {0:?}; expected {1}")]
    WrongPemLabel(String, &'static str),
    #[error("not an RSA key or malformed DER: {0}")]
    Malformed(String),
    #[error("the key is {0} bits; at least {MIN_BITS} are required")]
    TooSmall(usize),
    #[error("the key is {0} bits; at most {MAX_BITS} are accepted")]
    TooLarge(usize),
    #[error("cannot generate a {0}-bit key; choose one of 2048, 3072, 4096")]
    UnsupportedSize(usize),
    #[error("the key is encrypted and needs a passphrase")]
    NeedsPassphrase,
    #[error("wrong passphrase (or a damaged encrypted key)")]
    WrongPassphrase,
    #[error("signature does not verify")]
    BadSignature,
    #[error("key generation failed")]
    Generation,
}

/// A public key, parsed once for fast verification.
#[derive(Clone)]
pub struct PublicKey {
    der: std::sync::Arc<[u8]>, // shared: keys are cloned into verifiers' snapshots
    bits: usize,
    verifier: std::sync::Arc<lc::ParsedPublicKey>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits, {})", self.bits, self.fingerprint())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for PublicKey {}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo, checking size bounds.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        use rsa::pkcs8::DecodePublicKey;
        let key = RsaPublicKey::from_public_key_der(der)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        Self::from_rsa(&key)
    }

    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_decode(pem)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_der(&der),
            "RSA PUBLIC KEY" => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                let key = RsaPublicKey::from_pkcs1_der(&der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                Self::from_rsa(&key)
            }
            _ => Err(KeyError::WrongPemLabel(label, "PUBLIC KEY")),
        }
    }

    fn from_rsa(key: &RsaPublicKey) -> Result<Self, KeyError> {
        let bits = key.n().bits();
        check_bits(bits)?;
        // Re-encode so the stored DER is canonical whatever form it came in.
        let der = key
            .to_public_key_der()
            .map_err(|e| KeyError::Malformed(e.to_string()))?
            .into_vec();
        let verifier = lc::ParsedPublicKey::new(&lc::RSA_PKCS1_2048_8192_SHA256, &der)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(Self {
            der: der.into(),
            bits,
            verifier: std::sync::Arc::new(verifier),
        })
    }

    /// DER SubjectPublicKeyInfo: the bytes ids and fingerprints hash.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn to_pem(&self) -> String {
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.der)
            .expect("PEM encoding of DER cannot fail")
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.der)
    }

    /// This key's node id (= account id) in a cod.
    pub fn node_id(&self, cod: &CodId) -> AccountId {
        AccountId::node(&self.der, cod)
    }

    /// Checks an RSASSA-PKCS1-v1_5 / SHA-256 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        self.verifier
            .verify_sig(message, signature)
            .map_err(|_| KeyError::BadSignature)
    }

    /// [`PublicKey::verify`] given the message's SHA-256 digest instead of the message
    /// (a record's hash is the digest of its signed body, so records need not be re-encoded).
    pub fn verify_sha256(&self, digest: &[u8; 32], signature: &[u8]) -> Result<(), KeyError> {
        let digest =
            aws_lc_rs::digest::Digest::import_less_safe(digest, &aws_lc_rs::digest::SHA256)
                .expect("32 bytes are a SHA-256 digest");
        self.verifier
            .verify_digest_sig(&digest, signature)
            .map_err(|_| KeyError::BadSignature)
    }
}

/// scrypt cost of new encrypted keys: N = 2^SCRYPT_LOG_N, r = 8, p = 1 (128 MiB, about
/// half a second). Keys encrypted with other parameters still open, within
/// [`kdf_within_bounds`].
pub const SCRYPT_LOG_N: u8 = 17;
/// The scrypt cost OpenSSL 3 can open (its scrypt memory limit is 32 MiB, and N=2^17,
/// r=8 needs 128 MiB): what `openssl pkcs8 -scrypt` writes, and `cod keygen
/// --openssl-compatible`.
pub const OPENSSL_SCRYPT_LOG_N: u8 = 14;
/// The most work an encrypted key file may ask of this machine to open it: a file is data,
/// and its KDF parameters must not be able to take gigabytes or hours.
pub const MAX_SCRYPT_LOG_N: u8 = 20;
pub const MAX_SCRYPT_R_TIMES_P: u64 = 64;
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

fn kdf_within_bounds(scheme: &pkcs8::pkcs5::EncryptionScheme<'_>) -> Result<(), KeyError> {
    use pkcs8::pkcs5::{EncryptionScheme, pbes2::Kdf};
    let too_costly = |what: String| {
        Err(KeyError::Malformed(format!(
            "the key's encryption asks for {what}, more than cod allows"
        )))
    };
    match scheme {
        EncryptionScheme::Pbes2(p) => match &p.kdf {
            Kdf::Scrypt(s) => {
                let n = s.cost_parameter;
                let rp = u64::from(s.block_size) * u64::from(s.parallelization);
                if n > 1 << MAX_SCRYPT_LOG_N || rp > MAX_SCRYPT_R_TIMES_P {
                    return too_costly(format!(
                        "scrypt N={n} r={} p={}",
                        s.block_size, s.parallelization
                    ));
                }
                Ok(())
            }
            Kdf::Pbkdf2(k) if k.iteration_count > MAX_PBKDF2_ITERATIONS => {
                too_costly(format!("{} PBKDF2 iterations", k.iteration_count))
            }
            Kdf::Pbkdf2(_) => Ok(()),
            _ => Err(KeyError::Malformed("unknown key derivation".into())),
        },
        _ => Ok(()), // PBES1: fixed, small iteration counts of DES/RC2 schemes
    }
}

/// A secret key, able to sign.
pub struct SecretKey {
    pkcs8: Zeroizing<Vec<u8>>,
    signer: lc::RsaKeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({:?})", self.public)
    }
}

impl SecretKey {
    /// Makes a new key pair of `bits` (2048, 3072 or 4096).
    pub fn generate(bits: usize) -> Result<Self, KeyError> {
        use aws_lc_rs::rsa::KeySize;
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => return Err(KeyError::UnsupportedSize(other)),
        };
        let pair = lc::RsaKeyPair::generate(size).map_err(|_| KeyError::Generation)?;
        let der = pair.as_der().map_err(|_| KeyError::Generation)?;
        Self::from_pkcs8_der(der.as_ref())
    }

    /// Parses an unencrypted PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let key =
            RsaPrivateKey::from_pkcs8_der(der).map_err(|e| KeyError::Malformed(e.to_string()))?;
        Self::from_rsa(key)
    }

    fn from_rsa(key: RsaPrivateKey) -> Result<Self, KeyError> {
        key.validate()
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        let public = PublicKey::from_rsa(&key.to_public_key())?;
        let pkcs8 = Zeroizing::new(
            key.to_pkcs8_der()
                .map_err(|e| KeyError::Malformed(e.to_string()))?
                .as_bytes()
                .to_vec(),
        );
        let signer =
            lc::RsaKeyPair::from_pkcs8(&pkcs8).map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(Self {
            pkcs8,
            signer,
            public,
        })
    }

    /// Is this PEM text an encrypted private key (so loading it needs a passphrase)?
    pub fn pem_is_encrypted(pem: &str) -> bool {
        pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    }

    /// Parses a PEM secret key; `passphrase` is needed only for an encrypted one.
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, KeyError> {
        let (label, der) = pem_decode(pem)?;
        let der = Zeroizing::new(der);
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let key = RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                Self::from_rsa(key)
            }
            "ENCRYPTED PRIVATE KEY" => {
                let passphrase = passphrase.ok_or(KeyError::NeedsPassphrase)?;
                let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                kdf_within_bounds(&info.encryption_algorithm)?;
                let plain = info
                    .decrypt(passphrase)
                    .map_err(|_| KeyError::WrongPassphrase)?;
                Self::from_pkcs8_der(plain.as_bytes())
            }
            _ => Err(KeyError::WrongPemLabel(label, "PRIVATE KEY")),
        }
    }

    /// Encodes as PEM PKCS#8, encrypted with scrypt (see [`SCRYPT_LOG_N`]) + AES-256-CBC
    /// when a passphrase is given.
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyError> {
        self.to_pem_with(passphrase, SCRYPT_LOG_N)
    }

    /// [`SecretKey::to_pem`] with scrypt cost 2^`log_n` ([`OPENSSL_SCRYPT_LOG_N`] for a file
    /// that `openssl pkey` opens too).
    pub fn to_pem_with(
        &self,
        passphrase: Option<&[u8]>,
        log_n: u8,
    ) -> Result<Zeroizing<String>, KeyError> {
        let malformed = |e: &dyn std::fmt::Display| KeyError::Malformed(e.to_string());
        let Some(passphrase) = passphrase else {
            let pem = pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &self.pkcs8)
                .map_err(|e| malformed(&e))?;
            return Ok(Zeroizing::new(pem));
        };
        use pkcs8::pkcs5::{pbes2, scrypt};
        use rand::RngCore;
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let kdf = scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| malformed(&e))?;
        let params =
            pbes2::Parameters::scrypt_aes256cbc(kdf, &salt, &iv).map_err(|e| malformed(&e))?;
        let info =
            pkcs8::PrivateKeyInfo::try_from(self.pkcs8.as_slice()).map_err(|e| malformed(&e))?;
        let doc = info
            .encrypt_with_params(params, passphrase)
            .map_err(|e| malformed(&e))?;
        let pem = doc
            .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .map_err(|e| malformed(&e))?;
        Ok(pem)
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// RSASSA-PKCS1-v1_5 / SHA-256 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.signer.public_modulus_len()];
        self.signer
            .sign(
                &lc::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .expect("signing with a validated key into a modulus-sized buffer cannot fail");
        sig
    }
}

fn check_bits(bits: usize) -> Result<(), KeyError> {
    if bits < MIN_BITS {
        Err(KeyError::TooSmall(bits))
    } else if bits > MAX_BITS {
        Err(KeyError::TooLarge(bits))
    } else {
        Ok(())
    }
}

fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
        .map_err(|e| KeyError::NotPem(e.to_string()))?;
    Ok((label.to_string(), der))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/keys-example/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn example_keys_pair_up_and_sign() {
        for role in ["com", "cod", "node1"] {
            let secret = SecretKey::from_pem(&example(&format!("{role}.sec.key")), None).unwrap();
            let public = PublicKey::from_pem(&example(&format!("{role}.pub.key"))).unwrap();
            assert_eq!(secret.public(), &public, "{role}");
            let sig = secret.sign(b"hello");
            assert_eq!(sig, secret.sign(b"hello"), "PKCS#1 v1.5 is deterministic");
            public.verify(b"hello", &sig).unwrap();
            assert!(matches!(
                public.verify(b"hellO", &sig),
                Err(KeyError::BadSignature)
            ));
            use sha2::{Digest, Sha256};
            let digest: [u8; 32] = Sha256::digest(b"hello").into();
            public.verify_sha256(&digest, &sig).unwrap();
            let other: [u8; 32] = Sha256::digest(b"hellO").into();
            assert!(matches!(
                public.verify_sha256(&other, &sig),
                Err(KeyError::BadSignature)
            ));
        }
    }

    #[test]
    fn encrypted_round_trip_and_wrong_passphrase() {
        let key = SecretKey::from_pem(&example("node1.sec.key"), None).unwrap();
        let pem = key.to_pem(Some(b"correct horse")).unwrap();
        assert!(SecretKey::pem_is_encrypted(&pem));
        let back = SecretKey::from_pem(&pem, Some(b"correct horse")).unwrap();
        assert_eq!(back.public(), key.public());
        assert!(matches!(
            SecretKey::from_pem(&pem, Some(b"wrong")),
            Err(KeyError::WrongPassphrase)
        ));
        assert!(matches!(
            SecretKey::from_pem(&pem, None),
            Err(KeyError::NeedsPassphrase)
        ));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            PublicKey::from_pem("hello"),
            Err(KeyError::NotPem(_))
        ));
        let secret = example("node1.sec.key");
        assert!(matches!(
            PublicKey::from_pem(&secret),
            Err(KeyError::WrongPemLabel(..))
        ));
        assert!(matches!(
            PublicKey::from_der(b"\x30\x03\x02\x01\x01"),
            Err(KeyError::Malformed(_))
        ));
        assert!(matches!(
            SecretKey::generate(1024),
            Err(KeyError::UnsupportedSize(1024))
        ));
    }
}
