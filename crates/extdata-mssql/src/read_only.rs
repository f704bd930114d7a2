//! `read_only = true` on SQL Server: a strict check of the statement before it runs.
//!
//! SQL Server has no read-only session or transaction that a batch cannot leave (a
//! batch may `COMMIT` and go on), and `ApplicationIntent=ReadOnly` only routes to a
//! readable secondary. So a read-only connector runs only statements that start with
//! `SELECT` or `WITH` and contain none of T-SQL's reserved words that write, run code,
//! change the session or leave the statement: the words are reserved, so outside
//! string literals, `[quoted]`/`"quoted"` identifiers and comments (found by the
//! shared lexer, [`Dialect::code_ranges`]) they can only be keywords. A stored
//! procedure cannot be called either (a batch's first statement may name one without
//! `EXEC`, which the `SELECT`/`WITH` start rules out). What this cannot see: functions
//! an administrator defined that write (CLR or extended procedures called from a
//! `SELECT`): a login that may only read (`db_datareader`) stays the strongest tool.

use extdata_core::Dialect;

/// Reserved words that write data or schema, run other code, control transactions or
/// change session state.
const REFUSED: &[&str] = &[
    "ALTER",
    "BACKUP",
    "BEGIN",
    "BULK",
    "CHECKPOINT",
    "COMMIT",
    "CREATE",
    "DBCC",
    "DEALLOCATE",
    "DELETE",
    "DENY",
    "DISK",
    "DROP",
    "DUMP",
    "EXEC",
    "EXECUTE",
    "GRANT",
    "INSERT",
    "INTO",
    "KILL",
    "LOAD",
    "MERGE",
    "OPEN",
    "OPENDATASOURCE",
    "OPENQUERY",
    "OPENROWSET",
    "RECONFIGURE",
    "RESTORE",
    "REVERT",
    "REVOKE",
    "ROLLBACK",
    "SAVE",
    "SET",
    "SETUSER",
    "SHUTDOWN",
    "TRAN",
    "TRANSACTION",
    "TRUNCATE",
    "UPDATE",
    "UPDATETEXT",
    "USE",
    "WRITETEXT",
];

/// Why `sql` may not run on a read-only connector, or `None` when it may.
pub(crate) fn refusal(sql: &str) -> Option<String> {
    let words = code_words(sql);
    match words.first().map(|w| w.to_ascii_uppercase()) {
        Some(first) if first == "SELECT" || first == "WITH" => {}
        Some(first) => {
            return Some(format!(
                "the connector is read-only: only statements that start with SELECT or WITH \
                 run (this one starts with {first})"
            ));
        }
        None => return Some("the connector is read-only: the statement is empty".into()),
    }
    for (i, word) in words.iter().enumerate() {
        let upper = word.to_ascii_uppercase();
        if REFUSED.contains(&upper.as_str()) {
            return Some(format!(
                "the connector is read-only: {upper} is not allowed in its statements"
            ));
        }
        // `NEXT VALUE FOR seq` advances a sequence.
        if upper == "NEXT"
            && words
                .get(i + 1)
                .is_some_and(|w| w.eq_ignore_ascii_case("VALUE"))
        {
            return Some(
                "the connector is read-only: NEXT VALUE FOR advances a sequence".to_owned(),
            );
        }
    }
    None
}

/// The bare words of `sql` outside literals, quoted identifiers and comments.
/// Variables (`@name`) and temporary-object names (`#name`) are not words.
fn code_words(sql: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for range in Dialect::MsSql.code_ranges(sql) {
        let code = &sql[range];
        let bytes = code.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_alphabetic() || b == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let prefixed = start > 0 && matches!(bytes[start - 1], b'@' | b'#' | b'$');
                if !prefixed {
                    words.push(&code[start..i]);
                }
            } else if b.is_ascii_digit() {
                // A number (or `1e5`): not a word.
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
            } else {
                i += 1;
            }
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "select TOP 10 id, name FROM dbo.customers WHERE email = @P1",
            "WITH x AS (SELECT 1 AS n) SELECT n FROM x",
            "SELECT 'INSERT INTO t VALUES (1); COMMIT' AS text",
            "SELECT [update], [delete], \"insert\" FROM t -- DROP TABLE t\n",
            "SELECT 1 /* EXEC xp_cmdshell 'dir' */",
            "SELECT @set, #into FROM t",
            "SELECT updated_at, inserted_by, created, executor FROM t",
            "SELECT 1e5, 0x1F",
            "  \n-- a comment first\nSELECT 1;",
        ] {
            assert_eq!(refusal(sql), None, "{sql}");
        }
    }

    #[test]
    fn writes_code_and_session_changes_are_refused() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "DELETE FROM t",
            "MERGE t USING s ON 1 = 1 WHEN MATCHED THEN DELETE;",
            "TRUNCATE TABLE t",
            "DROP TABLE t",
            "CREATE TABLE t (a int)",
            "EXEC sp_configure 'x', 1",
            "xp_cmdshell 'dir'",
            "sp_executesql N'DELETE FROM t'",
            "SELECT 1; COMMIT; DELETE FROM t",
            "SELECT 1 INSERT INTO t VALUES (1)",
            "SELECT * INTO copy_of_t FROM t",
            "SELECT 1 EXECUTE('DELETE FROM t')",
            "SELECT * FROM OPENROWSET(BULK 'c:\\x', SINGLE_CLOB) AS x",
            "SELECT * FROM OPENQUERY(linked, 'UPDATE t SET a = 1')",
            "SELECT NEXT VALUE FOR dbo.seq",
            "SELECT 1 SET CONTEXT_INFO 0x01",
            "SELECT 1; SET IDENTITY_INSERT t ON",
            "SELECT 1 BEGIN TRAN",
            "WITH x AS (SELECT 1 AS n) DELETE FROM t",
            "WITH x AS (SELECT 1 AS n) UPDATE t SET a = 1",
            "SELECT 1 USE master",
            "SELECT 1 GRANT SELECT ON t TO public",
            "SELECT 1 DBCC FREEPROCCACHE",
            "SELECT 1 KILL 55",
            "SELECT 1 WAITFOR DELAY '0:0:1' SHUTDOWN",
            "/* SELECT */ DELETE FROM t",
            "-- SELECT\nDELETE FROM t",
            "SeLeCt 1 dElEtE FROM t",
            "",
            "   ",
        ] {
            assert!(refusal(sql).is_some(), "{sql}");
        }
    }

    #[test]
    fn refusals_name_the_word() {
        let why = refusal("SELECT 1; DELETE FROM t").unwrap();
        assert!(why.contains("read-only") && why.contains("DELETE"), "{why}");
        let why = refusal("xp_cmdshell 'dir'").unwrap();
        assert!(why.contains("SELECT or WITH"), "{why}");
    }
}
