//! The revoked set: every live entry of the issuer's revocation log, in memory.
//!
//! A lookup is three hash probes (grant, family, jti), whatever the size of the
//! set; the sweep removes only the entries whose time passed, oldest first, so
//! it costs nothing while nothing expires (100,000 entries do not slow down
//! validation).

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    str::FromStr,
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use crate::claims::Claims;

/// What a revocation entry names (the feed's `kind`), and the access-token
/// claim it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationKind {
    /// A grant (a user's consent to an app, or a client_credentials client's
    /// own grant): every token whose `gid` is the entry's id.
    Grant,
    /// A token family (one app session: a code redemption and its refresh
    /// chain): every token whose `fid` is the entry's id.
    Family,
    /// One access token: the token whose `jti` is the entry's id.
    Jti,
}

impl RevocationKind {
    const ALL: [RevocationKind; 3] = [Self::Grant, Self::Family, Self::Jti];

    fn index(self) -> usize {
        self as usize
    }

    /// The feed's name for it: `grant`, `family` or `jti`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Family => "family",
            Self::Jti => "jti",
        }
    }

    /// The value of the claim this kind of entry is compared with.
    fn claim(self, claims: &Claims) -> Option<&str> {
        match self {
            Self::Grant => Some(&claims.gid),
            Self::Family => claims.fid.as_deref(),
            Self::Jti => Some(&claims.jti),
        }
    }
}

impl fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// One entry of the revocation feed, as the snapshot and the stream carry it:
/// `{"position": 18, "kind": "family", "id": "...", "until": 1764600000}`.
/// `kind` stays a string here: an entry of a kind this crate does not know is
/// skipped with a warning, not a reason to drop the whole page.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Entry {
    pub position: i64,
    pub kind: String,
    pub id: String,
    /// Unix seconds after which no token the entry covers can be presented.
    pub until: i64,
}

/// The live entries, by kind and id, each with its `until` (unix seconds).
#[derive(Debug, Default)]
pub(crate) struct RevokedSet {
    by_kind: [HashMap<Arc<str>, i64>; 3],
    /// The same entries ordered by `until`, for the sweep.
    by_until: BTreeSet<(i64, RevocationKind, Arc<str>)>,
}

impl RevokedSet {
    /// Holds `id` of `kind` until `until`. An id revoked twice keeps the later
    /// `until` (the longer-lived of its tokens decides).
    pub fn insert(&mut self, kind: RevocationKind, id: &str, until: i64) {
        let map = &mut self.by_kind[kind.index()];
        match map.get_key_value(id) {
            Some((_, &held)) if held >= until => {}
            Some((key, &held)) => {
                let key = key.clone();
                self.by_until.remove(&(held, kind, key.clone()));
                self.by_until.insert((until, kind, key.clone()));
                map.insert(key, until);
            }
            None => {
                let key: Arc<str> = Arc::from(id);
                self.by_until.insert((until, kind, key.clone()));
                map.insert(key, until);
            }
        }
    }

    /// The kind of the first entry that covers these claims (grant, then
    /// family, then jti), if any.
    pub fn revoked(&self, claims: &Claims) -> Option<RevocationKind> {
        RevocationKind::ALL.into_iter().find(|kind| {
            kind.claim(claims)
                .is_some_and(|id| self.by_kind[kind.index()].contains_key(id))
        })
    }

    /// Drops every entry whose `until` is before `cutoff` (unix seconds);
    /// returns how many. Costs a look at the oldest entry when none is due.
    pub fn sweep(&mut self, cutoff: i64) -> usize {
        let mut dropped = 0;
        while let Some(first) = self.by_until.first() {
            if first.0 >= cutoff {
                break;
            }
            let (_, kind, id) = self.by_until.pop_first().expect("just seen");
            self.by_kind[kind.index()].remove(&id);
            dropped += 1;
        }
        dropped
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.by_until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(gid: &str, fid: Option<&str>, jti: &str) -> Claims {
        serde_json::from_value(serde_json::json!({
            "iss": "i", "sub": "s", "aud": "a", "client_id": "c", "iat": 1, "exp": 2,
            "jti": jti, "gid": gid, "fid": fid, "scope": "",
        }))
        .unwrap()
    }

    #[test]
    fn each_kind_matches_its_own_claim_only() {
        let mut set = RevokedSet::default();
        set.insert(RevocationKind::Grant, "g1", 100);
        set.insert(RevocationKind::Family, "f1", 100);
        set.insert(RevocationKind::Jti, "j1", 100);
        assert_eq!(
            set.revoked(&claims("g1", None, "x")),
            Some(RevocationKind::Grant)
        );
        assert_eq!(
            set.revoked(&claims("x", Some("f1"), "x")),
            Some(RevocationKind::Family)
        );
        assert_eq!(
            set.revoked(&claims("x", None, "j1")),
            Some(RevocationKind::Jti)
        );
        // An id of one kind does not revoke the same string as another claim.
        assert_eq!(set.revoked(&claims("f1", Some("j1"), "g1")), None);
        assert_eq!(set.revoked(&claims("x", None, "y")), None);
    }

    #[test]
    fn sweep_drops_only_entries_past_the_cutoff_and_keeps_the_later_until() {
        let mut set = RevokedSet::default();
        set.insert(RevocationKind::Grant, "early", 10);
        set.insert(RevocationKind::Grant, "late", 20);
        set.insert(RevocationKind::Jti, "moved", 10);
        set.insert(RevocationKind::Jti, "moved", 30);
        set.insert(RevocationKind::Jti, "moved", 5);
        assert_eq!(set.len(), 3);
        assert_eq!(set.sweep(10), 0, "until == cutoff is still held");
        assert_eq!(set.sweep(11), 1);
        assert_eq!(set.revoked(&claims("early", None, "x")), None);
        assert!(set.revoked(&claims("late", None, "x")).is_some());
        assert!(set.revoked(&claims("x", None, "moved")).is_some());
        assert_eq!(set.sweep(25), 1);
        assert!(set.revoked(&claims("x", None, "moved")).is_some());
        assert_eq!(set.sweep(31), 1);
        assert_eq!(set.len(), 0);
    }

    #[test]
    fn a_hundred_thousand_entries_are_looked_up_and_swept() {
        let mut set = RevokedSet::default();
        for i in 0..100_000 {
            set.insert(RevocationKind::Family, &format!("f{i}"), 1_000 + i % 100);
        }
        assert_eq!(set.len(), 100_000);
        assert!(set.revoked(&claims("g", Some("f99999"), "j")).is_some());
        assert!(set.revoked(&claims("g", Some("f100000"), "j")).is_none());
        // Entries with until 1000..=1049 go; the rest stay.
        assert_eq!(set.sweep(1_050), 50_000);
        assert!(set.revoked(&claims("g", Some("f0"), "j")).is_none());
        assert!(set.revoked(&claims("g", Some("f50"), "j")).is_some());
    }

    #[test]
    fn kinds_parse_from_the_feed_names() {
        for kind in RevocationKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(kind));
        }
        assert_eq!("sid".parse::<RevocationKind>(), Err(()));
        assert_eq!("Grant".parse::<RevocationKind>(), Err(()));
    }
}
