//! The checks of the cargo-fuzz targets (`fuzz/src/lib.rs`), run on stable in CI with
//! bounded random inputs, so they keep compiling and keep holding between fuzz runs.

#[path = "../../../fuzz/src/lib.rs"]
#[allow(unreachable_pub, dead_code)]
mod checks;

use extdata_reliability::hostile_string;
use proptest::prelude::*;

/// proptest's defaults, which read `PROPTEST_CASES` (256 cases when it is not set).
fn cases() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid file to start from, so that edits land in the validator, not only in the
/// TOML parser.
const SEED: &str = r#"
[[connectors]]
name = "crm"
type = "postgresql"
host = "127.0.0.1"
port = 5432
options = "application_name=x"
pool = { max_size = 4, acquire_timeout = "2s" }
ssl = { enabled = true, verify = "full" }

[[accounts]]
id = "42"
connectors = ["crm"]
"#;

/// The seed with a few bytes replaced, inserted or removed.
fn edited_seed() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6).prop_map(
        |edits| {
            let mut bytes = SEED.as_bytes().to_vec();
            for (at, byte, how) in edits {
                let i = at.index(bytes.len().max(1));
                match how {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 => bytes.insert(i.min(bytes.len()), byte),
                    _ if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ => {}
                }
            }
            bytes
        },
    )
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn config_file_check_holds(data in prop_oneof![edited_seed(), any::<Vec<u8>>()]) {
        checks::config_file(&data);
    }

    #[test]
    fn statement_check_holds(selector in any::<u8>(), sql in hostile_string()) {
        let mut data = vec![selector];
        data.extend_from_slice(sql.as_bytes());
        checks::statement(&data);
    }

    #[test]
    fn hive_literal_check_holds(text in hostile_string()) {
        checks::hive_literal(text.as_bytes());
    }

    #[test]
    fn clickhouse_literal_check_holds(
        data in prop_oneof![hostile_string().prop_map(String::into_bytes), any::<Vec<u8>>()],
    ) {
        checks::clickhouse_literal(&data);
    }

    #[test]
    fn decimal_check_holds(
        data in prop_oneof![
            any::<Vec<u8>>(),
            "[+-]?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][+-]?[0-9]{1,20})?".prop_map(String::into_bytes),
        ],
    ) {
        checks::decimal(&data);
    }
}
