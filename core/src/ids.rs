//! Identifiers. All are random (or derived from a public key) so that devices can
//! create them offline without coordination.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::crypto;

/// Parsing an identifier from text failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{kind} must be {len} hexadecimal characters, got {got:?}")]
pub struct IdParseError {
    kind: &'static str,
    len: usize,
    got: String,
}

fn parse_hex<const N: usize>(kind: &'static str, s: &str) -> Result<[u8; N], IdParseError> {
    let err = || IdParseError { kind, len: N * 2, got: s.chars().take(64).collect() };
    if s.len() != N * 2 {
        return Err(err());
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = s.get(i * 2..i * 2 + 2).ok_or_else(err)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| err())?;
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                write_hex(f, &self.0)?;
                write!(f, ")")
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex::<$len>($kind, s).map(Self)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// A family plan. Random, 128 bits.
    PlanId, 16, "a plan id"
);
hex_id!(
    /// A device: the first 128 bits of SHA-256 over its Ed25519 public key. It is also the
    /// automerge actor id of every change the device writes, so an author is always a key.
    DeviceId, 16, "a device id"
);
hex_id!(
    /// An entity inside a plan (member, goal, action, note, ...). Random, 64 bits: plenty
    /// for the few thousand entities of one plan, and short enough to type.
    EntityId, 8, "an entity id"
);

impl PlanId {
    pub fn random() -> Self {
        Self(crypto::random_array())
    }
}

impl EntityId {
    pub fn random() -> Self {
        Self(crypto::random_array())
    }
}

impl DeviceId {
    pub fn from_signing_public_key(public: &[u8; 32]) -> Self {
        let digest = crypto::sha256(public);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }

    pub fn actor(&self) -> automerge::ActorId {
        automerge::ActorId::from(&self.0[..])
    }

    pub fn from_actor(actor: &automerge::ActorId) -> Option<Self> {
        Self::from_slice(actor.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = PlanId::random();
        assert_eq!(id.to_string().parse::<PlanId>(), Ok(id));
        let e = EntityId::random();
        assert_eq!(e.to_string().len(), 16);
        assert_eq!(e.to_string().parse::<EntityId>(), Ok(e));
    }

    #[test]
    fn malformed_ids_are_refused_with_a_typed_error() {
        assert!("xyz".parse::<PlanId>().is_err());
        assert!("zz".repeat(16).parse::<PlanId>().is_err());
        assert!("é".repeat(16).parse::<PlanId>().is_err());
    }
}
