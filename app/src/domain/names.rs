//! Names compared without regard to letter case: usernames and client names.
//!
//! Two names are the same when their [`fold_key`]s are equal. The key is
//! computed here, in Rust, and stored beside the name as typed
//! (`users.username_key`, `clients.name_key`, each with the unique index):
//! SQL's `lower()` folds ASCII only on SQLite and follows the database's
//! locale on PostgreSQL, so the two backends disagreed on `Émile`/`émile`.
//! Every insert and rename writes the key, every lookup and search compares
//! on it, and names are shown as typed.
//!
//! Keys of rows written before the key columns existed are filled in by
//! [`fill_missing_keys`], which [`Db::migrate`] runs after the SQL migrations
//! (SQL cannot compute them).

use std::borrow::Cow;

use icu_casemap::CaseMapperBorrowed;
use icu_normalizer::{ComposingNormalizerBorrowed, DecomposingNormalizerBorrowed};
use icu_properties::{props::DefaultIgnorableCodePoint, CodePointSetData};

use super::store::{is_unique_violation, Db};
use crate::on_db;

/// The comparison key of a name: Unicode compatibility caseless matching
/// (The Unicode Standard §3.13, D146:
/// `NFKD(toCasefold(NFKD(toCasefold(NFD(X)))))`), with default-ignorable code
/// points removed first and the result in NFKC — in effect `toNFKC_Casefold`
/// (UAX #44, `NFKC_Casefold`), the form Unicode recommends for caseless
/// identifier matching.
///
/// So `Émile` and `émile`, `Jürgen` and `JÜRGEN` (and its decomposed
/// `JU\u{308}RGEN`), `Straße` and `STRASSE`, `ﬁle` (a ligature) and `FILE`,
/// fullwidth `ＡＢＣ` and `abc`, `alice` and `alice` with a zero-width space
/// or a Hangul filler appended, each have one key. The input is taken as
/// given (callers trim it); the key of an empty string is empty.
/// A character that has no place in one line of plain text shown to people:
/// control characters, line and paragraph separators, and the bidirectional
/// controls that reorder what is shown (U+202A–U+202E, U+2066–U+2069,
/// U+200E, U+200F, U+061C) — "evil" written backwards as its own name, say.
pub fn is_unsafe_in_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

pub fn fold_key(name: &str) -> String {
    let visible: Cow<str> = if name.chars().any(is_invisible) {
        Cow::Owned(name.chars().filter(|&c| !is_invisible(c)).collect())
    } else {
        Cow::Borrowed(name)
    };
    let fold = CaseMapperBorrowed::new();
    let nfd = DecomposingNormalizerBorrowed::new_nfd().normalize(&visible);
    let once = fold.fold_string(&nfd);
    let nfkd = DecomposingNormalizerBorrowed::new_nfkd().normalize(&once);
    let twice = fold.fold_string(&nfkd);
    // NFKC rather than D146's final NFKD: the same equality, and in composed
    // text a LIKE search for `ju` does not match the `u` of a decomposed `jü`.
    ComposingNormalizerBorrowed::new_nfkc()
        .normalize(&twice)
        .into_owned()
}

/// Whether `c` is a default-ignorable code point (UAX #44): shown as nothing
/// (zero-width space, soft hyphen, Hangul fillers, variation selectors), so
/// left out of a key.
pub fn is_invisible(c: char) -> bool {
    CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
}

/// Rows whose key could not be stored because an older row already holds the
/// same key: names that SQLite's ASCII-only `lower()` let in twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCollision {
    /// `users` or `clients`.
    pub table: &'static str,
    /// The row left without a key.
    pub id: String,
    /// Its name as typed.
    pub name: String,
}

/// What [`fill_missing_keys`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyFill {
    /// Rows that got their key.
    pub filled: usize,
    /// Rows left without one (see [`KeyCollision`]).
    pub collisions: Vec<KeyCollision>,
}

#[derive(sqlx::FromRow)]
struct Unkeyed {
    id: String,
    name: String,
}

/// One table's key column.
struct KeyColumn {
    table: &'static str,
    name: &'static str,
    key: &'static str,
    /// Whether the unique index skips deleted rows (a deleted client's name is free).
    skips_deleted: bool,
}

const KEY_COLUMNS: [KeyColumn; 2] = [
    KeyColumn {
        table: "users",
        name: "username",
        key: "username_key",
        skips_deleted: false,
    },
    KeyColumn {
        table: "clients",
        name: "name",
        key: "name_key",
        skips_deleted: true,
    },
];

impl KeyColumn {
    /// Rows without a key, oldest first (the oldest keeps a contested name).
    /// Deleted clients too: every row gets its key.
    fn select_unkeyed(&self) -> String {
        let KeyColumn {
            table, name, key, ..
        } = self;
        format!(
            "SELECT id, {name} AS name FROM {table} WHERE {key} IS NULL ORDER BY created_at, id"
        )
    }

    /// `$1` key, `$2` id: stores the key unless the unique index covers the
    /// row and another row it covers holds the key already.
    fn store_key(&self) -> String {
        let KeyColumn { table, key, .. } = self;
        let (covered, other_covered) = if self.skips_deleted {
            ("deleted_at IS NULL", "other.deleted_at IS NULL")
        } else {
            ("TRUE", "TRUE")
        };
        format!(
            "UPDATE {table} SET {key} = $1 WHERE id = $2 AND {key} IS NULL \
             AND NOT ({covered} AND EXISTS (SELECT 1 FROM {table} other \
             WHERE other.{key} = $1 AND {other_covered}))"
        )
    }

    /// `$1` id: whether the row still has no key.
    fn count_unkeyed(&self) -> String {
        let KeyColumn { table, key, .. } = self;
        format!("SELECT COUNT(*) FROM {table} WHERE id = $1 AND {key} IS NULL")
    }
}

/// Computes and stores the key of every user and client that has none: the
/// rows written before the key columns existed (migration
/// `20261201000001_name_keys`). Does nothing once every row has its key.
///
/// Where two old rows share a key (`Émile` and `émile` created on SQLite), the
/// older keeps the name; the newer is left without a key — it is not found by
/// name, so that user cannot sign in and that client's name is not
/// searchable — and is logged as a warning at every start and returned in
/// [`KeyFill::collisions`] until an admin deals with it (disables the user,
/// renames the client). Refusing to start instead would take every account
/// down for one duplicate the old code should never have let in.
///
/// Each row is one statement of its own (no long transaction): another
/// instance filling the same rows at the same time makes them no-ops.
pub async fn fill_missing_keys(db: &Db) -> Result<KeyFill, sqlx::Error> {
    let mut fill = KeyFill::default();
    for column in &KEY_COLUMNS {
        let select = column.select_unkeyed();
        let store = column.store_key();
        let rows = on_db!(db, |pool| sqlx::query_as::<_, Unkeyed>(&select)
            .fetch_all(pool)
            .await)?;
        for row in rows {
            let key = fold_key(&row.name);
            let stored = on_db!(db, |pool| pool
                .execute_write(sqlx::query(&store).bind(&key).bind(&row.id))
                .await
                .map(|done| done.rows_affected()));
            match stored {
                Ok(1) => fill.filled += 1,
                // Another instance stored it in between: nothing left to do.
                Ok(_) if !still_unkeyed(db, column, &row.id).await? => {}
                Ok(_) => fill.collisions.push(collision(column, row)),
                // A concurrent writer took the key between our check and write.
                Err(e) if is_unique_violation(&e) => fill.collisions.push(collision(column, row)),
                Err(e) => return Err(e),
            }
        }
    }
    for c in &fill.collisions {
        tracing::warn!(
            table = c.table,
            id = %c.id,
            name = %c.name,
            "this name is the same as an older one's when letter case is ignored; it is not \
             found by name until renamed (a user cannot sign in: disable them or rename in the database)"
        );
    }
    Ok(fill)
}

fn collision(column: &KeyColumn, row: Unkeyed) -> KeyCollision {
    KeyCollision {
        table: column.table,
        id: row.id,
        name: row.name,
    }
}

async fn still_unkeyed(db: &Db, column: &KeyColumn, id: &str) -> Result<bool, sqlx::Error> {
    let sql = column.count_unkeyed();
    let n = on_db!(db, |pool| sqlx::query_scalar::<_, i64>(&sql)
        .bind(id)
        .fetch_one(pool)
        .await)?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each name and the key it folds to.
    fn assert_keys(cases: &[(&str, &str)]) {
        for (name, key) in cases {
            assert_eq!(fold_key(name), *key, "{name:?}");
        }
    }

    #[test]
    fn names_differing_in_case_share_a_key() {
        assert_keys(&[
            ("Émile", "émile"),
            ("émile", "émile"),
            ("JÜRGEN", "jürgen"),
            ("Jürgen", "jürgen"),
            // Final sigma folds like any sigma.
            ("ΟΔΥΣΣΕΥΣ", "οδυσσευσ"),
            ("οδυσσευς", "οδυσσευσ"),
            ("Straße", "strasse"),
            ("STRASSE", "strasse"),
            ("ẞ", "ss"),
            ("Alice", "alice"),
        ]);
    }

    #[test]
    fn compatibility_forms_and_decompositions_share_a_key() {
        assert_keys(&[
            ("ﬁle", "file"),
            ("FILE", "file"),
            ("ＡＢＣ", "abc"),
            // Decomposed (as some keyboards and file systems send it) and composed.
            ("JU\u{308}RGEN", "jürgen"),
            ("\u{212B}ngstr\u{F6}m", "ångström"),
            ("ÅNGSTRÖM", "ångström"),
            // Kelvin sign, long s.
            ("\u{212A}elvin", "kelvin"),
            ("ſam", "sam"),
        ]);
    }

    #[test]
    fn invisible_characters_do_not_make_a_new_name() {
        assert_keys(&[
            ("ali\u{200B}ce", "alice"),
            ("alice\u{3164}", "alice"),
            ("al\u{AD}ice", "alice"),
            ("", ""),
        ]);
    }

    #[test]
    fn different_names_keep_different_keys() {
        assert_ne!(fold_key("émile"), fold_key("emile"));
        assert_ne!(fold_key("jürgen"), fold_key("jurgen"));
        assert_ne!(fold_key("ı"), fold_key("i"), "dotless i is its own letter");
    }

    /// A key is its own key: a stored key compared with a folded query, or
    /// folded again, never changes. Every code point of the planes where
    /// cased letters, compatibility forms and ignorables live (all of them
    /// pass too, in 90 s unoptimised).
    #[test]
    fn folding_a_key_changes_nothing() {
        let planes = (0..0x20000u32)
            .chain(0x2F800..0x2FA20)
            .chain(0xE0000..0xE1000);
        let mut buf = [0u8; 4];
        for c in planes.filter_map(char::from_u32) {
            let key = fold_key(c.encode_utf8(&mut buf));
            assert_eq!(fold_key(&key), key, "U+{:04X}", c as u32);
            assert!(!key.chars().any(is_invisible), "U+{:04X}", c as u32);
            let doubled = format!("{c}{c}");
            let key = fold_key(&doubled);
            assert_eq!(fold_key(&key), key, "U+{:04X} twice", c as u32);
        }
    }
}
