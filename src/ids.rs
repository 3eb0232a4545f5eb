//! Identifiers: cod id, account ids (node ids and the network account), key fingerprints.
//!
//! Pure: no I/O. Every id has exactly one printed form (lowercase hex) which every command
//! accepts back; see `docs/formats.md` for the derivation rules and test vectors.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Domain-separation tag for the network's own account, so it can never equal a node id
/// (a node id hashes a DER public key, which never starts with these bytes).
const NETWORK_ACCOUNT_TAG: &[u8] = b"cod/network-account/v1\0";

/// A parse failure of an id's printed form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} must be {len} hexadecimal digits, got {got:?}")]
pub struct IdParseError {
    what: &'static str,
    len: usize,
    got: String,
}

fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], IdParseError> {
    let err = || IdParseError {
        what,
        len: N * 2,
        got: s.chars().take(80).collect(),
    };
    let mut out = [0u8; N];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| err())?;
    Ok(out)
}

macro_rules! hex_id {
    ($name:ident, $len:expr, $what:expr) => {
        impl $name {
            pub const LEN: usize = $len;
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
            /// Parses exactly the printed form (lowercase hex, nothing around it): what
            /// the REST API accepts, so that one id has one spelling on the wire.
            pub fn from_canonical(s: &str) -> Result<Self, IdParseError> {
                let canonical = s.len() == 2 * $len
                    && s.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !canonical {
                    return Err(IdParseError {
                        what: concat!($what, " (lowercase)"),
                        len: 2 * $len,
                        got: s.chars().take(80).collect(),
                    });
                }
                s.parse()
            }
            /// The first 8 hex digits, for tables and logs; never accepted as input.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }
        impl $name {
            /// Lowercase hex without allocating: ids are printed once per record encoded.
            fn with_hex<T>(&self, f: impl FnOnce(&str) -> T) -> T {
                let mut buf = [0u8; 2 * $len];
                hex::encode_to_slice(self.0, &mut buf).expect("buffer is twice the id");
                f(std::str::from_utf8(&buf).expect("hex digits are ASCII"))
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.with_hex(|h| f.write_str(h))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }
        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>($what, s).map(Self)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.with_hex(|h| s.serialize_str(h))
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The cod id: the BitTorrent v1 infohash of the package's single-file torrent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodId([u8; 20]);
hex_id!(CodId, 20, "a cod id");

/// An account id. A node's account id *is* its node id:
/// `SHA-256(DER(SubjectPublicKeyInfo) ‖ cod id)`. The network account's id is
/// `SHA-256("cod/network-account/v1\0" ‖ cod id)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId([u8; 32]);
hex_id!(AccountId, 32, "an account id");

/// A node id is the account id of that node's key in that cod.
pub type NodeId = AccountId;

impl AccountId {
    /// The node id of a public key (SPKI DER) in a cod.
    pub fn node(public_key_der: &[u8], cod: &CodId) -> Self {
        let mut h = Sha256::new();
        h.update(public_key_der);
        h.update(cod.0);
        Self(h.finalize().into())
    }

    /// The collaboration network's own account in a cod.
    pub fn network(cod: &CodId) -> Self {
        let mut h = Sha256::new();
        h.update(NETWORK_ACCOUNT_TAG);
        h.update(cod.0);
        Self(h.finalize().into())
    }
}

/// A key's fingerprint: `SHA-256(DER(SubjectPublicKeyInfo))`, the same in every cod. com.ini
/// names its signers by fingerprint because it is written before any cod id exists.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);
hex_id!(Fingerprint, 32, "a key fingerprint");

impl Fingerprint {
    pub fn of(public_key_der: &[u8]) -> Self {
        Self(Sha256::digest(public_key_der).into())
    }
}

/// A record's hash: `SHA-256` of its canonical encoding without signatures
/// (see `docs/ledger.md`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordHash([u8; 32]);
hex_id!(RecordHash, 32, "a record hash");

impl RecordHash {
    pub fn of(canonical_body: &[u8]) -> Self {
        Self(Sha256::digest(canonical_body).into())
    }
}

/// A node's transport identity (issue 17): the public half of an Ed25519 key the node makes
/// fresh at every start. Peers know each other by it; it says nothing of the account the node
/// holds, and is a new one after a restart.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId([u8; 32]);
hex_id!(PeerId, 32, "a peer id");

#[cfg(test)]
mod tests {
    use super::*;

    // Fixed vectors; docs/formats.md repeats them so other implementations can check theirs.
    const COD: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn network_account_vector() {
        let cod: CodId = COD.parse().unwrap();
        assert_eq!(
            AccountId::network(&cod).to_string(),
            "011462c5bc44d54ca205715b8a70f168942ab38afd2364bc752a9d2052f9d324"
        );
    }

    #[test]
    fn node_id_vector_and_cod_separation() {
        let cod: CodId = COD.parse().unwrap();
        let other: CodId = "1123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let key = b"not a real key, but the rule only hashes bytes";
        let id = AccountId::node(key, &cod);
        assert_eq!(
            id.to_string(),
            "7b4d8b325f1008b83ee2e2a4295f6b179b865842d37c202c55fed95c2a1c9acd"
        );
        assert_ne!(
            id,
            AccountId::node(key, &other),
            "same key, two cods, two ids"
        );
        assert_ne!(id, AccountId::network(&cod));
    }

    #[test]
    fn printed_form_round_trips_and_rejects_bad_input() {
        let cod: CodId = COD.parse().unwrap();
        assert_eq!(cod.to_string().parse::<CodId>().unwrap(), cod);
        assert_eq!(COD.to_uppercase().parse::<CodId>().unwrap(), cod);
        for bad in ["", "0123", &format!("{COD}00"), &COD.replace('0', "g")] {
            let err = bad.parse::<CodId>().unwrap_err();
            assert!(err.to_string().contains("40 hexadecimal digits"), "{err}");
        }
        // The API takes only the printed form.
        assert_eq!(CodId::from_canonical(COD).unwrap(), cod);
        for variant in [
            COD.to_uppercase(),
            format!(" {COD}"),
            format!("{COD}\n"),
            "0".into(),
        ] {
            assert!(CodId::from_canonical(&variant).is_err(), "{variant:?}");
        }
        let json = serde_json::to_string(&cod).unwrap();
        assert_eq!(json, format!("\"{COD}\""));
        assert_eq!(serde_json::from_str::<CodId>(&json).unwrap(), cod);
    }
}
