//! PEM keys: public keys (SPKI), secret keys (PKCS#8 plain or encrypted, PKCS#1). An
//! encrypted key's KDF parameters come from the file and must stay within bounds.
#![no_main]
use cod::keys::{PublicKey, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(k) = PublicKey::from_pem(text) {
        assert_eq!(PublicKey::from_pem(&k.to_pem()).unwrap(), k);
    }
    let _ = SecretKey::from_pem(text, Some(b"passphrase"));
    let _ = SecretKey::pem_is_encrypted(text);
});
