//! What runs around each call that executes SQL written by an account: the start of a
//! read-only call and the reset of the session before its connection is reused.
//!
//! - A `read_only` connector runs every call inside `BEGIN READ ONLY`, followed in the
//!   same round trip by a `SELECT` (which sets the call's `statement_timeout` for the
//!   transaction only). That `SELECT` takes the transaction's first snapshot, after which
//!   the server refuses `SET TRANSACTION READ WRITE`. The transaction is always rolled
//!   back at the end of the call; a `DO` block or procedure cannot `COMMIT` inside it.
//! - After every call, on every connector, one simple-query round trip puts the session
//!   back to the connector's defaults ([`Reset`]). In full: roll back (read-only), close
//!   cursors, unlisten, session authorization and role, every setting (`RESET ALL`, then
//!   the connector's own settings again), temporary tables, sequence caches, advisory
//!   locks, the seed of `random()`. Prepared statements are counted instead of dropped,
//!   so that sqlx's statement cache stays valid; see [`Check`].
//! - A call of one statement on a `read_only` connector needs less
//!   ([`Reset::RolledBack`]): everything it did ran in its read-only transaction, and
//!   rolling that back undoes settings, role and authorization, `LISTEN`, cursors (a
//!   `WITH HOLD` cursor outlives only a commit), and a read-only transaction can create
//!   no temporary table or sequence, nor call `nextval`. What outlives a rollback is
//!   reset: advisory locks taken at session level, statements prepared with SQL
//!   `PREPARE` (counted by the check), the seed of `random()`. One statement cannot
//!   both change the session and end the transaction (`DO` blocks and procedures run
//!   atomic inside a transaction block, so their `COMMIT` fails). A statement that ends
//!   it (`COMMIT`, `END`, `ROLLBACK`, `ABORT`, `PREPARE TRANSACTION`) is found by
//!   `ROLLBACK AND CHAIN` and its connection closed; `COMMIT AND CHAIN` or
//!   `ROLLBACK AND CHAIN` as the statement leaves a new, empty read-only transaction,
//!   which the reset rolls back like any other. A batch could set something and then
//!   commit it (`SET …`, `COMMIT AND CHAIN`; transaction control in a batch is also
//!   refused before it is sent): batches get the full reset.
//! - The new seed of `random()` is drawn on the server (`gen_random_uuid()`, PostgreSQL
//!   13 or later), never written into the reset's text: every session of the same role
//!   can read that text in `pg_stat_activity.query`, and a seed read there would let one
//!   account predict another's `random()`. On an older server the reset fails and each
//!   connection is closed after its call instead of reused.

use std::fmt::Write as _;

/// SQLSTATE `25P01` (no active SQL transaction): `ROLLBACK AND CHAIN` outside a
/// transaction block, i.e. the call's statement ended the read-only transaction.
pub(crate) const NO_ACTIVE_TRANSACTION: &str = "25P01";

/// The round trip that starts a call on a `read_only` connector.
pub fn begin_read_only(statement_timeout_ms: u64) -> String {
    format!(
        "BEGIN READ ONLY; \
         SELECT pg_catalog.set_config('statement_timeout', '{statement_timeout_ms}', true)"
    )
}

/// How much of a session a call may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// One statement in a `read_only` connector's read-only transaction.
    RolledBack,
    /// Anything: a call on a writable connector, or a batch.
    Full {
        /// The call ran in a read-only transaction, still to be rolled back.
        read_only: bool,
    },
}

impl Reset {
    /// Whether the call ran in a read-only transaction that the reset rolls back.
    fn rolls_back(self) -> bool {
        matches!(self, Reset::RolledBack | Reset::Full { read_only: true })
    }
}

/// The reset round trip of a connector whose session settings are `settings`.
///
/// `ROLLBACK AND CHAIN` fails (SQLSTATE `NO_ACTIVE_TRANSACTION`) when no transaction
/// block is open, which on a read-only connector means that the call's statement ended
/// the transaction the call runs in; it succeeds on an open or a failed one. The chained
/// transaction is then rolled back too. Everything after runs outside any transaction
/// block, and the last statement returns the `Check` row.
///
/// The last statement also reseeds `random()` with `SERVER_SEED`: a `setseed` of one
/// call would otherwise choose the next call's random numbers, and neither `RESET ALL`
/// nor `DISCARD` reseeds.
pub fn reset_sql(reset: Reset, settings: &[(&'static str, String)]) -> String {
    let mut sql = String::new();
    if reset.rolls_back() {
        sql.push_str("ROLLBACK AND CHAIN; ROLLBACK; ");
    }
    if let Reset::Full { .. } = reset {
        sql.push_str(
            "CLOSE ALL; UNLISTEN *; SET SESSION AUTHORIZATION DEFAULT; RESET ROLE; RESET ALL; \
             DISCARD TEMP; DISCARD SEQUENCES; ",
        );
    }
    // Functions, aggregates and operators are schema-qualified: the search_path in
    // force here is the connector's, not necessarily one that finds pg_catalog first.
    sql.push_str(
        "SELECT pg_catalog.concat_ws(',', \
             pg_catalog.now() OPERATOR(pg_catalog.=) pg_catalog.statement_timestamp(), \
             pg_catalog.count(*) FILTER (WHERE from_sql), \
             pg_catalog.count(*) FILTER (WHERE NOT from_sql)), \
         pg_catalog.pg_advisory_unlock_all()",
    );
    // Settings are reapplied only after `RESET ALL`: a rollback leaves the session's own.
    let settings = if let Reset::Full { .. } = reset {
        settings
    } else {
        &[]
    };
    for (name, value) in settings {
        let _ = write!(
            sql,
            ", pg_catalog.set_config('{name}', {}, false)",
            literal(value)
        );
    }
    let _ = write!(
        sql,
        ", pg_catalog.setseed({SERVER_SEED}) FROM pg_catalog.pg_prepared_statements"
    );
    sql
}

/// A seed in `[-1, 1)` from 48 random bits of a version-4 UUID drawn by the server's
/// strong random source: the first 12 hex digits (before the version digit) as a
/// 48-bit integer, scaled.
pub(crate) const SERVER_SEED: &str = "('x' OPERATOR(pg_catalog.||) pg_catalog.left(\
    pg_catalog.replace(pg_catalog.gen_random_uuid()::pg_catalog.text, '-', ''), 12))\
    ::pg_catalog.bit(48)::pg_catalog.int8 OPERATOR(pg_catalog./) 140737488355328.0 \
    OPERATOR(pg_catalog.-) 1";

/// `value` as an escape-string literal (`E'…'`), which reads the same whatever
/// `standard_conforming_strings` is: only `\` and `'` are special in it.
fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    out.push_str("E'");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// What the reset found, from the first column of its last row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The reset ran in a transaction it started itself: no transaction block was left
    /// open by the call (`now() = statement_timestamp()`).
    pub outside_transaction: bool,
    /// Prepared statements made with SQL `PREPARE` (sqlx never makes these).
    pub prepared_by_sql: u64,
    /// Prepared statements made through the protocol (sqlx's).
    pub prepared_by_protocol: u64,
}

impl Check {
    /// Parses `t,0,3`.
    pub fn parse(text: &str) -> Option<Check> {
        let mut parts = text.split(',');
        let outside_transaction = match parts.next()? {
            "t" | "true" => true,
            "f" | "false" => false,
            _ => return None,
        };
        let prepared_by_sql = parts.next()?.parse().ok()?;
        let prepared_by_protocol = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Check {
            outside_transaction,
            prepared_by_sql,
            prepared_by_protocol,
        })
    }

    /// Whether the server's prepared statements differ from what sqlx's cache of
    /// `cached` statements expects: any made by SQL, or fewer than sqlx holds (some
    /// were deallocated under it, and executing them would fail). More than sqlx holds
    /// is normal with the cache off (sqlx then leaves its statements open).
    pub(crate) fn statements_tampered(&self, cached: usize) -> bool {
        self.prepared_by_sql > 0 || self.prepared_by_protocol < cached as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_break_out() {
        assert_eq!(literal("crm, public"), "E'crm, public'");
        assert_eq!(literal(r"a'b\c"), r"E'a''b\\c'");
        assert_eq!(literal(r"\'); DROP"), r"E'\\''); DROP'");
    }

    #[test]
    fn reset_rolls_back_only_read_only_sessions_and_reapplies_settings() {
        let settings = vec![
            ("statement_timeout", "31000".to_owned()),
            ("search_path", "it's".to_owned()),
        ];
        let ro = reset_sql(Reset::Full { read_only: true }, &settings);
        assert!(
            ro.starts_with("ROLLBACK AND CHAIN; ROLLBACK; CLOSE ALL;"),
            "{ro}"
        );
        assert!(
            ro.contains("pg_catalog.set_config('search_path', E'it''s', false)"),
            "{ro}"
        );
        let rolled_back = reset_sql(Reset::RolledBack, &settings);
        assert!(
            rolled_back.starts_with("ROLLBACK AND CHAIN; ROLLBACK; SELECT "),
            "{rolled_back}"
        );
        for full_only in ["RESET ALL", "DISCARD", "set_config"] {
            assert!(!rolled_back.contains(full_only), "{rolled_back}");
        }
        assert!(
            rolled_back.contains("pg_advisory_unlock_all()") && rolled_back.contains(SERVER_SEED),
            "{rolled_back}"
        );
        let rw = reset_sql(Reset::Full { read_only: false }, &settings);
        assert!(rw.starts_with("CLOSE ALL;"), "{rw}");
        assert!(
            rw.ends_with(
                "pg_catalog.setseed(('x' OPERATOR(pg_catalog.||) pg_catalog.left(pg_catalog.replace(\
                 pg_catalog.gen_random_uuid()::pg_catalog.text, '-', ''), 12))::pg_catalog.bit(48)\
                 ::pg_catalog.int8 OPERATOR(pg_catalog./) 140737488355328.0 OPERATOR(pg_catalog.-) 1) \
                 FROM pg_catalog.pg_prepared_statements"
            ),
            "{rw}"
        );
    }

    #[test]
    fn check_row_parses_and_flags_tampering() {
        let check = Check::parse("t,0,3").expect("parse");
        assert!(check.outside_transaction);
        assert!(!check.statements_tampered(3));
        assert!(check.statements_tampered(4), "DEALLOCATE under sqlx");
        assert!(!check.statements_tampered(0), "cache off");
        assert!(Check::parse("t,1,3").unwrap().statements_tampered(3));
        assert!(!Check::parse("f,0,0").unwrap().outside_transaction);
        assert_eq!(Check::parse("t,0"), None);
        assert_eq!(Check::parse("x,0,0"), None);
        assert_eq!(Check::parse("t,0,0,1"), None);
    }
}
