//! A node's transport key (issue 17): what peers know it by, apart from its account. An
//! Ed25519 key made fresh at every start and never written down, so nothing links the host
//! to the account it holds, nor one run of the node to the next. A peer proves it holds the
//! key of the [`PeerId`] it claims by signing a challenge ([`challenge_message`]).

use crate::ids::{CodId, PeerId};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

pub struct TransportKey(Ed25519KeyPair);

impl TransportKey {
    /// A fresh key.
    pub fn generate() -> Self {
        Self(Ed25519KeyPair::generate().expect("the system's random source works"))
    }

    pub fn peer_id(&self) -> PeerId {
        let pk: [u8; 32] = self
            .0
            .public_key()
            .as_ref()
            .try_into()
            .expect("an Ed25519 public key is 32 bytes");
        PeerId::from_bytes(pk)
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).as_ref().to_vec()
    }
}

impl PeerId {
    /// Does `signature` sign `message` with this peer's key?
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.as_bytes())
            .verify(message, signature)
            .is_ok()
    }
}

/// What a node signs to answer a challenge: a fixed prefix (never a record body, which is a
/// JSON object), the cod and the challenger's nonce.
pub fn challenge_message(cod: &CodId, nonce: &[u8; 32]) -> Vec<u8> {
    let mut m = b"cod/peer-challenge/v1\0".to_vec();
    m.extend_from_slice(cod.as_bytes());
    m.extend_from_slice(nonce);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_proves_its_key_and_nothing_else_passes() {
        let (a, b) = (TransportKey::generate(), TransportKey::generate());
        assert_ne!(a.peer_id(), b.peer_id(), "fresh keys");
        let cod = CodId::from_bytes([1; 20]);
        let m = challenge_message(&cod, &[7; 32]);
        let sig = a.sign(&m);
        assert!(a.peer_id().verifies(&m, &sig));
        assert!(!b.peer_id().verifies(&m, &sig), "another key");
        assert!(
            !a.peer_id()
                .verifies(&challenge_message(&cod, &[8; 32]), &sig)
        );
        let other = challenge_message(&CodId::from_bytes([2; 20]), &[7; 32]);
        assert!(!a.peer_id().verifies(&other, &sig), "another cod");
        let mut bad = sig.clone();
        bad[0] ^= 1;
        assert!(!a.peer_id().verifies(&m, &bad));
        assert!(!a.peer_id().verifies(&m, &[]));
        assert!(!a.peer_id().verifies(&m, &[0; 200]));
    }
}
