//! Key files on disk: permissions, passphrases, atomic writes. The crypto is in [`crate::keys`].

use crate::fsutil::{self, FsError};
use crate::keys::{KeyError, PublicKey, SecretKey};
use pkcs8::der::zeroize::Zeroizing;
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The environment variable scripts use to hand over a passphrase.
pub const PASSPHRASE_ENV: &str = "COD_PASSPHRASE";
/// …and the new one, where a command takes two (`cod key passwd`, `export`, `import`).
pub const NEW_PASSPHRASE_ENV: &str = "COD_NEW_PASSPHRASE";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: KeyError },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); a secret key or passphrase file must be private: chmod 600 {path}"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "{0} is encrypted and no passphrase was given: use --passphrase-file FILE or {PASSPHRASE_ENV}, or run on a terminal to be asked"
    )]
    NoPassphrase(PathBuf),
    #[error(
        "a new key needs a passphrase: use --passphrase-file FILE, {PASSPHRASE_ENV}, a terminal, or --no-passphrase to store it unencrypted"
    )]
    NoNewPassphrase,
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("passphrase prompt failed: {0}")]
    Prompt(String),
}

impl KeyFileError {
    fn key(path: &Path) -> impl FnOnce(KeyError) -> Self + '_ {
        move |source| Self::Key {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where a passphrase comes from, in the order they are tried.
#[derive(Clone, Debug, Default)]
pub struct Passphrase {
    /// Store new keys unencrypted (the operator opted out).
    pub none: bool,
    /// Read the first line of this file.
    pub file: Option<PathBuf>,
    /// Already read (e.g. from a pipe `cod node start` set up).
    pub value: Option<Zeroizing<String>>,
    /// Read from [`NEW_PASSPHRASE_ENV`] rather than [`PASSPHRASE_ENV`]: a new passphrase.
    pub new: bool,
}

impl Passphrase {
    /// The passphrase for opening an existing encrypted key.
    fn for_existing(&self, key_path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
        if let Some(p) = self.non_interactive()? {
            return Ok(p);
        }
        if !std::io::stdin().is_terminal() {
            return Err(KeyFileError::NoPassphrase(key_path.to_path_buf()));
        }
        let p = dialoguer::Password::new()
            .with_prompt(format!("Passphrase for {}", key_path.display()))
            .interact()
            .map_err(|e| KeyFileError::Prompt(e.to_string()))?;
        non_empty(Zeroizing::new(p))
    }

    /// The passphrase to encrypt a new key with, or `None` when the operator opted out.
    pub fn for_new(&self, what: &str) -> Result<Option<Zeroizing<String>>, KeyFileError> {
        if self.none {
            return Ok(None);
        }
        if let Some(p) = self.non_interactive()? {
            return Ok(Some(p));
        }
        if !std::io::stdin().is_terminal() {
            return Err(KeyFileError::NoNewPassphrase);
        }
        let p = dialoguer::Password::new()
            .with_prompt(format!("New passphrase for {what}"))
            .with_confirmation("Repeat it", "The two entries differ")
            .interact()
            .map_err(|e| KeyFileError::Prompt(e.to_string()))?;
        non_empty(Zeroizing::new(p)).map(Some)
    }

    fn non_interactive(&self) -> Result<Option<Zeroizing<String>>, KeyFileError> {
        if let Some(v) = &self.value {
            return non_empty(v.clone()).map(Some);
        }
        if let Some(file) = &self.file {
            refuse_exposed(file)?;
            let text = Zeroizing::new(fsutil::read_to_string(file)?);
            let line = text.lines().next().unwrap_or("");
            return non_empty(Zeroizing::new(line.to_string())).map(Some);
        }
        let env = if self.new {
            NEW_PASSPHRASE_ENV
        } else {
            PASSPHRASE_ENV
        };
        match std::env::var(env) {
            Ok(p) => non_empty(Zeroizing::new(p)).map(Some),
            Err(_) => Ok(None),
        }
    }
}

fn non_empty(p: Zeroizing<String>) -> Result<Zeroizing<String>, KeyFileError> {
    if p.is_empty() {
        Err(KeyFileError::EmptyPassphrase)
    } else {
        Ok(p)
    }
}

pub fn read_public(path: &Path) -> Result<PublicKey, KeyFileError> {
    let pem = fsutil::read_to_string(path)?;
    PublicKey::from_pem(&pem).map_err(KeyFileError::key(path))
}

/// Refuses a secret (key or passphrase file) that group or others can read.
fn refuse_exposed(path: &Path) -> Result<(), KeyFileError> {
    let meta = std::fs::metadata(path).map_err(fsutil::io_err(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Reads a secret key, refusing one that group or others can read.
pub fn read_secret(path: &Path, passphrase: &Passphrase) -> Result<SecretKey, KeyFileError> {
    refuse_exposed(path)?;
    let pem = Zeroizing::new(fsutil::read_to_string(path)?);
    if SecretKey::pem_is_encrypted(&pem) {
        let p = passphrase.for_existing(path)?;
        SecretKey::from_pem(&pem, Some(p.as_bytes())).map_err(KeyFileError::key(path))
    } else {
        SecretKey::from_pem(&pem, None).map_err(KeyFileError::key(path))
    }
}

/// Writes a key pair as `PUB` (0644) and `SEC` (0600, encrypted with scrypt cost
/// 2^`scrypt_log_n` when a passphrase is given); refuses to replace either.
pub fn write_pair(
    public_path: &Path,
    secret_path: &Path,
    key: &SecretKey,
    passphrase: Option<&str>,
    scrypt_log_n: u8,
) -> Result<(), KeyFileError> {
    for p in [public_path, secret_path] {
        if p.exists() {
            return Err(FsError::Exists(p.to_path_buf()).into());
        }
    }
    let secret_pem = key
        .to_pem_with(passphrase.map(str::as_bytes), scrypt_log_n)
        .map_err(KeyFileError::key(secret_path))?;
    fsutil::write_atomic(secret_path, secret_pem.as_bytes(), 0o600, false)?;
    fsutil::write_atomic(public_path, key.public().to_pem().as_bytes(), 0o644, false)?;
    Ok(())
}
