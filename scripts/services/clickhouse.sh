# shellcheck shell=bash
# ClickHouse 18.16 (the clickhouse-server package) over HTTP on 127.0.0.1:8123 and HTTPS
# on 8443, with the password user. Configuration: clickhouse/config.xml.in (config.d,
# needs a restart) and clickhouse/users.xml.in (users.d, re-read by the server).

CH_HTTP_PORT=8123
CH_HTTPS_PORT=8443
CH_ETC=/etc/clickhouse-server
CH_TLS_DIR=$CH_ETC/extdata-tls
CH_PIDFILE=/run/clickhouse-server/clickhouse-server.pid
CH_LOG_DIR=/var/log/clickhouse-server
CH_CONSOLE_LOG=$CH_LOG_DIR/console.log

ch_ping() {
    [[ $(curl -s --max-time 2 "http://127.0.0.1:$CH_HTTP_PORT/ping" 2>/dev/null) == "Ok." ]]
}

ch_log_tail() {
    local f
    for f in "$CH_LOG_DIR/clickhouse-server.err.log" "$CH_CONSOLE_LOG"; do
        [[ -s $f ]] && { echo "--- $f"; tail -n 15 "$f"; }
    done
    return 0
}

ch_start() {
    # /run is a tmpfs: recreate the pid directory on every start.
    install -d -o clickhouse -g clickhouse -m 755 "$(dirname "$CH_PIDFILE")"
    install -d -o clickhouse -g clickhouse -m 755 "$CH_LOG_DIR" /var/lib/clickhouse
    # No systemd here; --output keeps what the server prints before its log is open.
    start-stop-daemon --start --oknodo --background --chuid clickhouse:clickhouse \
        --make-pidfile --pidfile "$CH_PIDFILE" --output "$CH_CONSOLE_LOG" \
        --chdir /var/lib/clickhouse \
        --exec /usr/sbin/clickhouse-server -- --config-file="$CH_ETC/config.xml"
    local i
    for ((i = 0; i < 120; i++)); do
        ch_ping && return 0
        if ((i >= 6)) && ! pid_alive "$CH_PIDFILE"; then break; fi
        sleep 0.5
    done
    die "ClickHouse did not answer /ping within 60 s:
$(ch_log_tail)"
}

ch_stop() {
    local pid
    pid=$(pidfile_pid "$CH_PIDFILE" '@(clickhouse|clickhouse-server)' || true)
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    wait_exit "$pid" 120 0.5 || die "ClickHouse (pid $pid) did not stop within 60 s"
}

# ch_query USER PASSWORD SQL [curl options...]: one query over HTTP(S), body on stdout.
# The URL is $CH_URL (default: plain HTTP on 127.0.0.1).
ch_query() {
    local user=$1 password=$2 sql=$3
    shift 3
    curl -sS --fail-with-body --max-time 10 -u "$user:$password" --data-binary "$sql" "$@" \
        "${CH_URL:-http://127.0.0.1:$CH_HTTP_PORT/}"
}

ch_admin() {
    ch_query default "" "$1"
}

setup_clickhouse() {
    log "ClickHouse"
    if [[ ! -x /usr/sbin/clickhouse-server || ! -x /usr/bin/clickhouse-client ]]; then
        apt_install clickhouse-server clickhouse-client
    fi
    command -v curl >/dev/null || apt_install curl

    local conf_changed=0
    if install_server_tls "$CH_TLS_DIR" clickhouse:clickhouse 750 644; then
        conf_changed=1
    fi

    # 18.x reads overrides with the root tag <yandex>. The packaged config points at a
    # dhparam.pem that does not exist: an empty dhParamsFile skips it. Small caches: the
    # packaged ones are sized for a dedicated machine (5 GiB marks, 8 GiB uncompressed).
    mkdir -p "$CH_ETC/config.d" "$CH_ETC/users.d"
    if render_to "$CH_ETC/config.d/extdata.xml" clickhouse/config.xml.in \
        CH_HTTP_PORT CH_HTTPS_PORT CH_TLS_DIR; then
        conf_changed=1
        changed "$CH_ETC/config.d/extdata.xml"
    fi
    local pw_hash
    pw_hash=$(printf '%s' "$PW_PASSWORD" | sha256sum | cut -d' ' -f1)
    # users.d is re-read by the running server: no restart for a change here.
    if render_to "$CH_ETC/users.d/extdata.xml" clickhouse/users.xml.in PW_USER PW_HASH="$pw_hash"; then
        changed "$CH_ETC/users.d/extdata.xml"
    fi

    if ! ch_ping; then
        ch_start
        changed "started ClickHouse"
    elif ((conf_changed)); then
        ch_stop
        ch_start
        changed "restarted ClickHouse"
    fi

    retry 40 0.5 ch_query "$PW_USER" "$PW_PASSWORD" "SELECT 1" >/dev/null 2>&1 || true
    ch_admin "CREATE DATABASE IF NOT EXISTS $TEST_DB" >/dev/null ||
        die "creating the ClickHouse database $TEST_DB failed"

    # 18.16 has neither user() nor currentUser(): the login itself shows the user works.
    CH_URL="http://127.0.0.1:$CH_HTTP_PORT/?database=$TEST_DB" check_ok "clickhouse: $PW_USER, password, HTTP" "$TEST_DB" \
        ch_query "$PW_USER" "$PW_PASSWORD" "SELECT currentDatabase()"
    CH_URL=https://localhost:$CH_HTTPS_PORT/ check_ok "clickhouse: $PW_USER, password, verified HTTPS" 1 \
        ch_query "$PW_USER" "$PW_PASSWORD" "SELECT 1" --cacert "$TLS_DIR/ca.pem"
    check_refused "clickhouse: $PW_USER, wrong password" "Code: (516|192|193)" \
        ch_query "$PW_USER" "wrong-$PW_PASSWORD" "SELECT 1"
    CH_URL=https://localhost:$CH_HTTPS_PORT/ check_refused "clickhouse: server verified against the wrong CA" "certificate" \
        ch_query "$PW_USER" "$PW_PASSWORD" "SELECT 1" --cacert "$TLS_DIR/wrong-ca.pem"
    note "ClickHouse $(ch_admin 'SELECT version()')"

    render_env clickhouse CH_HTTP_PORT CH_HTTPS_PORT TEST_DB PW_USER PW_PASSWORD
}
