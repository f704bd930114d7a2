//! The declared precision and scale of `numeric(p,s)` columns.
//!
//! The server sends each result column's type modifier in its RowDescription, but sqlx
//! drops it: a `PgColumn` keeps only the type, and the table and column number the
//! value comes from (`relation_id`, `relation_attribute_no`). For a column that comes
//! straight from a table or view column, `pg_attribute.atttypmod` of that column is the
//! same modifier; the backend reads it for the `numeric` columns of a result, all in one
//! query, and keeps it for [`FRESH_FOR`] so that a lookup repeated per message costs no
//! round trip. Computed columns (casts, arithmetic, `UNION`s, `RETURNING`) have no
//! origin and stay plain `NUMERIC`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::PgColumn;
use sqlx::postgres::types::Oid;

use crate::types::oid::NUMERIC;

/// How long a column's modifier is used before it is read again (an `ALTER TABLE …
/// TYPE numeric(p,s)` is seen after this at the latest).
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(60);

/// Columns kept at most; past this the cache starts over.
const CAPACITY: usize = 4096;

/// A table (or view) column: its `attrelid` and `attnum`.
type Origin = (u32, i16);

/// The type modifiers of the `numeric` table columns results came from, per source.
#[derive(Debug, Default)]
pub(crate) struct NumericTypmods {
    known: Mutex<HashMap<Origin, (i32, Instant)>>,
}

/// The `numeric` columns of one result that come from a table column, by position.
pub(crate) struct Origins(Vec<Option<Origin>>);

impl Origins {
    /// The table columns the `numeric` columns of `columns` come from.
    pub(crate) fn of(columns: &[PgColumn]) -> Self {
        Origins(
            columns
                .iter()
                .map(|column| {
                    let numeric = sqlx::Column::type_info(column).oid() == Some(Oid(NUMERIC));
                    let relation = column.relation_id().filter(|oid| oid.0 != 0)?;
                    let number = column.relation_attribute_no().filter(|n| *n > 0)?;
                    numeric.then_some((relation.0, number))
                })
                .collect(),
        )
    }
}

impl NumericTypmods {
    /// The origins of `origins` whose modifier is not known or no longer fresh.
    pub(crate) fn missing(&self, origins: &Origins) -> Vec<Origin> {
        let known = self.lock();
        let now = Instant::now();
        let mut missing: Vec<Origin> = origins
            .0
            .iter()
            .flatten()
            .filter(|origin| {
                known
                    .get(origin)
                    .is_none_or(|(_, read_at)| now.duration_since(*read_at) >= FRESH_FOR)
            })
            .copied()
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Reads the modifiers of `missing` (from [`missing`](Self::missing)) on `conn`,
    /// in one query.
    pub(crate) async fn read(
        &self,
        conn: &mut sqlx::PgConnection,
        missing: &[Origin],
    ) -> Result<(), sqlx::Error> {
        if missing.is_empty() {
            return Ok(());
        }
        let relations: Vec<i64> = missing.iter().map(|(r, _)| i64::from(*r)).collect();
        let numbers: Vec<i16> = missing.iter().map(|(_, n)| *n).collect();
        // Unnamed (not kept by sqlx or the server): it runs once a minute at most.
        let rows: Vec<(i64, i16, i32)> = sqlx::query_as(
            "SELECT a.attrelid::int8, a.attnum, a.atttypmod \
             FROM unnest($1::int8[], $2::int2[]) AS k(relation, number) \
             JOIN pg_catalog.pg_attribute a \
               ON a.attrelid = k.relation::oid AND a.attnum = k.number",
        )
        .bind(relations)
        .bind(numbers)
        .persistent(false)
        .fetch_all(conn)
        .await?;
        let now = Instant::now();
        let mut known = self.lock();
        if known.len() + rows.len() > CAPACITY {
            known.clear();
        }
        // A column the catalog no longer has (dropped meanwhile) counts as `numeric`
        // without a precision, so that it is not asked for on every call.
        for origin in missing {
            known.insert(*origin, (-1, now));
        }
        for (relation, number, typmod) in rows {
            if let Ok(relation) = u32::try_from(relation) {
                known.insert((relation, number), (typmod, now));
            }
        }
        Ok(())
    }

    /// By column, the `numeric(p,s)` type name of the columns of `origins` whose
    /// modifier is known and declares a precision.
    pub(crate) fn type_names(&self, origins: &Origins) -> Vec<Option<String>> {
        let known = self.lock();
        origins
            .0
            .iter()
            .map(|origin| {
                let (typmod, _) = known.get(origin.as_ref()?)?;
                let (precision, scale) = precision_and_scale(*typmod)?;
                Some(format!("NUMERIC({precision},{scale})"))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Origin, (i32, Instant)>> {
        // A panic while holding it leaves a consistent map.
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The precision and scale a `numeric` type modifier declares (`None`: `-1`, no
/// precision). PostgreSQL packs `((precision << 16) | scale) + 4`, the scale as an
/// 11-bit signed number (negative scales and scales above the precision since 15).
pub(crate) fn precision_and_scale(typmod: i32) -> Option<(i32, i32)> {
    const VARHDRSZ: i32 = 4;
    if typmod < VARHDRSZ {
        return None;
    }
    let packed = typmod - VARHDRSZ;
    let precision = (packed >> 16) & 0xFFFF;
    let scale = ((packed & 0x7FF) ^ 1024) - 1024;
    Some((precision, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modifiers_unpack_like_the_server() {
        // `SELECT atttypmod` of numeric(20,4), numeric(1000,0), numeric(5,-2) and
        // numeric(2,5) columns on PostgreSQL 15.
        assert_eq!(precision_and_scale(1_310_728), Some((20, 4)));
        assert_eq!(precision_and_scale(65_536_004), Some((1000, 0)));
        assert_eq!(precision_and_scale(329_730), Some((5, -2)));
        assert_eq!(precision_and_scale(131_081), Some((2, 5)));
        assert_eq!(precision_and_scale(-1), None);
    }

    #[test]
    fn a_known_modifier_is_read_again_only_once_stale() {
        let typmods = NumericTypmods::default();
        let origins = Origins(vec![
            Some((16384, 2)),
            None,
            Some((16384, 3)),
            Some((16384, 2)),
        ]);
        assert_eq!(typmods.missing(&origins), [(16384, 2), (16384, 3)]);
        let now = Instant::now();
        typmods.lock().insert((16384, 2), (1_310_728, now));
        typmods.lock().insert((16384, 3), (-1, now - FRESH_FOR));
        // A fresh one costs no query; a stale one is read again.
        assert_eq!(typmods.missing(&origins), [(16384, 3)]);
        assert_eq!(
            typmods.type_names(&origins),
            [
                Some("NUMERIC(20,4)".to_owned()),
                None,
                None,
                Some("NUMERIC(20,4)".to_owned())
            ]
        );
    }
}
