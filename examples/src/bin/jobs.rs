//! The platform's three jobs on the embedded SQLite default: an incremental import into
//! a SQLite profiles table, a cached segment, and a template with a lookup.
//!
//! ```sh
//! cargo run -p extdata-examples --bin jobs
//! ```

use std::sync::Arc;

use extdata::{QueryOptions, Statement};
use extdata_jobs::{Jobs, Lookups, Stop};

const CONFIG: &str = r#"
[[connectors]]
name = "crm"
type = "sqlite"
database = "crm.db"

[[accounts]]
id = "42"
connectors = ["crm"]

[[imports]]
name = "crm-customers"
account = "42"
connector = "crm"
query = "SELECT id, email, name, updated_at FROM customers WHERE updated_at >= :cursor ORDER BY updated_at"
key = "email"
cursor = { column = "updated_at", initial = "1970-01-01 00:00:00" }
mode = "add_and_update"
schedule = { cron = "0 */15 * * * *", timezone = "Europe/Moscow" }
batch_size = 5000
sink = { type = "sqlite", path = "profiles.db", table = "profiles" }

[[segments]]
name = "vip"
account = "42"
connector = "crm"
query = "SELECT email FROM orders GROUP BY email HAVING SUM(total) > 1000"
key = "email"
cache_ttl = "10m"

[[lookups]]
name = "last_order"
account = "42"
connector = "crm"
query = "SELECT id, total, created_at FROM orders WHERE email = :email ORDER BY created_at DESC LIMIT 1"
result = "row"
cache_ttl = "1m"
timeout = "500ms"
on_error = "fail"
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("extdata-jobs-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("extdata.toml");
    std::fs::write(&config, CONFIG)?;
    // The customer's database exists before its connector opens it (connectors never
    // create one unless told `mode=rwc`): an empty file is an empty SQLite database.
    std::fs::write(dir.join("crm.db"), "")?;
    let jobs = Arc::new(Jobs::from_path(&config)?);

    // A demo CRM database behind the connector.
    let crm = jobs.registry().source("42", "crm")?;
    for sql in [
        "CREATE TABLE customers (id INTEGER, email TEXT, name TEXT, updated_at TEXT)",
        "INSERT INTO customers VALUES (1, 'ann@example.com', 'Ann', '2024-05-01 10:00:00'), \
         (2, 'bob@example.com', 'Bob', '2024-05-01 11:00:00')",
        "CREATE TABLE orders (id INTEGER, email TEXT, total INTEGER, created_at TEXT)",
        "INSERT INTO orders VALUES (1, 'ann@example.com', 900, '2024-05-02'), \
         (2, 'ann@example.com', 400, '2024-05-03'), (3, 'bob@example.com', 50, '2024-05-03')",
    ] {
        crm.execute(&Statement::new(sql), &QueryOptions::default())
            .await?;
    }

    // 1. Import: the first run reads everything, the next only what changed.
    let first = jobs
        .run_import(Some("42"), "crm-customers", Stop::never(), &|_| {})
        .await?;
    crm.execute(
        &Statement::new(
            "UPDATE customers SET name = 'Robert', updated_at = '2024-05-04 09:00:00' WHERE id = 2",
        ),
        &QueryOptions::default(),
    )
    .await?;
    let second = jobs
        .run_import(Some("42"), "crm-customers", Stop::never(), &|_| {})
        .await?;
    println!(
        "import: first run read {} rows, second run read {} (updated {})",
        first.counts.read, second.counts.read, second.counts.updated
    );
    if let Some(schedule) = &jobs.import(Some("42"), "crm-customers")?.schedule
        && let Some(next) = schedule.next_after(chrono_now())
    {
        println!("import: next scheduled run at {next}");
    }

    // 2. Segment: members, cached in the state store for cache_ttl.
    let vip = jobs
        .evaluate_segment(Some("42"), "vip", false, &|_| {})
        .await?;
    let again = jobs
        .evaluate_segment(Some("42"), "vip", false, &|_| {})
        .await?;
    println!(
        "segment vip: {:?} (second time from the cache: {})",
        vip.keys, again.from_cache
    );

    // 3. Lookup in a template.
    let lookups = Lookups::new(jobs.clone(), 10_000);
    let text = extdata_jobs::render(
        lookups,
        Some("42".into()),
        "Hi {{ subscriber.name }}, your last order was {{ lookup(\"last_order\", email=subscriber.email).total }}.".into(),
        serde_json::json!({ "name": "Ann", "email": "ann@example.com" }),
    )
    .await?;
    println!("render: {text}");

    jobs.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
