# shellcheck shell=bash
# A throw-away MIT Kerberos KDC on 127.0.0.1:$KRB_KDC_PORT (realm $KRB_REALM) and two
# Spark Thrift servers with hive.server2.authentication=KERBEROS: the binary transport
# (SASL GSSAPI) on $KRB_HIVE_PORT and the HTTP transport (SPNEGO, path $KRB_SPNEGO_PATH,
# service principal $KRB_HTTP_SERVICE) on $KRB_SPNEGO_PORT — Spark's Thrift server runs
# one transport per JVM — for the live auth=GSSAPI tests
# (crates/extdata-hive/tests/gssapi.rs). Every file (configuration, KDC database,
# keytabs, ticket cache, the servers' state) lives in $KRB_DIR; nothing under /etc is
# read or written (KRB5_CONFIG, KRB5_KDC_PROFILE, java.security.krb5.conf).
# Needs the pyspark of the hive service. Port 10088, not 88: no clash with a real KDC.
# Machine-wide like HIVE_HOME: one KDC and one server per machine, whichever checkout
# (a CI clone, say) runs this script; a per-checkout folder would find the port taken.
# Configuration: kerberos/krb5.conf.in, kerberos/kdc.conf.in, kerberos/core-site.xml.
KRB_DIR=${EXTDATA_KERBEROS_HOME:-/var/lib/extdata-kerberos}
KRB_REALM=EXTDATA.TEST
KRB_KDC_PORT=10088
KRB_HIVE_PORT=10002
KRB_SPNEGO_PORT=10006
KRB_SPNEGO_PATH=cliservice
KRB_SERVICE=hive/localhost      # the client asks for hive@localhost (option principal)
# HiveServer2's hive.server2.authentication.spnego.principal (HTTP/_HOST in production):
# the SPNEGO server's HTTP tickets are for it.
KRB_HTTP_SERVICE=HTTP/localhost
KRB_USER=extdata                # the client's principal; the server sees this user
# A service principal of the realm whose key no server has: a ticket for it is refused
# by the server (the wrong-principal test).
KRB_STRANGER_SERVICE=HTTP/elsewhere
# The SPNEGO server is the seventh JVM of the services: a smaller heap than the others'
# 1 GB, enough for the tests' results (the conformance suite included), the serial
# collector and two malloc arenas (glibc's default, 8 per core, kept the memory of
# Spark's compiler and worker threads resident long after the tests).
KRB_SPNEGO_MEMORY=512m
KRB_SPNEGO_JAVA_OPTIONS=-XX:+UseSerialGC

# krb_env CMD...: CMD with this KDC's configuration and the client's ticket cache.
krb_env() {
    env KRB5_CONFIG="$KRB_DIR/krb5.conf" KRB5_KDC_PROFILE="$KRB_DIR/kdc.conf" \
        KRB5CCNAME="FILE:$KRB_DIR/ccache" "$@"
}

krb_kadmin() {
    local out
    out=$(krb_env kadmin.local -r "$KRB_REALM" -q "$1" 2>&1) || die "kadmin.local '$1' failed: $out"
    printf '%s\n' "$out"
}

# The Kerberos servers by kind: binary (SASL GSSAPI) and spnego (HTTP transport).
krb_server_dir() {
    case $1 in
        binary) printf '%s/spark' "$KRB_DIR" ;;
        spnego) printf '%s/spnego' "$KRB_DIR" ;;
    esac
}

krb_server_port() {
    case $1 in
        binary) printf '%s' "$KRB_HIVE_PORT" ;;
        spnego) printf '%s' "$KRB_SPNEGO_PORT" ;;
    esac
}

# krb_server_settings KIND: the server's --hiveconf settings, one a line.
krb_server_settings() {
    printf '%s\n' "hive.server2.authentication.kerberos.principal=$KRB_SERVICE@$KRB_REALM" \
        "hive.server2.authentication.kerberos.keytab=$KRB_DIR/hive.keytab"
    if [[ $1 == spnego ]]; then
        printf '%s\n' hive.server2.transport.mode=http \
            "hive.server2.thrift.http.port=$KRB_SPNEGO_PORT" \
            "hive.server2.thrift.http.path=$KRB_SPNEGO_PATH" \
            "hive.server2.authentication.spnego.principal=$KRB_HTTP_SERVICE@$KRB_REALM" \
            "hive.server2.authentication.spnego.keytab=$KRB_DIR/HTTP.keytab"
    fi
}

# krb_hive_query_ok: a real query through beeline on the binary server with the
# client's ticket (hive-jdbc's Kerberos login needs Hadoop's security setting from
# hadoop-conf and the JVM's krb5.conf; Java takes the cache as a plain path).
krb_hive_query_ok() {
    local spark_home out
    spark_home=$(hive_spark_home) || return 1
    out=$(cd / && env -i PATH="$PATH" SPARK_HOME="$spark_home" \
        HADOOP_CONF_DIR="$KRB_DIR/hadoop-conf" KRB5CCNAME="$KRB_DIR/ccache" \
        JAVA_TOOL_OPTIONS="-Djava.security.krb5.conf=$KRB_DIR/krb5.conf" \
        timeout 90 "$spark_home/bin/beeline" \
        -u "jdbc:hive2://127.0.0.1:$KRB_HIVE_PORT/default;principal=$KRB_SERVICE@$KRB_REALM" \
        --silent=true --outputformat=csv2 --showHeader=false \
        -e "SELECT concat('extdata-ok-', 40 + 2, '-', current_user()) AS answer" 2>&1) || return 1
    grep -q "extdata-ok-42-$KRB_USER" <<<"$out"
}

# krb_spnego_login_ok: one POST to the SPNEGO server with a token for its HTTP
# principal (curl --negotiate, with the client's ticket). Not beeline: hive-jdbc 2.3
# sends `Authorization: Negotiate : <token>`, which Spark 4.3's server refuses
# ("Illegal base64 character 3a"). The empty body is no Thrift call (the server answers
# 500 to it, with a stack trace in its log), but the login is checked first: the answer
# carries the server's cookie for the ticket's user.
krb_spnego_login_ok() {
    local out
    out=$(cd / && krb_env curl -sS --max-time 30 --negotiate -u : -X POST \
        -H 'Content-Type: application/x-thrift' --data-binary '' -o /dev/null -D - \
        "http://localhost:$KRB_SPNEGO_PORT/$KRB_SPNEGO_PATH" 2>&1) || return 1
    grep -qi "^set-cookie: hive.server2.auth=cu=$KRB_USER&" <<<"$out"
}

# krb_hive_ok KIND: whether the server of KIND logs in the client with its ticket.
krb_hive_ok() {
    case $1 in
        binary) krb_hive_query_ok ;;
        spnego) krb_spnego_login_ok ;;
    esac
}

# krb_hive_start KIND: starts the server in the background (krb_hive_wait waits).
krb_hive_start() {
    local kind=$1 dir port setting settings=() spark_args=() java_options
    java_options="-Djava.security.krb5.conf=$KRB_DIR/krb5.conf"
    dir=$(krb_server_dir "$kind")
    port=$(krb_server_port "$kind")
    mkdir -p "$dir"
    while IFS= read -r setting; do
        settings+=("$setting")
    done < <(krb_server_settings "$kind")
    krb_server_conf "$kind" >"$dir/server.conf"
    if [[ $kind == spnego ]]; then
        spark_args=(--driver-memory "$KRB_SPNEGO_MEMORY")
        java_options="$java_options $KRB_SPNEGO_JAVA_OPTIONS"
        local -x MALLOC_ARENA_MAX=2
    fi
    note "starting Spark Thrift server (KERBEROS, $kind) on 127.0.0.1:$port (takes ~15-60 s)"
    HADOOP_CONF_DIR=$KRB_DIR/hadoop-conf KRB5_CONFIG=$KRB_DIR/krb5.conf \
        KRB5CCNAME=FILE:$dir/server-ccache \
        spark_thrift_start "$dir" "$port" KERBEROS \
        --conf "spark.driver.extraJavaOptions=$java_options" \
        --conf spark.hadoop.hadoop.security.authentication=kerberos \
        "${spark_args[@]}" \
        -- \
        "${settings[@]}"
}

krb_hive_wait() {
    local kind=$1 dir port i
    dir=$(krb_server_dir "$kind")
    port=$(krb_server_port "$kind")
    for ((i = 0; i < 240; i++)); do
        port_open "$port" && break
        pid_alive "$dir/server.pid" || die "the Kerberos hive server ($kind) exited; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
        sleep 0.5
    done
    port_open "$port" || die "the Kerberos hive server ($kind) did not open port $port within 120 s; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
    krb_hive_ok "$kind" || die "the Kerberos hive server ($kind) on $port does not log in with a ticket; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
}

# krb_server_conf KIND: what DIR/server.conf records of the server's start, so that a
# server started with other settings or JVM options is restarted.
krb_server_conf() {
    krb_server_settings "$1"
    if [[ $1 == spnego ]]; then
        printf 'jvm: --driver-memory %s %s MALLOC_ARENA_MAX=2\n' "$KRB_SPNEGO_MEMORY" "$KRB_SPNEGO_JAVA_OPTIONS"
    fi
}

# krb_hive_ensure KIND CONF_CHANGED: leaves a healthy server with the same settings
# alone; otherwise (re)starts it without waiting (krb_hive_wait does, so that both
# servers boot at the same time) and adds KIND to KRB_STARTED.
krb_hive_ensure() {
    local kind=$1 conf_changed=$2 dir port
    dir=$(krb_server_dir "$kind")
    port=$(krb_server_port "$kind")
    if port_open "$port"; then
        # A server started before server.conf was kept has none: kept if it answers.
        if ((!conf_changed)) && { [[ ! -f $dir/server.conf ]] ||
            [[ $(cat "$dir/server.conf") == "$(krb_server_conf "$kind")" ]]; } &&
            krb_hive_ok "$kind"; then
            [[ -f $dir/server.conf ]] || krb_server_conf "$kind" >"$dir/server.conf"
            note "ok       hive KERBEROS server ($kind) on $port is up and logs in with a ticket"
            return 0
        fi
        note "hive KERBEROS server ($kind) on $port must be restarted"
        spark_stop "$dir"
        ! port_open "$port" ||
            die "port $port is taken by something that is not this machine's Kerberos hive server ($kind)"
    fi
    krb_hive_start "$kind"
    KRB_STARTED+=("$kind")
}

setup_kerberos() {
    log "Kerberos (MIT KDC on 127.0.0.1:$KRB_KDC_PORT, Spark Thrift servers with KERBEROS on $KRB_HIVE_PORT (binary) and $KRB_SPNEGO_PORT (HTTP, SPNEGO))"
    if ! command -v kadmin.local >/dev/null || ! command -v krb5kdc >/dev/null ||
        ! command -v kinit >/dev/null; then
        # kadmin.local is in krb5-admin-server; its kadmind is not started.
        apt_install krb5-kdc krb5-admin-server krb5-user
    fi
    hive_spark_home >/dev/null ||
        die "the Kerberos hive server needs the hive service's pyspark: run scripts/services.sh hive kerberos"
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    mkdir -p "$KRB_DIR/db" "$KRB_DIR/hadoop-conf"
    chmod 700 "$KRB_DIR/db"

    local conf_changed=0
    # No DNS, no reverse lookups, TCP only (Java's and MIT's clients alike).
    if render_to "$KRB_DIR/krb5.conf" kerberos/krb5.conf.in KRB_REALM KRB_KDC_PORT; then
        conf_changed=1
        changed "$KRB_DIR/krb5.conf"
    fi
    if render_to "$KRB_DIR/kdc.conf" kerberos/kdc.conf.in KRB_REALM KRB_KDC_PORT KRB_DIR; then
        conf_changed=1
        changed "$KRB_DIR/kdc.conf"
    fi
    # Read by Hadoop's UserGroupInformation in the server and in beeline.
    if update_file "$KRB_DIR/hadoop-conf/core-site.xml" <"$SERVICES_DIR/kerberos/core-site.xml"; then
        conf_changed=1
        changed "$KRB_DIR/hadoop-conf/core-site.xml"
    fi

    if [[ ! -f $KRB_DIR/db/principal ]]; then
        # The master password is only ever needed through the stash file.
        local out
        out=$(krb_env kdb5_util create -s -r "$KRB_REALM" -P "$(openssl rand -hex 24)" 2>&1) ||
            die "creating the KDC database failed: $out"
        # Keys, tickets and a running KDC of an earlier database are all stale.
        rm -f "$KRB_DIR"/*.keytab "$KRB_DIR/ccache"
        conf_changed=1
        changed "created the KDC database for $KRB_REALM"
    fi
    local principal keytab listing
    for principal in "$KRB_SERVICE" "$KRB_HTTP_SERVICE" "$KRB_USER"; do
        # Captured first: an early `grep -q` exit would kill the writer with SIGPIPE,
        # which pipefail reports as "no such principal".
        listing=$(krb_kadmin "getprinc $principal")
        if ! grep -q "^Principal: $principal@$KRB_REALM\$" <<<"$listing"; then
            krb_kadmin "addprinc -randkey $principal" >/dev/null
            changed "principal $principal@$KRB_REALM"
        fi
        keytab=$KRB_DIR/${principal%%/*}.keytab     # hive.keytab, HTTP.keytab, extdata.keytab
        if [[ ! -s $keytab ]]; then
            krb_kadmin "ktadd -norandkey -k $keytab $principal" >/dev/null
            chmod 600 "$keytab"
            changed "keytab $keytab"
        fi
    done

    if port_open "$KRB_KDC_PORT" && ! pid_alive "$KRB_DIR/kdc.pid" krb5kdc; then
        die "port $KRB_KDC_PORT is taken by something that is not this checkout's KDC ($KRB_DIR/kdc.pid)"
    fi
    if pid_alive "$KRB_DIR/kdc.pid" krb5kdc && ((conf_changed)); then
        local pid
        pid=$(pidfile_pid "$KRB_DIR/kdc.pid" krb5kdc)
        kill -TERM "$pid"
        wait_exit "$pid" 20 0.25 || true
        changed "stopped the KDC (its configuration or database changed)"
    fi
    if ! pid_alive "$KRB_DIR/kdc.pid" krb5kdc; then
        krb_env krb5kdc -P "$KRB_DIR/kdc.pid" >/dev/null 2>&1 ||
            die "krb5kdc did not start; see $KRB_DIR/kdc.log:
$(tail -n 20 "$KRB_DIR/kdc.log" 2>/dev/null)"
        changed "started the KDC on 127.0.0.1:$KRB_KDC_PORT"
    fi

    # A fresh ticket for the client when it has none or it is older than 12 hours (a
    # 24-hour ticket then outlives any test run).
    if ! krb_env klist -s 2>/dev/null ||
        [[ -n $(find "$KRB_DIR/ccache" -mmin +720 2>/dev/null) ]]; then
        local out i
        for ((i = 0; i < 20; i++)); do
            out=$(krb_env kinit -kt "$KRB_DIR/$KRB_USER.keytab" "$KRB_USER@$KRB_REALM" 2>&1) && break
            sleep 0.25     # the KDC may still be opening its port
        done
        krb_env klist -s || die "kinit -kt $KRB_DIR/$KRB_USER.keytab failed: $out"
        changed "ticket for $KRB_USER@$KRB_REALM in $KRB_DIR/ccache"
    fi
    listing=$(krb_kadmin "getprinc $KRB_STRANGER_SERVICE")
    if ! grep -q "^Principal: $KRB_STRANGER_SERVICE@$KRB_REALM\$" <<<"$listing"; then
        krb_kadmin "addprinc -randkey $KRB_STRANGER_SERVICE" >/dev/null
        changed "principal $KRB_STRANGER_SERVICE@$KRB_REALM (no keytab)"
    fi
    for principal in "$KRB_SERVICE" "$KRB_HTTP_SERVICE" "$KRB_STRANGER_SERVICE"; do
        check_ok "kerberos: service ticket for $principal@$KRB_REALM" \
            "$principal@$KRB_REALM: kvno = 1" krb_env kvno "$principal@$KRB_REALM"
    done

    local kind
    KRB_STARTED=()
    krb_hive_ensure binary "$conf_changed"
    krb_hive_ensure spnego "$conf_changed"
    for kind in "${KRB_STARTED[@]}"; do
        krb_hive_wait "$kind"
        changed "started hive KERBEROS server ($kind) on $(krb_server_port "$kind")"
    done
    note "ok       kerberos: beeline (binary) and curl (SPNEGO) log in with the ticket of $KRB_USER@$KRB_REALM"
    check_refused "kerberos: the SPNEGO server without a ticket" '401' \
        env KRB5_CONFIG="$KRB_DIR/krb5.conf" KRB5CCNAME=MEMORY:empty curl -fsS --max-time 30 \
        --negotiate -u : -X POST --data-binary '' -o /dev/null -w '%{http_code}' \
        "http://localhost:$KRB_SPNEGO_PORT/$KRB_SPNEGO_PATH"

    render_env kerberos KRB_HIVE_PORT KRB_SERVICE KRB_REALM KRB_USER KRB_DIR \
        KRB_SPNEGO_PORT KRB_SPNEGO_PATH KRB_HTTP_SERVICE KRB_STRANGER_SERVICE
}
