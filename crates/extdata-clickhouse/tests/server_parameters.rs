//! Which way values reach each server: on 26.x as server-side parameters
//! (`{v:String}` in the SQL, the value only in the request's `param_v` field), on 18.16
//! rendered client-side as `unhex('…')` — never as their text. Seen on the wire (a
//! recording proxy on loopback) and from the server's own `system.processes`. And
//! hostile and huge values come back exactly both ways.

#[macro_use]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use extdata_core::{ExternalSource, QueryOptions, Statement, Value};
use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_every_server!(
    the_request_carries_placeholders_or_hex_never_the_value,
    server_parameters_never_renders_literals,
    arrays_tuples_and_maps_are_parameters_or_hex,
    the_server_sees_parameters_or_hex,
    hostile_and_huge_values_come_back_exactly,
);

/// A value with everything that ends or starts a string, identifier or comment.
const VALUE: &str = "it's */ a `pii-7e5a` \\ value\0 -- \"x\" /* #";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The text of the running queries that hold `marker` (other than the asking one).
async fn running_texts(source: &dyn ExternalSource, marker: &str) -> Vec<String> {
    let statement = Statement::new(
        "SELECT query FROM system.processes WHERE position(query, :marker) > 0 \
         AND position(query, 'system.processes') = 0",
    )
    .bind("marker", marker);
    let result = source
        .query(&statement, &QueryOptions::default())
        .await
        .expect("system.processes");
    result
        .rows
        .iter()
        .filter_map(|row| match row.get(0) {
            Some(Value::Text(text)) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// A proxy on 127.0.0.1 to `port` that records what clients send; its port and the
/// record. It serves until the test's runtime ends.
async fn recording_proxy(port: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                else {
                    return;
                };
                let (mut client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let up = async {
                    let mut buffer = vec![0u8; 64 * 1024];
                    loop {
                        let n = client_read.read(&mut buffer).await?;
                        if n == 0 {
                            return server_write.shutdown().await;
                        }
                        record.lock().unwrap().extend_from_slice(&buffer[..n]);
                        server_write.write_all(&buffer[..n]).await?;
                    }
                };
                let down = tokio::io::copy(&mut server_read, &mut client_write);
                let _ = tokio::join!(up, down);
            });
        }
    });
    (proxy_port, sent)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What a source on `server` (through a recording proxy; `never`: with
/// `server_parameters = never`) sends for `SELECT :v AS v, length(:v) AS n`.
async fn sent_for(settings: &support::Settings, never: bool) -> Vec<u8> {
    let statement = Statement::new("SELECT :v AS v, length(:v) AS n").bind("v", VALUE);
    let (row, sent) = recorded(settings, never, &statement).await;
    assert_eq!(
        row,
        [Value::Text(VALUE.into()), Value::U64(VALUE.len() as u64)]
    );
    sent
}

/// The first row of `statement` run by a source on `settings`' server through a
/// recording proxy (`never`: with `server_parameters = never`), and what it sent.
async fn recorded(
    settings: &support::Settings,
    never: bool,
    statement: &Statement,
) -> (Vec<Value>, Vec<u8>) {
    let (port, sent) = recording_proxy(settings.port).await;
    let mut config = settings
        .http("ch-wire")
        .with_host("127.0.0.1")
        .with_port(port);
    if never {
        config = config.with_option("server_parameters", "never");
    }
    let source = support::build(&config).unwrap();
    let result = source
        .query(statement, &QueryOptions::default())
        .await
        .expect("through the proxy");
    let row = result.rows[0].values().to_vec();
    (row, sent.lock().unwrap().clone())
}

/// The client-side rendering: the value as hex digits only, no parameter field.
fn assert_rendered_as_hex(sent: &[u8]) {
    let hex = hex(VALUE.as_bytes());
    assert_eq!(find(sent, b"pii-7e5a"), None, "the value's text was sent");
    assert_eq!(find(sent, b"param_"), None, "a parameter field was sent");
    let rendered = format!("SELECT unhex('{hex}') AS v, length(unhex('{hex}')) AS n");
    assert!(find(sent, rendered.as_bytes()).is_some());
}

async fn the_request_carries_placeholders_or_hex_never_the_value(server: Server) {
    let Some((settings, _)) = support::source_of(server).await else {
        return;
    };
    let sent = sent_for(&settings, false).await;
    let sql = b"SELECT {v:String} AS v, length({v:String}) AS n";
    let hex = hex(VALUE.as_bytes());
    match server {
        Server::V26 => {
            let at_sql = find(&sent, sql).expect("the SQL with its placeholders was sent");
            let at_param = find(&sent, b"name=\"param_v\"").expect("a param_v field was sent");
            assert!(at_sql < at_param);
            // The value (as the crate escapes it for the server) only in its own field,
            // sent once though the SQL uses it twice; nowhere as hex.
            let escaped = br"it\'s */ a \`pii-7e5a\` \\ value";
            assert_eq!(find(&sent[..at_param], b"pii-7e5a"), None);
            assert!(find(&sent[at_param..], escaped).is_some());
            assert_eq!(sent.windows(8).filter(|w| w == b"pii-7e5a").count(), 1);
            assert_eq!(find(&sent, hex.as_bytes()), None);
        }
        Server::V18 => assert_rendered_as_hex(&sent),
    }
}

/// An array, a tuple and a map of hostile strings and NULLs: on 26.x `{name:Type}`
/// placeholders of their joined types, each value once in its own `param_` field in the
/// server's text format for the type (strings quoted and escaped); on 18.16 literals of
/// hex digits. Never the text in the SQL; back exactly either way.
async fn arrays_tuples_and_maps_are_parameters_or_hex(server: Server) {
    let Some((settings, _)) = support::source_of(server).await else {
        return;
    };
    let text = Value::Text(VALUE.into());
    let array = Value::Array(vec![text.clone(), Value::Null]);
    let tuple = Value::Tuple(vec![Value::I64(7), text.clone()]);
    let nested = Value::Array(vec![Value::Array(vec![text.clone()]), Value::Array(vec![])]);
    let mut values = vec![array.clone(), tuple.clone(), nested.clone()];
    let mut statement = Statement::new("SELECT :a AS a, :t AS t, :n AS n, :a AS again")
        .bind("a", array)
        .bind("t", tuple)
        .bind("n", nested);
    if server.modern() {
        let map = Value::Map(vec![(
            text.clone(),
            Value::Array(vec![Value::I64(1), Value::Null]),
        )]);
        statement = Statement::new(format!("{} , :m AS m", statement.sql()))
            .bind("a", values[0].clone())
            .bind("t", values[1].clone())
            .bind("n", values[2].clone())
            .bind("m", map.clone());
        values.push(map);
    }
    let (row, sent) = recorded(&settings, false, &statement).await;
    let mut expected = values.clone();
    expected.insert(3, values[0].clone());
    assert_eq!(row, expected);
    let hex = hex(VALUE.as_bytes());
    // The value as a quoted string inside a composite's text.
    let quoted = r#"'it\'s */ a `pii-7e5a` \\ value\0 -- "x" /* #'"#;
    match server {
        Server::V26 => {
            let sql = "SELECT {a:Array(Nullable(String))} AS a, {t:Tuple(Int64, String)} AS t, \
                       {n:Array(Array(String))} AS n, {a:Array(Nullable(String))} AS again , \
                       {m:Map(String, Array(Nullable(Int64)))} AS m";
            let at_sql = find(&sent, sql.as_bytes()).expect("the SQL with its placeholders");
            let fields = [
                ("param_a", format!("[{quoted},NULL]")),
                ("param_t", format!("(7,{quoted})")),
                ("param_n", format!("[[{quoted}],[]]")),
                ("param_m", format!("{{{quoted}:[1,NULL]}}")),
            ];
            let mut first_field = sent.len();
            for (field, content) in fields {
                let header = format!("name=\"{field}\"\r\n\r\n{content}\r\n");
                let at = find(&sent, header.as_bytes())
                    .unwrap_or_else(|| panic!("{field} with {content}"));
                assert!(at_sql < at);
                first_field = first_field.min(at);
            }
            // The value only in the parameter fields, once each (`a` is used twice).
            assert_eq!(find(&sent[..first_field], b"pii-7e5a"), None);
            assert_eq!(sent.windows(8).filter(|w| w == b"pii-7e5a").count(), 4);
            assert_eq!(find(&sent, hex.as_bytes()), None);
        }
        Server::V18 => {
            assert_eq!(find(&sent, b"pii-7e5a"), None, "the value's text was sent");
            assert_eq!(find(&sent, b"param_"), None, "a parameter field was sent");
            let rendered = format!(
                "SELECT [unhex('{hex}'), NULL] AS a, tuple(toInt64(7), unhex('{hex}')) AS t, \
                 [[unhex('{hex}')], []] AS n"
            );
            assert!(find(&sent, rendered.as_bytes()).is_some());
        }
    }
}

/// `server_parameters = never` takes the client-side path on any server.
async fn server_parameters_never_renders_literals(server: Server) {
    let Some((settings, _)) = support::source_of(server).await else {
        return;
    };
    assert_rendered_as_hex(&sent_for(&settings, true).await);
}

/// What the server keeps in `system.processes` while the query runs. 26.x puts each
/// parameter's value into the text it keeps there, as its own quoted literal (so the
/// placeholders are not to be seen there either way); the client's `unhex('…')` would
/// show as such.
async fn the_server_sees_parameters_or_hex(server: Server) {
    let Some((_, source)) = support::source_of(server).await else {
        return;
    };
    let marker = extdata_conformance::support::unique_name("params");
    // The marker is a literal inside the query: 18.16 keeps only the parsed part.
    let statement = Statement::new(format!(
        "SELECT sleep(0.5), :v AS v, length(:v) AS n, '{marker}' AS m FROM numbers(8) \
         SETTINGS max_block_size = 1"
    ))
    .bind("v", VALUE);
    let task = tokio::spawn({
        let source = source.clone();
        async move {
            source
                .query(
                    &statement,
                    &QueryOptions::default().with_timeout(Duration::from_secs(30)),
                )
                .await
        }
    });
    let mut seen = Vec::new();
    while !task.is_finished() && seen.is_empty() {
        seen = running_texts(source.as_ref(), &marker).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let result = task.await.unwrap().expect("the slow query");
    assert_eq!(result.rows.len(), 8);
    assert_eq!(result.rows[0].get(1), Some(&Value::Text(VALUE.into())));
    assert_eq!(result.rows[0].get(2), Some(&Value::U64(VALUE.len() as u64)));
    let text = seen
        .first()
        .unwrap_or_else(|| panic!("the query was never seen in system.processes"));
    let hex = hex(VALUE.as_bytes());
    match server {
        Server::V26 => {
            // The server's own literal of the parameter: its escaping (`\'`, `\0`), not
            // the client's `unhex`.
            let literal = r#"'it\'s */ a `pii-7e5a` \\ value\0 -- "x" /* #'"#;
            assert!(
                text.contains(&format!(
                    "SELECT sleep(0.5), {literal} AS v, length({literal}) AS n"
                )),
                "26.x: {text}"
            );
            assert!(!text.contains(&hex) && !text.contains("unhex"), "{text}");
        }
        Server::V18 => {
            assert!(
                !text.contains("pii-7e5a"),
                "the value is in the server's text: {text}"
            );
            assert!(
                text.contains(&format!("unhex('{hex}')")),
                "18.16: the value as hex digits: {text}"
            );
        }
    }
    eprintln!("{}: the server ran `{text}`", server.kind());
}

async fn hostile_and_huge_values_come_back_exactly(server: Server) {
    let Some((_, source)) = support::source_of(server).await else {
        return;
    };
    let unit = "'\\`*/--#\0\r\n\t\"é🎉$$?:v";
    let mut values: Vec<String> = vec![
        String::new(),
        unit.to_owned(),
        "\\".repeat(1001),
        "'".repeat(1001),
    ];
    // ~64 KiB: a server parameter on 26.x (the server takes form fields up to 128 KiB);
    // ~1 MiB and ~4 MiB: literals on both, far past the server's default max_query_size
    // (256 KiB) as `unhex('…')`.
    for size in [64 << 10, 1 << 20, 4 << 20] {
        values.push(unit.repeat(size / unit.len()));
    }
    for value in values {
        let what = format!("{} bytes", value.len());
        let [echoed, length] =
            support::echo_with_tail(source.as_ref(), "length", value.clone(), &what).await;
        // Not assert_eq!: a failure would print megabytes.
        assert!(echoed == Value::Text(value.clone()), "{what}");
        assert_eq!(length, Value::U64(value.len() as u64), "{what}");
    }
}
