# shellcheck shell=bash
# PostgreSQL 15 (Debian's package, cluster 15/main) on 127.0.0.1:5432 and the socket:
# the password user over TLS, plain TCP and the socket, the certificate user over TLS
# only. Configuration: postgres/extdata.conf.in (conf.d) and postgres/pg_hba.conf.in
# (a block at the top of pg_hba.conf).

PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_SOCKET_DIR=/var/run/postgresql
PG_CONF_DIR=/etc/postgresql/$PG_VERSION/$PG_CLUSTER
PG_TLS_DIR=$PG_CONF_DIR/extdata-tls
PG_LOG=/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log

# psql as the postgres superuser over the socket: peer auth on a fresh machine, trust
# on the prepared ones. `cd /` because postgres may not be allowed into the checkout.
pg_admin() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -At \
        -h "$PG_SOCKET_DIR" -p "$PG_PORT" "$@")
}

pg_cluster_status() {
    pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $4 }'
}

pg_wait_ready() {
    retry 60 0.5 pg_isready -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" ||
        die "PostgreSQL did not accept connections within 30 s; see $PG_LOG:
$(tail -n 20 "$PG_LOG" 2>/dev/null)"
}

pg_ctl_cluster() {
    # --skip-systemctl-redirect: there is no systemd here; talk to pg_ctl directly.
    pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" "$1" ||
        die "pg_ctlcluster $1 failed; see $PG_LOG:
$(tail -n 20 "$PG_LOG" 2>/dev/null)"
}

# The client checks run with an empty environment so that PG* variables, ~/.pgpass or
# a default client certificate of the caller cannot make them pass or fail.
pg_client() {
    env -i PATH="$PATH" PGCONNECT_TIMEOUT=5 PGPASSFILE=/nonexistent/.pgpass \
        psql -X -w -At "$1" \
        -c "SELECT current_user || ' ssl=' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
}

setup_postgres() {
    log "PostgreSQL $PG_VERSION"
    local pgbin=/usr/lib/postgresql/$PG_VERSION/bin
    if [[ ! -x $pgbin/postgres ]]; then
        apt_install postgresql
    fi
    if [[ -z $(pg_cluster_status) ]]; then
        pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >/dev/null
        changed "created cluster $PG_VERSION/$PG_CLUSTER"
    fi

    # PostgreSQL insists that its key be owned by postgres with no group/other access.
    install_server_tls "$PG_TLS_DIR" postgres:postgres 700 600 || true

    # conf.d is read in file-name order: extdata.conf sorts after 90-ci.conf, so ours wins.
    if render_to "$PG_CONF_DIR/conf.d/extdata.conf" postgres/extdata.conf.in PG_PORT PG_TLS_DIR; then
        chown postgres:postgres "$PG_CONF_DIR/conf.d/extdata.conf"
        changed "$PG_CONF_DIR/conf.d/extdata.conf"
    fi

    # pg_hba.conf is first-match: our lines must come before the generic trust/peer
    # lines, or the test users would get in without a password / certificate.
    # `host` matches both hostssl and hostnossl.
    local hba=$PG_CONF_DIR/pg_hba.conf block
    block=$(render postgres/pg_hba.conf.in PW_USER CERT_USER)
    if {
        printf '%s\n' "$block"
        sed '/^# BEGIN extdata test users/,/^# END extdata test users/d' "$hba"
    } | update_file "$hba"; then
        changed "$hba (extdata block at the top)"
    fi

    if [[ $(pg_cluster_status) != online ]]; then
        pg_ctl_cluster start
        changed "started PostgreSQL"
    fi
    pg_wait_ready
    # Reload when our files are newer than the configuration the server has loaded, not
    # merely when this run wrote them: an interrupted earlier run may have written them.
    local newest
    newest=$(stat -c %.6Y "$PG_CONF_DIR/conf.d/extdata.conf" "$hba" "$PG_TLS_DIR"/* | sort -n | tail -n 1)
    if [[ $(pg_admin -d postgres -c "SELECT to_timestamp($newest) >= pg_conf_load_time()") == t ]]; then
        # pg_reload_conf() only signals the postmaster: wait until a new session sees it.
        local before i
        before=$(pg_admin -d postgres -c "SELECT pg_conf_load_time()")
        pg_admin -d postgres -c "SELECT pg_reload_conf()" >/dev/null
        for ((i = 0; i < 50; i++)); do
            [[ $(pg_admin -d postgres -c "SELECT pg_conf_load_time()") != "$before" ]] && break
            sleep 0.1
        done
        changed "reloaded PostgreSQL"
    fi

    # Some settings (listen_addresses, port, and ssl when it was off at start on some
    # setups) only take effect at a restart.
    local pending ssl
    pending=$(pg_admin -d postgres -c "SELECT string_agg(name, ', ') FROM pg_settings WHERE pending_restart")
    ssl=$(pg_admin -d postgres -c "SHOW ssl")
    if [[ -n $pending || $ssl != on ]]; then
        pg_ctl_cluster restart
        pg_wait_ready
        changed "restarted PostgreSQL (ssl=$ssl, pending: ${pending:-none})"
        [[ $(pg_admin -d postgres -c "SHOW ssl") == on ]] ||
            die "PostgreSQL still has ssl off after a restart; see $PG_LOG"
    fi
    # Checked only now: while ssl is still off, every hostssl line counts as an error, and
    # a setting that needs a restart reports "could not be applied" until then.
    local errors
    errors=$(pg_admin -d postgres -c "
        SELECT 'pg_hba.conf:' || line_number || ': ' || error FROM pg_hba_file_rules WHERE error IS NOT NULL
        UNION ALL
        SELECT sourcefile || ':' || sourceline || ': ' || error FROM pg_file_settings WHERE error IS NOT NULL")
    [[ -z $errors ]] || die "PostgreSQL configuration has errors:
$errors"

    # Roles. A certificate login needs a role of its own: the same certificate cannot
    # also serve password logins (see SERVICES.md).
    pg_admin -d postgres -v pw="$PW_USER" -v cert="$CERT_USER" <"$SERVICES_DIR/postgres/roles.sql"
    # A SCRAM hash is salted, so setting the same password again would still rewrite
    # it: only set it when there is none or logging in with it does not work (our
    # pg_hba block is active by now, so the login really checks the password).
    if [[ $(pg_admin -d postgres -c "SELECT rolpassword LIKE 'SCRAM-SHA-256\$%' FROM pg_authid WHERE rolname = '$PW_USER'") != t ]] ||
        ! pg_client "host=127.0.0.1 port=$PG_PORT dbname=postgres user=$PW_USER password=$PW_PASSWORD sslmode=disable" >/dev/null 2>&1; then
        pg_admin -d postgres -v pw="$PW_USER" -v secret="$PW_PASSWORD" <"$SERVICES_DIR/postgres/password.sql"
        changed "set password of PostgreSQL role $PW_USER"
    fi

    if [[ -z $(pg_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$TEST_DB'") ]]; then
        pg_admin -d postgres -c "CREATE DATABASE $TEST_DB OWNER $PW_USER"
        changed "created PostgreSQL database $TEST_DB"
    fi
    # Since PostgreSQL 15 only the database owner may create in schema public.
    local grants
    grants=$(render postgres/grants.sql.in TEST_DB PW_USER CERT_USER)
    pg_admin -d "$TEST_DB" <<<"$grants"

    local ca=$TLS_DIR/ca.pem base="host=127.0.0.1 port=$PG_PORT dbname=$TEST_DB"
    local cert="sslcert=$TLS_DIR/client.pem sslkey=$TLS_DIR/client.key"
    check_ok "postgres: $PW_USER, password, verify-full TLS" "$PW_USER ssl=true" \
        pg_client "$base user=$PW_USER password=$PW_PASSWORD sslmode=verify-full sslrootcert=$ca"
    check_ok "postgres: $PW_USER, password, no TLS" "$PW_USER ssl=false" \
        pg_client "$base user=$PW_USER password=$PW_PASSWORD sslmode=disable"
    check_ok "postgres: $PW_USER, password, socket" "$PW_USER ssl=false" \
        pg_client "host=$PG_SOCKET_DIR port=$PG_PORT dbname=$TEST_DB user=$PW_USER password=$PW_PASSWORD"
    check_ok "postgres: $CERT_USER, client certificate" "$CERT_USER ssl=true" \
        pg_client "$base user=$CERT_USER sslmode=verify-full sslrootcert=$ca $cert"
    check_refused "postgres: $PW_USER, wrong password" "password authentication failed" \
        pg_client "$base user=$PW_USER password=wrong-$PW_PASSWORD sslmode=verify-full sslrootcert=$ca"
    check_refused "postgres: $PW_USER, socket without password" "no password supplied" \
        pg_client "host=$PG_SOCKET_DIR port=$PG_PORT dbname=$TEST_DB user=$PW_USER"
    check_refused "postgres: server verified against the wrong CA" "certificate verify failed" \
        pg_client "$base user=$PW_USER password=$PW_PASSWORD sslmode=verify-full sslrootcert=$TLS_DIR/wrong-ca.pem"
    check_refused "postgres: $CERT_USER without a client certificate" "certificate|pg_hba.conf" \
        pg_client "$base user=$CERT_USER sslmode=verify-full sslrootcert=$ca"
    check_refused "postgres: $CERT_USER without TLS" "pg_hba.conf rejects" \
        pg_client "$base user=$CERT_USER sslmode=disable $cert"
    check_refused "postgres: $CERT_USER over the socket" "pg_hba.conf rejects" \
        pg_client "host=$PG_SOCKET_DIR port=$PG_PORT dbname=$TEST_DB user=$CERT_USER"

    render_env postgres PG_PORT PG_SOCKET_DIR TEST_DB PW_USER PW_PASSWORD CERT_USER TLS_DIR
}
