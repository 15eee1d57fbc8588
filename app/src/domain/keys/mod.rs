//! Signing keys: the keys that sign access tokens and ID tokens, how they are
//! stored, rotated and published. Signing and verifying with them is
//! [`super::jwt`].
//!
//! * `master.rs`: the private keys live in the `signing_keys` table, encrypted
//!   with AES-256-GCM under a [`MasterKey`] that never touches the database (it
//!   is a file next to the configuration), so a database dump alone signs nothing.
//! * There is always one active key per [`SigningAlg`]: EdDSA (Ed25519, RFC 8037)
//!   for access tokens, RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3) for
//!   ID tokens, which OpenID Connect Core §15.1 requires every provider to support.
//! * `keyring.rs`: [`KeyRing`] holds the keys parsed once, never per token.
//!   [`KeyRing::reload`] swaps them in place, so a `keys rotate` run by the CLI
//!   reaches every running instance.
//! * [`rotate`] retires the active keys and creates new ones; a retired key keeps
//!   verifying and stays in the JWKS (RFC 7517) for [`RETIRED_KEY_GRACE`], then it
//!   is gone.

use jsonwebtoken::Algorithm;

mod keyring;
mod master;

pub(crate) use keyring::PublicPart;
pub use keyring::{exist, rotate, KeyRing, RETIRED_KEY_GRACE};
pub use master::MasterKey;

/// The JWS algorithms Latchkey signs with (RFC 7518 §3.1 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SigningAlg {
    /// Ed25519 (RFC 8037): small, fast, deterministic; access tokens.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256: the ID-token default of OpenID Connect.
    RS256,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 2] = [SigningAlg::EdDSA, SigningAlg::RS256];

    /// The `alg` value, also what the `algorithm` column holds.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::RS256 => "RS256",
        }
    }

    /// The inverse of [`SigningAlg::as_str`] (exact, case-sensitive like JOSE names).
    pub fn parse(value: &str) -> Option<SigningAlg> {
        match value {
            "EdDSA" => Some(SigningAlg::EdDSA),
            "RS256" => Some(SigningAlg::RS256),
            _ => None,
        }
    }

    /// The same algorithm in `jsonwebtoken`'s terms.
    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::RS256 => Algorithm::RS256,
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_algorithms_round_trip_their_names() {
        for alg in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(SigningAlg::parse("none"), None);
        assert_eq!(SigningAlg::parse("rs256"), None);
    }
}
