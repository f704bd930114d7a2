//! The live servers of `scripts/services.sh` (settings from `EXTDATA_TEST_*`) and the
//! standard benchmark table on each.

use std::time::Duration;

use extdata::{ConnectorConfig, DbKind, PoolConfig, Scalar};

/// A server the benchmarks run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Postgres,
    Mysql,
    ClickHouse,
    Hive,
}

/// Where a server is and who to log in as; its `Debug` leaves the password out.
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) database: String,
    pub(crate) user: String,
    pub(crate) password: String,
}

extdata::debug_fields!(Server |server| { host, port, database, user, .. });

/// sqlx's connect options of type `$options` (`PgConnectOptions`, `MySqlConnectOptions`)
/// for the [`Server`] `$server`, TLS off (`$no_tls`): the raw drivers compared with.
macro_rules! sqlx_options {
    ($options:ty, $server:expr, $no_tls:expr) => {
        <$options>::new()
            .host(&$server.host)
            .port($server.port)
            .username(&$server.user)
            .password(&$server.password)
            .database(&$server.database)
            .ssl_mode($no_tls)
    };
}
pub(crate) use sqlx_options;

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| {
        format!("{name} is not set: run `bash scripts/services.sh` and `set -a; . .services/env`")
    })
}

impl Backend {
    /// Parses `pg`, `postgres`, `mysql`, `mariadb`, `clickhouse`, `hive`.
    pub(crate) fn parse(name: &str) -> Result<Backend, String> {
        match name {
            "pg" | "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::Mysql),
            "clickhouse" | "ch" => Ok(Backend::ClickHouse),
            "hive" => Ok(Backend::Hive),
            other => Err(format!(
                "unknown backend `{other}` (pg, mysql, clickhouse, hive)"
            )),
        }
    }

    /// The short name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "pg",
            Backend::Mysql => "mysql",
            Backend::ClickHouse => "clickhouse",
            Backend::Hive => "hive",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Backend::Postgres => "EXTDATA_TEST_POSTGRES",
            Backend::Mysql => "EXTDATA_TEST_MYSQL",
            // EXTDATA_BENCH_CLICKHOUSE=26: the 26.x server of `clickhouse26`.
            Backend::ClickHouse
                if std::env::var("EXTDATA_BENCH_CLICKHOUSE").as_deref() == Ok("26") =>
            {
                "EXTDATA_TEST_CLICKHOUSE26"
            }
            Backend::ClickHouse => "EXTDATA_TEST_CLICKHOUSE",
            Backend::Hive => "EXTDATA_TEST_HIVE",
        }
    }

    /// The port of the server's native TCP protocol (the one `clickhouse-client` speaks):
    /// `<prefix>_TCP_PORT` when set, 9000 otherwise.
    pub(crate) fn native_tcp_port(self) -> Result<u16, String> {
        let name = format!("{}_TCP_PORT", self.prefix());
        match std::env::var(&name) {
            Err(_) => Ok(9000),
            Ok(port) => port
                .parse()
                .map_err(|_| format!("{name} = `{port}` is not a port")),
        }
    }

    /// A `[secrets]` section granting the `EXTDATA_TEST_` variables and a `[[connectors]]`
    /// section for the server, named `name`, with a pool of `pool` connections, for an
    /// `extdata` configuration file. The password stays in the environment: the file names
    /// its variable.
    pub(crate) fn connector_toml(self, name: &str, pool: u32) -> Result<String, String> {
        let server = self.server()?;
        let kind = match self {
            Backend::Postgres => "postgresql",
            Backend::Mysql => "mysql",
            Backend::ClickHouse => "clickhouse",
            Backend::Hive => "hive",
        };
        Ok(format!(
            "[secrets]\nenv_prefixes = [\"EXTDATA_TEST_\"]\n\n\
             [[connectors]]\nname = \"{name}\"\ntype = \"{kind}\"\n\
             host = \"{}\"\nport = {}\ndatabase = \"{}\"\nusername = \"{}\"\n\
             password = {{ env = \"{}_PASSWORD\" }}\npool = {{ max_size = {pool} }}\n",
            server.host,
            server.port,
            server.database,
            server.user,
            self.prefix(),
        ))
    }

    /// The server's settings from the environment.
    pub(crate) fn server(self) -> Result<Server, String> {
        let prefix = self.prefix();
        let port = env(&format!("{prefix}_PORT"))?;
        Ok(Server {
            host: env(&format!("{prefix}_HOST"))?,
            port: port
                .parse()
                .map_err(|_| format!("{prefix}_PORT = `{port}` is not a port"))?,
            database: env(&format!("{prefix}_DATABASE"))?,
            user: env(&format!("{prefix}_USER"))?,
            password: env(&format!("{prefix}_PASSWORD"))?,
        })
    }

    /// An extdata connector for the server, with a pool of `pool_size` connections.
    pub(crate) fn connector(self, pool_size: i64) -> Result<ConnectorConfig, String> {
        let server = self.server()?;
        let kind = match self {
            Backend::Postgres => DbKind::Postgres,
            Backend::Mysql => DbKind::MySql,
            Backend::ClickHouse => DbKind::ClickHouse,
            Backend::Hive => DbKind::Hive,
        };
        let mut config = ConnectorConfig::new(format!("bench-{}", self.name()), kind)
            .with_host(server.host)
            .with_port(server.port)
            .with_database(server.database)
            .with_username(server.user)
            .with_password(server.password)
            .with_connect_timeout(Duration::from_secs(30))
            .with_query_timeout(Duration::from_secs(600))
            .with_pool(PoolConfig {
                max_size: Some(Scalar::Int(pool_size)),
                ..PoolConfig::default()
            });
        if self == Backend::Hive {
            // Without incremental collect the Spark Thrift server holds the whole result
            // in its heap before the first row (1M standard rows: OutOfMemoryError).
            config = config
                .with_option("auth", "NONE")
                .with_option("spark.sql.thriftServer.incrementalCollect", "true");
        }
        Ok(config)
    }

    /// The standard table holding `rows` rows.
    pub(crate) fn table(self, rows: u64) -> String {
        format!("bench_{rows}")
    }

    /// The ClickHouse table of the Arrow comparison (`arrow-ch`), holding `rows` rows.
    pub(crate) fn arrow_table(self, rows: u64) -> String {
        format!("bench_arrow_{rows}")
    }

    /// The statements that create and fill [`Backend::arrow_table`] (ClickHouse): seven
    /// typical columns, generated on the server.
    pub(crate) fn arrow_seed_statements(self, rows: u64) -> Vec<String> {
        let t = self.arrow_table(rows);
        vec![
            format!("DROP TABLE IF EXISTS {t}"),
            format!(
                "CREATE TABLE {t} (id UInt64, c_int Int32, c_float Float64, c_text String, \
                 c_time DateTime, c_maybe Nullable(String), c_amount Decimal(18, 4)) \
                 ENGINE = MergeTree ORDER BY id"
            ),
            format!(
                "INSERT INTO {t} SELECT number + 1, toInt32(number % 2000000) - 1000000, \
                 number * 0.001 + 0.5, concat('user-', toString(number)), \
                 toDateTime(1577836800 + number), \
                 if(number % 10 = 5, NULL, lower(hex(MD5(toString(number))))), \
                 toDecimal64((toInt64(number) * 7919) % 2000000000 - 1000000000, 4) / 10000 \
                 FROM numbers({rows})"
            ),
            format!("OPTIMIZE TABLE {t} FINAL"),
        ]
    }

    /// The query every W1 method runs: all ten columns of the table.
    pub(crate) fn select_all(self, rows: u64) -> String {
        format!("SELECT {COLUMNS} FROM {}", self.table(rows))
    }

    /// The W3 point query, parameter `:id` (extdata's named form).
    pub(crate) fn point_query(self, rows: u64) -> String {
        format!("SELECT {COLUMNS} FROM {} WHERE id = :id", self.table(rows))
    }

    /// The statements that create and fill the table with `rows` rows, generated on the
    /// server (`generate_series`, MariaDB's sequence engine, `numbers()`, `range()`).
    pub(crate) fn seed_statements(self, rows: u64) -> Vec<String> {
        let t = self.table(rows);
        match self {
            Backend::Postgres => vec![
                format!("DROP TABLE IF EXISTS {t}"),
                // UNLOGGED: seeding 10M rows skips the WAL; reads are the same.
                format!(
                    "CREATE UNLOGGED TABLE {t} (id int4 NOT NULL, c_int8 int8, c_float8 float8, \
                     c_numeric numeric(18,4), c_short text, c_long text, c_bool bool, c_date date, \
                     c_ts timestamptz, c_uuid uuid)"
                ),
                format!(
                    "INSERT INTO {t} SELECT i, \
                     CASE WHEN i % 10 = 1 THEN NULL ELSE i::int8 * 2654435761 END, \
                     CASE WHEN i % 10 = 2 THEN NULL ELSE i * 0.001 + 0.5 END, \
                     CASE WHEN i % 10 = 3 THEN NULL ELSE ((i::int8 * 7919) % 2000000000 - 1000000000)::numeric / 10000 END, \
                     CASE WHEN i % 10 = 4 THEN NULL ELSE 'user-' || i END, \
                     CASE WHEN i % 10 = 5 THEN NULL ELSE repeat(md5(i::text), 6) || lpad(i::text, 8, '0') END, \
                     CASE WHEN i % 10 = 6 THEN NULL ELSE i % 3 = 0 END, \
                     CASE WHEN i % 10 = 7 THEN NULL ELSE date '2000-01-01' + (i % 10000) END, \
                     CASE WHEN i % 10 = 8 THEN NULL ELSE timestamptz '2020-01-01 00:00:00+00' + i * interval '1 second' END, \
                     CASE WHEN i % 10 = 9 THEN NULL ELSE md5(i::text)::uuid END \
                     FROM generate_series(1, {rows}) AS i"
                ),
                format!("ALTER TABLE {t} ADD PRIMARY KEY (id)"),
                // Sets the hint bits now, so that the first measured read does not write.
                format!("VACUUM (ANALYZE) {t}"),
            ],
            Backend::Mysql => {
                let mut statements = vec![
                    format!("DROP TABLE IF EXISTS {t}"),
                    format!(
                        "CREATE TABLE {t} (id INT NOT NULL PRIMARY KEY, c_int8 BIGINT, \
                         c_float8 DOUBLE, c_numeric DECIMAL(18,4), c_short VARCHAR(32), \
                         c_long VARCHAR(255), c_bool BOOLEAN, c_date DATE, c_ts TIMESTAMP NULL, \
                         c_uuid BINARY(16)) ENGINE=InnoDB"
                    ),
                ];
                // Chunks of 1M keep InnoDB's undo log small; the sequence is unsigned, `i` is not.
                let mut start = 1;
                while start <= rows {
                    let end = (start + 999_999).min(rows);
                    statements.push(format!(
                        "INSERT INTO {t} SELECT i, \
                         IF(i % 10 = 1, NULL, i * 2654435761), \
                         IF(i % 10 = 2, NULL, i * 0.001 + 0.5), \
                         IF(i % 10 = 3, NULL, ((i * 7919) % 2000000000 - 1000000000) / 10000), \
                         IF(i % 10 = 4, NULL, CONCAT('user-', i)), \
                         IF(i % 10 = 5, NULL, CONCAT(REPEAT(MD5(i), 6), LPAD(i, 8, '0'))), \
                         IF(i % 10 = 6, NULL, i % 3 = 0), \
                         IF(i % 10 = 7, NULL, DATE '2000-01-01' + INTERVAL (i % 10000) DAY), \
                         IF(i % 10 = 8, NULL, TIMESTAMP '2020-01-01 00:00:00' + INTERVAL i SECOND), \
                         IF(i % 10 = 9, NULL, UNHEX(MD5(i))) \
                         FROM (SELECT CAST(seq AS SIGNED) AS i FROM seq_{start}_to_{end}) AS s"
                    ));
                    start = end + 1;
                }
                statements.push(format!("ANALYZE TABLE {t}"));
                statements
            }
            // 18.16 has neither repeat() nor leftPad(): both written out.
            Backend::ClickHouse => vec![
                format!("DROP TABLE IF EXISTS {t}"),
                format!(
                    "CREATE TABLE {t} (id Int32, c_int8 Nullable(Int64), c_float8 Nullable(Float64), \
                     c_numeric Nullable(Decimal(18, 4)), c_short Nullable(String), \
                     c_long Nullable(String), c_bool Nullable(UInt8), c_date Nullable(Date), \
                     c_ts Nullable(DateTime('UTC')), c_uuid Nullable(UUID)) \
                     ENGINE = MergeTree ORDER BY id"
                ),
                format!(
                    "INSERT INTO {t} SELECT i, \
                     if(i % 10 = 1, NULL, toInt64(i) * 2654435761), \
                     if(i % 10 = 2, NULL, i * 0.001 + 0.5), \
                     if(i % 10 = 3, NULL, toDecimal64((toInt64(i) * 7919) % 2000000000 - 1000000000, 4) / 10000), \
                     if(i % 10 = 4, NULL, concat('user-', toString(i))), \
                     if(i % 10 = 5, NULL, concat(h, h, h, h, h, h, substring('00000000', 1, 8 - length(toString(i))), toString(i))), \
                     if(i % 10 = 6, NULL, toUInt8(i % 3 = 0)), \
                     if(i % 10 = 7, NULL, toDate('2000-01-01') + (i % 10000)), \
                     if(i % 10 = 8, NULL, toDateTime(1577836800 + i, 'UTC')), \
                     if(i % 10 = 9, NULL, toUUID(UUIDNumToString(MD5(toString(i))))) \
                     FROM (SELECT toInt32(number + 1) AS i, lower(hex(MD5(toString(i)))) AS h \
                     FROM numbers({rows}))"
                ),
                format!("OPTIMIZE TABLE {t} FINAL"),
            ],
            Backend::Hive => vec![
                format!("DROP TABLE IF EXISTS {t}"),
                format!(
                    "CREATE TABLE {t} (id INT, c_int8 BIGINT, c_float8 DOUBLE, \
                     c_numeric DECIMAL(18,4), c_short STRING, c_long STRING, c_bool BOOLEAN, \
                     c_date DATE, c_ts TIMESTAMP, c_uuid BINARY) USING parquet"
                ),
                format!(
                    "INSERT INTO {t} SELECT CAST(id AS INT), \
                     IF(id % 10 = 1, NULL, id * 2654435761), \
                     IF(id % 10 = 2, NULL, id * 0.001D + 0.5D), \
                     IF(id % 10 = 3, NULL, CAST(CAST((id * 7919) % 2000000000 - 1000000000 AS DECIMAL(18,0)) / 10000 AS DECIMAL(18,4))), \
                     IF(id % 10 = 4, NULL, concat('user-', CAST(id AS STRING))), \
                     IF(id % 10 = 5, NULL, concat(repeat(md5(CAST(id AS STRING)), 6), lpad(CAST(id AS STRING), 8, '0'))), \
                     IF(id % 10 = 6, NULL, id % 3 = 0), \
                     IF(id % 10 = 7, NULL, date_add(DATE'2000-01-01', CAST(id % 10000 AS INT))), \
                     IF(id % 10 = 8, NULL, timestamp_seconds(1577836800 + id)), \
                     IF(id % 10 = 9, NULL, unhex(md5(CAST(id AS STRING)))) \
                     FROM range(1, {rows} + 1)"
                ),
            ],
        }
    }
}

/// The ten columns, in the order every method reads them.
pub(crate) const COLUMNS: &str =
    "id, c_int8, c_float8, c_numeric, c_short, c_long, c_bool, c_date, c_ts, c_uuid";
