# shellcheck shell=bash
# Three Spark Thrift servers (HiveServer2 protocol) from PyPI pyspark: one with
# authentication NONE (SASL PLAIN; any user and password), one NOSASL (raw binary
# Thrift) and one with the HTTP transport (authentication NONE, HTTP Basic), so that
# every transport is tested. Under /opt so that a fresh clone of the
# checkout (as CI makes) reuses the virtualenv instead of installing it again.
# Configured on the spark-submit command line (hive_start); settings: hive/env.in.
HIVE_HOME=/opt/extdata-hive
HIVE_VENV=$HIVE_HOME/venv
HIVE_PYSPARK_VERSION=4.3.0
HIVE_PLAIN_PORT=10000
HIVE_NOSASL_PORT=10001
HIVE_HTTP_PORT=10004
HIVE_HTTP_PATH=cliservice
HIVE_USER=extdata
HIVE_PASSWORD=extdata-hive-pw     # NONE accepts any password; the tests still send one
# Other services' servers of this kind (ldap.sh), by mode: extra --hiveconf settings
# (one KEY=VALUE a line), what beeline appends to its JDBC URL, and the login it uses.
declare -A HIVE_MODE_CONF=() HIVE_MODE_URL=() HIVE_MODE_USER=() HIVE_MODE_PASSWORD=()
# A server whose name is not its hive.server2.authentication names it here.
declare -A HIVE_MODE_AUTH=([HTTP]=NONE)
# The HTTP transport (hive.server2.transport.mode=http), authentication NONE.
HIVE_MODE_CONF[HTTP]="hive.server2.transport.mode=http
hive.server2.thrift.http.port=$HIVE_HTTP_PORT
hive.server2.thrift.http.path=$HIVE_HTTP_PATH"
HIVE_MODE_URL[HTTP]=";transportMode=http;httpPath=$HIVE_HTTP_PATH"

hive_spark_home() {
    local d
    d=$(echo "$HIVE_VENV"/lib/python3*/site-packages/pyspark)
    [[ -x $d/bin/spark-submit ]] || return 1
    printf '%s' "$d"
}

# hive_query PORT MODE [PASSWORD]: a real query through beeline (hive-jdbc from the
# pyspark jars); prints beeline's output, fails unless the answer is in it.
hive_query() {
    local port=$1 mode=$2 url out spark_home
    local password=${3:-${HIVE_MODE_PASSWORD[$mode]-$HIVE_PASSWORD}}
    spark_home=$(hive_spark_home) || return 1
    url="jdbc:hive2://127.0.0.1:$port/default${HIVE_MODE_URL[$mode]-}"
    [[ $mode == NOSASL ]] && url="$url;auth=noSasl"
    out=$(cd / && env -i PATH="$PATH" SPARK_HOME="$spark_home" \
        timeout 90 "$spark_home/bin/beeline" -u "$url" \
        -n "${HIVE_MODE_USER[$mode]-$HIVE_USER}" -p "$password" \
        --silent=true --outputformat=csv2 --showHeader=false \
        -e "SELECT concat('extdata-ok-', 40 + 2) AS answer" 2>&1) || true
    printf '%s\n' "$out"
    # beeline prints its prompt on the same line as the answer.
    grep -q 'extdata-ok-42' <<<"$out"
}

# hive_query_ok PORT MODE: hive_query, quietly.
hive_query_ok() {
    hive_query "$@" >/dev/null
}

hive_server_dir() {
    printf '%s/%s' "$HIVE_HOME" "${1,,}"
}

# spark_thrift_start DIR PORT AUTH [SPARK_ARG]... -- [SETTING]...: starts a Spark Thrift
# server in DIR in the background (setsid: it outlives us; pid in DIR/server.pid, log in
# DIR/server.log, warehouse and Derby metastore in DIR) on 127.0.0.1:PORT with
# hive.server2.authentication=AUTH. Each SPARK_ARG is a further spark-submit argument
# (`--conf` pairs), each SETTING (NAME=VALUE) a further --hiveconf. Variables the server
# needs in its environment are given as `VAR=value spark_thrift_start ...`.
spark_thrift_start() {
    local dir=$1 port=$2 auth=$3 spark_home spark_confs=() hiveconf=()
    shift 3
    while (($#)) && [[ $1 != -- ]]; do
        spark_confs+=("$1")
        shift
    done
    (($#)) && shift
    for setting in "$@"; do
        hiveconf+=(--hiveconf "$setting")
    done
    spark_home=$(hive_spark_home)
    mkdir -p "$dir"
    (
        cd "$dir" || exit 1
        SPARK_HOME=$spark_home SPARK_LOCAL_IP=127.0.0.1 \
            setsid "$spark_home/bin/spark-submit" --master 'local[2]' --driver-memory 1g \
            --conf spark.ui.enabled=false \
            --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \
            "${spark_confs[@]}" \
            --conf "spark.sql.warehouse.dir=$dir/warehouse" \
            --conf spark.sql.catalogImplementation=hive \
            --conf "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName=$dir/metastore_db;create=true" \
            --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \
            --hiveconf hive.server2.thrift.bind.host=127.0.0.1 \
            --hiveconf "hive.server2.thrift.port=$port" \
            --hiveconf "hive.server2.authentication=$auth" \
            "${hiveconf[@]}" \
            --hiveconf hive.server2.enable.doAs=false \
            </dev/null >"$dir/server.log" 2>&1 &
        echo $! >"$dir/server.pid"
    )
}

# hive_start MODE PORT: start one server in the background (setsid: it outlives us).
# MODE is hive.server2.authentication, with the settings of HIVE_MODE_CONF[MODE].
hive_start() {
    local mode=$1 port=$2 dir setting settings=()
    dir=$(hive_server_dir "$mode")
    mkdir -p "$dir"
    while IFS= read -r setting; do
        [[ -n $setting ]] && settings+=("$setting")
    done <<<"${HIVE_MODE_CONF[$mode]-}"
    printf '%s\n' "${HIVE_MODE_CONF[$mode]-}" >"$dir/server.conf"
    note "starting Spark Thrift server ($mode) on 127.0.0.1:$port (takes ~15 s)"
    spark_thrift_start "$dir" "$port" "${HIVE_MODE_AUTH[$mode]-$mode}" -- "${settings[@]}"
}

# spark_stop DIR: stops the Spark server whose pid is in DIR/server.pid (up to 30 s).
spark_stop() {
    local dir=$1 pid
    pid=$(cat "$dir/server.pid" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    # setsid made the server the leader of its own process group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 60 0.5 || true
    rm -f "$dir/server.pid"
}

hive_stop() {
    spark_stop "$(hive_server_dir "$1")"
}

# hive_ensure MODE PORT: leaves a healthy server alone; otherwise (re)starts it without
# waiting (hive_wait does), so that both servers boot at the same time.
hive_ensure() {
    local mode=$1 port=$2 dir
    dir=$(hive_server_dir "$mode")
    if port_open "$port"; then
        if [[ $(cat "$dir/server.conf" 2>/dev/null) != "${HIVE_MODE_CONF[$mode]-}" ]]; then
            note "hive $mode server on $port runs with other settings: restarting it"
        elif hive_query_ok "$port" "$mode"; then
            note "ok       hive $mode server on $port is up and answers queries"
            return 0
        else
            note "hive $mode server on $port does not answer queries: restarting it"
        fi
        hive_stop "$mode"
        ! port_open "$port" ||
            die "port $port is taken by something that is not a working $mode Spark Thrift server"
    fi
    hive_start "$mode" "$port"
    HIVE_STARTED+=("$mode:$port")
}

hive_wait() {
    local mode=$1 port=$2 dir pid i
    dir=$(hive_server_dir "$mode")
    for ((i = 0; i < 240; i++)); do
        port_open "$port" && break
        pid=$(cat "$dir/server.pid" 2>/dev/null || true)
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            die "the hive $mode server exited; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
        fi
        sleep 0.5
    done
    port_open "$port" || die "the hive $mode server did not open port $port within 120 s; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
    hive_query_ok "$port" "$mode" || die "the hive $mode server on $port does not answer a query; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
    changed "started hive $mode server on $port"
}

setup_hive() {
    log "Hive (Spark Thrift server from pyspark $HIVE_PYSPARK_VERSION)"
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    if ! hive_spark_home >/dev/null ||
        [[ $("$HIVE_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pyspark"))' 2>/dev/null) != "$HIVE_PYSPARK_VERSION" ]]; then
        python3 -m venv "$HIVE_VENV" >/dev/null 2>&1 || {
            apt_install python3-venv
            python3 -m venv "$HIVE_VENV"
        }
        note "installing pyspark $HIVE_PYSPARK_VERSION into $HIVE_VENV (pip; ~50 s the first time)"
        "$HIVE_VENV/bin/pip" install -q "pyspark==$HIVE_PYSPARK_VERSION" ||
            die "pip install pyspark==$HIVE_PYSPARK_VERSION failed"
        changed "installed pyspark $HIVE_PYSPARK_VERSION into $HIVE_VENV"
    fi
    HIVE_STARTED=()
    hive_ensure NONE "$HIVE_PLAIN_PORT"
    hive_ensure NOSASL "$HIVE_NOSASL_PORT"
    hive_ensure HTTP "$HIVE_HTTP_PORT"
    local started
    for started in "${HIVE_STARTED[@]}"; do
        hive_wait "${started%%:*}" "${started##*:}"
    done

    render_env hive HIVE_PLAIN_PORT HIVE_NOSASL_PORT HIVE_HTTP_PORT HIVE_HTTP_PATH \
        HIVE_USER HIVE_PASSWORD HIVE_HTTP_LOG="$(hive_server_dir HTTP)/server.log" \
        HIVE_LOG="$(hive_server_dir NONE)/server.log" \
        HIVE_NOSASL_LOG="$(hive_server_dir NOSASL)/server.log"
}
