#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Dedicated, restartable database instances for the restart-under-load tests of
# crates/extdata-reliability. The shared servers (scripts/services.sh) are never
# restarted by tests: other people and CI use them at the same time.
#
#   scripts/reliability.sh setup            create and start both; print KEY=VALUE settings
#   scripts/reliability.sh start|stop NAME  NAME = postgres | mysql | clickhouse (bounded waits)
#   scripts/reliability.sh status
#
# PostgreSQL: cluster 15/reliability on 127.0.0.1:5433, role extdata_rel (trust on
# loopback only). MariaDB: its own datadir, socket and pid file on 127.0.0.1:3307, user
# extdata_rel with a password. ClickHouse: the stock config with its own data directory,
# HTTP on 127.0.0.1:8124, user `default`. All listen on loopback only. Needs root.
#
# TLS: each instance also offers TLS with an *expired* server certificate signed by the
# test CA (.services/tls/ca.pem; generated here as .services/tls/expired-server.*), for
# the expired-certificate case of crates/extdata-reliability/tests/tls.rs. PostgreSQL
# and MariaDB negotiate it on their usual port (plain connections keep working),
# ClickHouse serves HTTPS on 127.0.0.1:8444. Run scripts/services.sh first: it makes
# the CA. Configuration templates: scripts/services/reliability/.
set -Eeuo pipefail

# shellcheck source=services/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/services/lib.sh"

EXPIRED_CERT=$TLS_DIR/expired-server.pem
EXPIRED_KEY=$TLS_DIR/expired-server.key

PG_VERSION=15
PG_CLUSTER=reliability
PG_PORT=5433
MY_PORT=3307
MY_BASE=/var/lib/extdata-reliability
MY_DATADIR=$MY_BASE/mysql
# Each server has a run directory of its own, owned by its user: in one shared
# directory, each start took it over from the other server, whose stop could then not
# remove its socket and pid file.
REL_RUN=/run/extdata-reliability
MY_RUN=$REL_RUN/mysql
MY_SOCKET=$MY_RUN/mysqld.sock
MY_PIDFILE=$MY_RUN/mysqld.pid
MY_LOG=$MY_DATADIR/mysqld.err
MY_TLS=$MY_BASE/mysql-tls
CH_HTTP_PORT=8124
CH_HTTPS_PORT=8444
CH_BASE=$MY_BASE/clickhouse
CH_CONFIG=$CH_BASE/config.xml
CH_TLS_CONFIG=$CH_BASE/config.d/extdata-tls.xml
CH_RUN=$REL_RUN/clickhouse
CH_PIDFILE=$CH_RUN/clickhouse.pid
CH_LOG=$CH_BASE/console.log
REL_USER=extdata_rel
REL_PASSWORD=extdata-rel-pw
REL_DB=extdata_rel

# ------------------------------------------------------------------------------- TLS

# True when the expired certificate exists, matches its key, was signed by the current
# test CA (ignoring dates) and has expired.
expired_cert_usable() {
    [[ -s $EXPIRED_CERT && -s $EXPIRED_KEY ]] || return 1
    [[ $(openssl x509 -in "$EXPIRED_CERT" -noout -pubkey 2>/dev/null) == \
        "$(openssl pkey -in "$EXPIRED_KEY" -pubout 2>/dev/null)" ]] || return 1
    openssl verify -no_check_time -CAfile "$TLS_DIR/ca.pem" "$EXPIRED_CERT" >/dev/null 2>&1 || return 1
    ! openssl x509 -in "$EXPIRED_CERT" -noout -checkend 0 >/dev/null 2>&1
}

# A server certificate for localhost/127.0.0.1/::1, signed by the test CA, valid from
# 30 days ago until yesterday. OpenSSL 3.0's `x509 -req` cannot back-date, `ca` can:
# it runs with a throw-away database.
tls_setup() {
    [[ -s $TLS_DIR/ca.pem && -s $TLS_DIR/ca.key ]] ||
        die "no test CA in $TLS_DIR (run scripts/services.sh first)"
    expired_cert_usable && return 0
    local work
    work=$(mktemp -d)
    touch "$work/index.txt"
    render reliability/expired-cert.cnf.in WORK="$work" >"$work/openssl.cnf"
    gen_key "$EXPIRED_KEY"
    openssl req -new -config "$work/openssl.cnf" -key "$EXPIRED_KEY" -out "$work/csr.pem" 2>/dev/null
    openssl ca -batch -notext -config "$work/openssl.cnf" -extensions ext -rand_serial \
        -cert "$TLS_DIR/ca.pem" -keyfile "$TLS_DIR/ca.key" -in "$work/csr.pem" -out "$EXPIRED_CERT" \
        -startdate "$(date -u -d '30 days ago' +%Y%m%d%H%M%SZ)" \
        -enddate "$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)" >/dev/null 2>&1 ||
        die "generating the expired server certificate failed"
    rm -rf "$work"
    expired_cert_usable || die "the generated certificate $EXPIRED_CERT is not an expired one of the test CA"
    note "generated expired server certificate $EXPIRED_CERT"
}

# ------------------------------------------------------------------------ PostgreSQL

pg_status() {
    pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $4 }'
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }

pg_start() {
    [[ $(pg_status) == online ]] || pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start
    retry 100 0.1 pg_ready ||
        die "PostgreSQL $PG_VERSION/$PG_CLUSTER did not accept connections within 10 s"
}

pg_stop() {
    [[ $(pg_status) != online ]] && return 0
    # -m fast: sessions are disconnected, as in a real restart under load.
    timeout 30 pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" stop -m fast
}

pg_setup() {
    command -v pg_createcluster >/dev/null || die "PostgreSQL is not installed (run scripts/services.sh postgres first)"
    if [[ -z $(pg_status) ]]; then
        pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >/dev/null
        note "created PostgreSQL cluster $PG_VERSION/$PG_CLUSTER on port $PG_PORT"
    fi
    local conf=/etc/postgresql/$PG_VERSION/$PG_CLUSTER changed=0
    install -d -o postgres -g postgres -m 700 "$conf/extdata-tls"
    if sync_file "$EXPIRED_CERT" "$conf/extdata-tls/server.pem" postgres:postgres 600; then changed=1; fi
    if sync_file "$EXPIRED_KEY" "$conf/extdata-tls/server.key" postgres:postgres 600; then changed=1; fi
    if render_to "$conf/conf.d/extdata-reliability.conf" reliability/postgresql.conf.in \
        PG_PORT CONF="$conf"; then changed=1; fi
    # Loopback only, one test role, one database; first match wins.
    if render_to "$conf/pg_hba.conf" reliability/pg_hba.conf.in REL_DB REL_USER; then changed=1; fi
    if ((changed)); then pg_stop; fi
    pg_start
    local admin=(runuser -u postgres -- psql -h /var/run/postgresql -p "$PG_PORT" -XAtq -v ON_ERROR_STOP=1 -d postgres)
    (cd / && "${admin[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$REL_USER'" | grep -q 1) ||
        (cd / && "${admin[@]}" -c "CREATE ROLE $REL_USER LOGIN")
    (cd / && "${admin[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$REL_DB'" | grep -q 1) ||
        (cd / && "${admin[@]}" -c "CREATE DATABASE $REL_DB OWNER $REL_USER")
    [[ $(env -i PATH="$PATH" psql "host=127.0.0.1 port=$PG_PORT dbname=$REL_DB user=$REL_USER sslmode=disable" -XAtc 'SELECT 1') == 1 ]] ||
        die "the reliability PostgreSQL instance does not answer $REL_USER"
    # TLS is offered (with the expired certificate: only an unverified client gets in).
    [[ $(env -i PATH="$PATH" psql "host=127.0.0.1 port=$PG_PORT dbname=$REL_DB user=$REL_USER sslmode=require" \
        -XAtc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()') == t ]] ||
        die "the reliability PostgreSQL instance does not offer TLS"
    note "ok       PostgreSQL $PG_VERSION/$PG_CLUSTER answers $REL_USER on 127.0.0.1:$PG_PORT"
}

# --------------------------------------------------------------------------- MariaDB

# pidfile_stop WHAT FILE PROGRAM: stops the live PROGRAM FILE names (TERM, then up to
# 30 s).
pidfile_stop() {
    local what=$1 pid
    pid=$(pidfile_pid "$2" "$3" || true)
    [[ -n $pid ]] || return 0
    kill -TERM "$pid"
    wait_exit "$pid" 300 0.1 || die "$what did not stop within 30 s"
}

my_pid() { pidfile_pid "$MY_PIDFILE" mariadbd; }

my_ready() { mariadb-admin --no-defaults --socket="$MY_SOCKET" -uroot ping >/dev/null 2>&1; }

my_start() {
    if [[ -z $(my_pid || true) ]]; then
        install -d -o root -g root -m 755 "$REL_RUN"
        install -d -o mysql -g mysql -m 755 "$MY_RUN"
        # A server this script does not know of is not touched: its files stay.
        ! port_open "$MY_PORT" || die "port $MY_PORT is taken by a server without a live pid in $MY_PIDFILE"
        # What a server that did not stop cleanly left: its socket file makes the next
        # start fail ("Bind on unix socket: Address already in use").
        rm -f "$MY_SOCKET" "$MY_SOCKET.lock" "$MY_PIDFILE"
        setsid nohup mariadbd --no-defaults --user=mysql --datadir="$MY_DATADIR" \
            --socket="$MY_SOCKET" --pid-file="$MY_PIDFILE" --port="$MY_PORT" \
            --bind-address=127.0.0.1 --skip-name-resolve --log-error="$MY_LOG" \
            --innodb-buffer-pool-size=32M --performance-schema=OFF --max-connections=50 \
            --ssl-cert="$MY_TLS/server.pem" --ssl-key="$MY_TLS/server.key" \
            </dev/null >/dev/null 2>&1 &
    fi
    retry 200 0.1 my_ready || die "MariaDB on $MY_PORT did not start within 20 s; see $MY_LOG"
}

my_stop() { pidfile_stop "MariaDB on $MY_PORT" "$MY_PIDFILE" mariadbd; }

my_setup() {
    command -v mariadbd >/dev/null || die "MariaDB is not installed (run scripts/services.sh mysql first)"
    # Each server's files live in its own directory, owned by its own user.
    install -d -o root -g root -m 755 "$MY_BASE"
    if [[ ! -d $MY_DATADIR/mysql ]]; then
        mariadb-install-db --no-defaults --user=mysql --datadir="$MY_DATADIR" \
            --skip-test-db >/dev/null || die "mariadb-install-db failed"
        note "created MariaDB datadir $MY_DATADIR"
    fi
    local tls_changed=0
    install -d -o mysql -g mysql -m 750 "$MY_TLS"
    if sync_file "$EXPIRED_CERT" "$MY_TLS/server.pem" mysql:mysql 644; then tls_changed=1; fi
    if sync_file "$EXPIRED_KEY" "$MY_TLS/server.key" mysql:mysql 600; then tls_changed=1; fi
    # ssl_cert is read-only: a server started without it (or with other files) restarts.
    if [[ -n $(my_pid || true) ]] && { ((tls_changed)) ||
        [[ $(mariadb --no-defaults --socket="$MY_SOCKET" -uroot -NBe 'SELECT @@ssl_cert' 2>/dev/null) != "$MY_TLS/server.pem" ]]; }; then
        my_stop
    fi
    my_start
    [[ $(mariadb --no-defaults --socket="$MY_SOCKET" -uroot -NBe 'SELECT @@have_ssl') == YES ]] ||
        die "the reliability MariaDB instance has no TLS; see $MY_LOG"
    local sql
    sql=$(render reliability/users.sql.in REL_DB REL_USER REL_PASSWORD) || exit 1
    mariadb --no-defaults --socket="$MY_SOCKET" -uroot <<<"$sql" || die "creating the MariaDB user failed"
    [[ $(mariadb --no-defaults -h 127.0.0.1 -P "$MY_PORT" -u "$REL_USER" -p"$REL_PASSWORD" -NBe 'SELECT 1' "$REL_DB") == 1 ]] ||
        die "the reliability MariaDB instance does not answer $REL_USER"
    note "ok       MariaDB answers $REL_USER on 127.0.0.1:$MY_PORT"
}

# ------------------------------------------------------------------------ ClickHouse

ch_pid() { pidfile_pid "$CH_PIDFILE" '@(clickhouse|clickhouse-server)'; }

ch_ready() { [[ $(curl -s --max-time 1 "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null) == "Ok." ]]; }

ch_start() {
    if [[ -z $(ch_pid || true) ]]; then
        install -d -o root -g root -m 755 "$REL_RUN"
        install -d -o clickhouse -g clickhouse -m 755 "$CH_RUN"
        ! port_open "$CH_HTTP_PORT" || die "port $CH_HTTP_PORT is taken by a server without a live pid in $CH_PIDFILE"
        rm -f "$CH_PIDFILE"
        start-stop-daemon --start --oknodo --background --chuid clickhouse:clickhouse \
            --make-pidfile --pidfile "$CH_PIDFILE" --output "$CH_LOG" --chdir "$CH_BASE" \
            --exec /usr/sbin/clickhouse-server -- --config-file="$CH_CONFIG"
    fi
    retry 300 0.1 ch_ready || die "ClickHouse on $CH_HTTP_PORT did not answer /ping within 30 s; see $CH_LOG"
}

ch_stop() {
    [[ -n $(ch_pid || true) ]] || return 0
    pidfile_stop "ClickHouse on $CH_HTTP_PORT" "$CH_PIDFILE" '@(clickhouse|clickhouse-server)'
    rm -f "$CH_PIDFILE"
}

ch_setup() {
    [[ -x /usr/sbin/clickhouse-server ]] || die "ClickHouse is not installed (run scripts/services.sh clickhouse first)"
    install -d -o clickhouse -g clickhouse -m 750 "$CH_BASE" "$CH_BASE/data" "$CH_BASE/tmp" \
        "$CH_BASE/user_files" "$CH_BASE/format_schemas" "$CH_BASE/tls"
    install -d -o root -g root -m 755 "$CH_BASE/config.d"
    local changed=0
    if sync_file "$EXPIRED_CERT" "$CH_BASE/tls/server.pem" clickhouse:clickhouse 644; then changed=1; fi
    if sync_file "$EXPIRED_KEY" "$CH_BASE/tls/server.key" clickhouse:clickhouse 600; then changed=1; fi
    # The stock config with this instance's ports and paths: HTTP and (below) HTTPS,
    # loopback only, no interserver port; the stock users.xml (user `default`, no
    # password).
    if update_file "$CH_CONFIG" < <(
        sed -e "s|<http_port>8123</http_port>|<http_port>$CH_HTTP_PORT</http_port>|" \
            -e '/<tcp_port>/d; /<https_port>/d; /<tcp_port_secure>/d; /<interserver_http_port>/d' \
            -e '/<listen_host>::1<\/listen_host>/d' \
            -e "s|/var/lib/clickhouse/|$CH_BASE/data/|g" \
            -e "s|/var/log/clickhouse-server/|$CH_BASE/|g" \
            -e "s|<users_config>users.xml</users_config>|<users_config>/etc/clickhouse-server/users.xml</users_config>|" \
            -e "s|<mark_cache_size>[0-9]*</mark_cache_size>|<mark_cache_size>67108864</mark_cache_size>|" \
            /etc/clickhouse-server/config.xml
    ); then changed=1; fi
    # HTTPS with the expired certificate; 18.x overrides use the root tag <yandex>, and an
    # empty dhParamsFile skips the stock config's missing dhparam.pem.
    if render_to "$CH_TLS_CONFIG" reliability/clickhouse-tls.xml.in CH_HTTPS_PORT CH_BASE; then changed=1; fi
    if ((changed)); then ch_stop; fi
    ch_start
    [[ $(curl -s --max-time 5 "http://127.0.0.1:$CH_HTTP_PORT/?query=SELECT%201") == 1 ]] ||
        die "the reliability ClickHouse instance does not answer"
    # The certificate is expired: only an unverified client gets through.
    [[ $(curl -sk --max-time 5 "https://127.0.0.1:$CH_HTTPS_PORT/?query=SELECT%201") == 1 ]] ||
        die "the reliability ClickHouse instance does not answer HTTPS on $CH_HTTPS_PORT; see $CH_LOG"
    note "ok       ClickHouse answers on 127.0.0.1:$CH_HTTP_PORT and HTTPS on $CH_HTTPS_PORT (expired certificate)"
}

# Servers started while both kept their socket and pid files in $REL_RUN itself: stopped,
# and their files removed, so that the setup starts them from the new places.
old_run_dir_cleanup() {
    pidfile_stop "MariaDB on $MY_PORT (old run directory)" "$REL_RUN/mysqld.pid" mariadbd
    pidfile_stop "ClickHouse on $CH_HTTP_PORT (old run directory)" "$REL_RUN/clickhouse.pid" '@(clickhouse|clickhouse-server)'
    rm -f "$REL_RUN/mysqld.pid" "$REL_RUN/mysqld.sock" "$REL_RUN/mysqld.sock.lock" "$REL_RUN/clickhouse.pid"
}

# ----------------------------------------------------------------------------- main

[[ $(id -u) == 0 ]] || die "run as root: it starts and stops database servers"
case ${1:-} in
    setup)
        # Only the settings go to stdout: the caller reads them as KEY=VALUE lines,
        # and the tools below print notes of their own (pg_ctlcluster, for one, says
        # "Removed stale pid file." after an unclean shutdown).
        {
            old_run_dir_cleanup
            tls_setup
            pg_setup
            my_setup
            ch_setup
        } >&2
        render reliability/env.in PG_PORT MY_PORT CH_HTTP_PORT CH_HTTPS_PORT REL_DB REL_USER \
            REL_PASSWORD EXPIRED_CERT CTL="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/reliability.sh"
        ;;
    start | stop)
        case ${2:-} in
            postgres) "pg_$1" ;;
            mysql) "my_$1" ;;
            clickhouse) "ch_$1" ;;
            *) die "usage: $0 $1 postgres|mysql|clickhouse" ;;
        esac
        ;;
    status)
        printf 'postgres %s\nmysql %s\nclickhouse %s\n' "$(pg_status)" \
            "$(if [[ -n $(my_pid || true) ]]; then echo online; else echo down; fi)" \
            "$(if [[ -n $(ch_pid || true) ]]; then echo online; else echo down; fi)"
        ;;
    *) die "usage: $0 setup | start NAME | stop NAME | status" ;;
esac
