# shellcheck shell=bash
# ClickHouse 26.x beside the 18.16 server: the clickhouse-local engine of PyPI
# `chdb-core` (pinned), which serves HTTP on 127.0.0.1:8126 and native TCP on 9126 while
# the query that started its listeners runs (clickhouse26/server.py; that query reads a
# FIFO until a line is written to it). No HTTPS listener and no password on `default`
# are possible there, so TLS stays covered by the 18.16 server; the password user is.
# Under /opt like the Hive service, so a fresh clone reuses the virtualenv. Files:
# clickhouse26/config.xml.in, users.xml.in and server.py, copied to $CH26_DIR (read at
# start: a change restarts the server).
# The entry point is undocumented: the version it reports and server-side parameters
# are checked on every run, and anything else fails loudly.
CH26_HOME=/opt/extdata-clickhouse26
CH26_VENV=$CH26_HOME/venv
CH26_DIR=$CH26_HOME/server
CH26_CHDB_VERSION=26.9.0
CH26_SERVER_VERSION=26.9.2.1 # what that wheel's engine reports as version()
CH26_HTTP_PORT=8126
CH26_TCP_PORT=9126
CH26_FIFO=ctl.fifo

ch26_url() {
    printf 'http://127.0.0.1:%s/' "$CH26_HTTP_PORT"
}

ch26_ping() {
    [[ $(curl -s --max-time 2 "$(ch26_url)ping" 2>/dev/null) == "Ok." ]]
}

# ch26_query USER PASSWORD SQL [URL_PARAMETERS]: one query over HTTP, body on stdout.
ch26_query() {
    local user=$1 password=$2 sql=$3 params=${4:-}
    curl -sS --fail-with-body --max-time 10 -u "$user:$password" --data-binary "$sql" \
        "$(ch26_url)${params:+?$params}"
}

# The local addresses something listens on at TCP port PORT, one a line.
listen_addresses() {
    ss -Hltn "( sport = :$1 )" | awk '{ sub(/:[0-9]+$/, "", $4); print $4 }' | sort -u
}

ch26_admin() {
    ch26_query default "" "$1"
}

ch26_log_tail() {
    [[ -s $CH26_DIR/server.log ]] && { echo "--- $CH26_DIR/server.log"; tail -n 20 "$CH26_DIR/server.log"; }
    return 0
}

ch26_installed_version() {
    "$CH26_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("chdb-core"))' 2>/dev/null
}

ch26_start() {
    mkdir -p "$CH26_DIR/data"
    [[ -p $CH26_DIR/$CH26_FIFO ]] || { rm -f "$CH26_DIR/$CH26_FIFO"; mkfifo -m 600 "$CH26_DIR/$CH26_FIFO"; }
    note "starting ClickHouse $CH26_SERVER_VERSION (chdb) on 127.0.0.1:$CH26_HTTP_PORT and :$CH26_TCP_PORT"
    (
        cd "$CH26_DIR" || exit 1
        setsid "$CH26_VENV/bin/python" "$CH26_DIR/server.py" \
            "$CH26_DIR" "$CH26_DIR/data" "$CH26_FIFO" "$CH26_CHDB_VERSION" \
            </dev/null >"$CH26_DIR/server.log" 2>&1 &
        echo $! >"$CH26_DIR/server.pid"
    )
    local i
    for ((i = 0; i < 120; i++)); do
        ch26_ping && return 0
        pid_alive "$CH26_DIR/server.pid" || die "the ClickHouse 26 server exited at start:
$(ch26_log_tail)"
        sleep 0.25
    done
    die "the ClickHouse 26 server did not answer /ping within 30 s:
$(ch26_log_tail)"
}

ch26_stop() {
    local pid
    pid=$(cat "$CH26_DIR/server.pid" 2>/dev/null || true)
    [[ -n $pid ]] && pid_running "$pid" || return 0
    # A line on the FIFO ends the serving query; the open blocks if nothing reads it.
    timeout 5 tee "$CH26_DIR/$CH26_FIFO" <<<stop >/dev/null 2>&1 || true
    if ! wait_exit "$pid" 40 0.25; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        wait_exit "$pid" 40 0.25 || die "the ClickHouse 26 server (pid $pid) did not stop within 20 s"
    fi
    rm -f "$CH26_DIR/server.pid"
}

setup_clickhouse26() {
    log "ClickHouse 26 (chdb-core $CH26_CHDB_VERSION)"
    command -v curl >/dev/null || apt_install curl
    if [[ $(ch26_installed_version) != "$CH26_CHDB_VERSION" ]]; then
        python3 -m venv "$CH26_VENV" >/dev/null 2>&1 || {
            apt_install python3-venv
            python3 -m venv "$CH26_VENV"
        }
        note "installing chdb-core $CH26_CHDB_VERSION into $CH26_VENV (pip; ~50 s the first time)"
        "$CH26_VENV/bin/pip" install -q "chdb-core==$CH26_CHDB_VERSION" ||
            die "pip install chdb-core==$CH26_CHDB_VERSION failed"
        changed "installed chdb-core $CH26_CHDB_VERSION into $CH26_VENV"
        # A server still running the old engine must not be kept.
        ch26_stop
    fi

    local conf_changed=0 pw_hash
    mkdir -p "$CH26_DIR"
    if render_to "$CH26_DIR/config.xml" clickhouse26/config.xml.in \
        CH26_HTTP_PORT CH26_TCP_PORT CH26_DIR; then
        conf_changed=1
        changed "$CH26_DIR/config.xml"
    fi
    # The server's own copy: it outlives the checkout it was started from.
    if update_file "$CH26_DIR/server.py" <"$SERVICES_DIR/clickhouse26/server.py"; then
        conf_changed=1
        changed "$CH26_DIR/server.py"
    fi
    pw_hash=$(printf '%s' "$PW_PASSWORD" | sha256sum | cut -d' ' -f1)
    if render_to "$CH26_DIR/users.xml" clickhouse26/users.xml.in PW_USER PW_HASH="$pw_hash"; then
        conf_changed=1
        changed "$CH26_DIR/users.xml"
    fi

    if ch26_ping && ((conf_changed)); then
        ch26_stop
    fi
    if ! ch26_ping; then
        if port_open "$CH26_HTTP_PORT" || port_open "$CH26_TCP_PORT"; then
            die "port $CH26_HTTP_PORT or $CH26_TCP_PORT is taken by something that is not the ClickHouse 26 server"
        fi
        ch26_start
        changed "started ClickHouse 26"
    fi

    # The pinned wheel's engine, or the checks below mean nothing.
    check_ok "clickhouse26: version() is the pinned $CH26_SERVER_VERSION" "$CH26_SERVER_VERSION" \
        ch26_admin "SELECT version()"
    ch26_admin "CREATE DATABASE IF NOT EXISTS $TEST_DB" >/dev/null ||
        die "creating the ClickHouse 26 database $TEST_DB failed"
    check_ok "clickhouse26: $PW_USER, password, HTTP" "$PW_USER	$TEST_DB" \
        ch26_query "$PW_USER" "$PW_PASSWORD" "SELECT currentUser(), currentDatabase()" \
        "database=$TEST_DB"
    check_refused "clickhouse26: $PW_USER, wrong password" "Code: 516" \
        ch26_query "$PW_USER" "wrong-$PW_PASSWORD" "SELECT 1"
    check_ok "clickhouse26: server-side parameter {x:UInt8}" 42 \
        ch26_query default "" "SELECT {x:UInt8} + 1" "param_x=41"
    # Loopback only, both listeners.
    check_ok "clickhouse26: HTTP listens on 127.0.0.1 only" 127.0.0.1 listen_addresses "$CH26_HTTP_PORT"
    check_ok "clickhouse26: native TCP listens on 127.0.0.1 only" 127.0.0.1 listen_addresses "$CH26_TCP_PORT"

    render_env clickhouse26 CH26_HTTP_PORT CH26_TCP_PORT CH26_SERVER_VERSION TEST_DB PW_USER PW_PASSWORD
}
