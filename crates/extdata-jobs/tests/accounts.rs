//! Accounts are namespaces: two accounts use the same import, segment, sync and lookup
//! names in one file, and their runs, state, caches and calls stay apart; without an
//! account, a name that several accounts use is an error naming them.

use std::sync::Arc;

use extdata::ErrorKind;
use extdata_jobs::{Jobs, Lookups, Stop};
use serde_json::{Map, Value as Json, json};

mod support;
use support::*;

/// Account 42 (`crm`) and account 7 (`other`) each with an import `orders`, a segment
/// and a sync `vip` and a lookup `last_order`, the same SQL over their own orders.
fn both_accounts() -> String {
    let mut body = String::new();
    for (owner, file) in [(CRM, "orders-42.csv"), (OTHER, "orders-7.csv")] {
        body += &orders_import_of(
            owner,
            "orders",
            "id, email, total, created_at",
            &format!("sink = {{ type = \"csv\", path = \"{file}\" }}"),
        );
        body += &config_entry(
            "segments",
            "vip",
            owner,
            "SELECT email FROM orders WHERE total > 1000 ORDER BY email",
            "key = \"email\"\ncache_ttl = \"10m\"",
        );
        body += &format!(
            "\n[[segment_sync]]\nsegment = \"vip\"\naccount = \"{}\"\n\
             on_add = \"INSERT INTO vip_flags (email) VALUES (:key)\"\n",
            owner.0
        );
        body += &config_entry(
            "lookups",
            "last_order",
            owner,
            "SELECT id, total FROM orders WHERE email = :email ORDER BY created_at DESC LIMIT 1",
            "cache_ttl = \"1m\"",
        );
    }
    body
}

/// The jobs of [`both_accounts`] over their seeded orders (42: the usual four; 7: two
/// big spenders), each database with a `vip_flags` table, their calls recorded.
async fn two_accounts(fixture: &Fixture) -> (Arc<Jobs>, Calls) {
    let jobs = fixture.seeded(&both_accounts()).await;
    seed_orders_of(&jobs, OTHER, "(1,'a@x.io',5000,1),(2,'z@x.io',3000,2)").await;
    for (account, connector) in [CRM, OTHER] {
        let source = jobs.registry().source(account, connector).unwrap();
        sql(source.as_ref(), "CREATE TABLE vip_flags (email TEXT)").await;
    }
    let (jobs, calls) = recording(jobs);
    (Arc::new(jobs), calls)
}

async fn run(jobs: &Jobs, account: &str, name: &str) -> extdata_jobs::ImportSummary {
    jobs.run_import(Some(account), name, Stop::never(), &|_| {})
        .await
        .unwrap_or_else(|e| panic!("import `{name}` of {account}: {e}"))
}

fn email(address: &str) -> Map<String, Json> {
    let mut params = Map::new();
    params.insert("email".to_owned(), json!(address));
    params
}

#[tokio::test]
async fn two_accounts_use_the_same_names_and_keep_their_state_apart() {
    let fixture = Fixture::new();
    let (jobs, calls) = two_accounts(&fixture).await;

    // Imports: each account's run ids start at 1, its cursor and sink are its own.
    let first = run(&jobs, "42", "orders").await;
    assert_eq!((first.run, first.counts.inserted), (1, 4));
    let other = run(&jobs, "7", "orders").await;
    assert_eq!((other.run, other.counts.inserted), (1, 2));
    assert_eq!(other.cursor, Some(extdata::Value::I64(2)));
    let second = run(&jobs, "42", "orders").await;
    assert_eq!(second.run, 2);
    assert_eq!(second.cursor, Some(extdata::Value::I64(4)));
    // Account 7's checkpoint is at 2, not at 42's 4: a row at 3 is read.
    let source = jobs.registry().source("7", "other").unwrap();
    sql(
        source.as_ref(),
        "INSERT INTO orders VALUES (3,'y@x.io',1,3)",
    )
    .await;
    let again = run(&jobs, "7", "orders").await;
    assert_eq!((again.run, again.counts.inserted), (2, 1));
    let lines = |file: &str| {
        std::fs::read_to_string(fixture.path(file))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!((lines("orders-42.csv"), lines("orders-7.csv")), (5, 4));
    let ids = |account: &'static str| {
        let jobs = jobs.clone();
        async move {
            jobs.history(Some(account), "orders", 10)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.id, r.counts.read))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("42").await, [(2, 1), (1, 4)]);
    assert_eq!(ids("7").await, [(2, 2), (1, 2)]);

    // Segments: the same name, each account's members, each cached apart.
    for (account, members) in [("42", vec!["c@x.io"]), ("7", vec!["a@x.io", "z@x.io"])] {
        for cached in [false, true] {
            let found = jobs
                .evaluate_segment(Some(account), "vip", false, &|_| {})
                .await
                .unwrap();
            assert_eq!(found.keys, members);
            assert_eq!(found.from_cache, cached);
            assert_eq!(found.account, account);
        }
    }
    // Syncs: each writes its own members, once.
    let synced = jobs.sync_segment(Some("42"), "vip").await.unwrap();
    assert_eq!(synced.added, 1);
    let synced = jobs.sync_segment(Some("7"), "vip").await.unwrap();
    assert_eq!(synced.added, 2);
    assert_eq!(jobs.sync_segment(Some("7"), "vip").await.unwrap().added, 0);
    assert_eq!(
        rows(
            source.as_ref(),
            "SELECT email FROM vip_flags ORDER BY email"
        )
        .await,
        ["a@x.io", "z@x.io"]
    );

    // Lookups: the same name and parameters, each account's row (no shared cache entry).
    let lookups = Lookups::new(jobs.clone(), 100);
    for _ in 0..2 {
        let mine = lookups
            .get(Some("42"), "last_order", &email("a@x.io"))
            .await
            .unwrap();
        let theirs = lookups
            .get(Some("7"), "last_order", &email("a@x.io"))
            .await
            .unwrap();
        assert_eq!(
            (mine["total"].clone(), theirs["total"].clone()),
            (json!(700), json!(5000))
        );
    }

    // Every call reached the account's own connector, made for that account.
    let calls = calls.lock().unwrap().clone();
    assert!(!calls.is_empty());
    for (connector, call) in &calls {
        let account = if connector == "crm" { "42" } else { "7" };
        assert!(
            call.ends_with(&format!(" for {account}")),
            "{connector}: {call}"
        );
    }
    let count = |call: &str| calls.iter().filter(|(_, c)| c == call).count();
    // Two runs each, one segment query each (then its cache) and one lookup query each.
    assert_eq!(
        (count("stream for 42"), count("stream for 7")),
        (3, 3),
        "{calls:?}"
    );
    assert_eq!(
        (count("query for 42"), count("query for 7")),
        (1, 1),
        "{calls:?}"
    );
    jobs.close().await;
}

#[tokio::test]
async fn without_an_account_a_name_several_accounts_use_is_an_error_naming_them() {
    let fixture = Fixture::new();
    let (jobs, _) = two_accounts(&fixture).await;
    let ambiguous = |error: extdata::Error, what: &str| {
        assert_eq!(error.kind(), ErrorKind::Config, "{error}");
        assert_contains_all(
            &error.to_string(),
            &[&format!("{what} exists in several accounts"), "`42`", "`7`"],
        );
    };
    ambiguous(
        jobs.run_import(None, "orders", Stop::never(), &|_| {})
            .await
            .unwrap_err(),
        "import `orders`",
    );
    ambiguous(
        jobs.history(None, "orders", 5).await.unwrap_err(),
        "import `orders`",
    );
    ambiguous(
        jobs.evaluate_segment(None, "vip", false, &|_| {})
            .await
            .unwrap_err(),
        "segment `vip`",
    );
    ambiguous(
        jobs.sync_segment(None, "vip").await.unwrap_err(),
        "segment sync `vip`",
    );
    let lookups = Lookups::new(jobs.clone(), 100);
    ambiguous(
        lookups
            .get(None, "last_order", &email("a@x.io"))
            .await
            .unwrap_err(),
        "lookup `last_order`",
    );
    // Nothing ran.
    assert!(
        jobs.history(Some("42"), "orders", 5)
            .await
            .unwrap()
            .is_empty()
    );
    // An unknown name and another account's entry answer as before.
    assert!(
        jobs.import(None, "nope")
            .unwrap_err()
            .to_string()
            .contains("no import named `nope`")
    );
    let single = fixture.jobs(&orders_import(
        "solo",
        "id, created_at",
        r#"sink = { type = "csv", path = "solo.csv" }"#,
    ));
    assert_eq!(single.import(None, "solo").unwrap().account, "42");
    assert_eq!(
        single.import(Some("7"), "solo").unwrap_err().kind(),
        ErrorKind::Forbidden
    );
    jobs.close().await;
}

#[test]
fn names_are_unique_within_an_account_and_a_sync_names_its_segments_account() {
    let segment = |owner| {
        config_entry(
            "segments",
            "vip",
            owner,
            "SELECT email FROM orders",
            "key = \"email\"",
        )
    };
    let problems = config_problems(&format!(
        "{SQLITE_CONNECTORS}{}{}{}\n[[segment_sync]]\nsegment = \"vip\"\non_add = \"INSERT INTO f VALUES (:key)\"\n\
         \n[[segment_sync]]\nsegment = \"vip\"\naccount = \"8\"\non_add = \"INSERT INTO f VALUES (:key)\"\n",
        segment(CRM),
        segment(OTHER),
        segment(OTHER),
    ));
    assert_contains_all(
        &problems,
        &[
            // The same name twice in one account; once in another account is fine.
            "vip (account 7): name: is used by another segment of account `7`; names must be unique within an account",
            "segment_sync[0]: account: is missing: accounts `42`, `7` each have a segment `vip`; say whose",
            "segment: unknown segment `vip` of account `8`",
        ],
    );
    assert!(!problems.contains("account 42"), "{problems}");
    assert_eq!(problems.lines().count(), 3, "{problems}");
}
