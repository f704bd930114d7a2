# shellcheck shell=bash
# A throw-away MIT Kerberos KDC on 127.0.0.1:$KRB_KDC_PORT (realm $KRB_REALM) and a third
# Spark Thrift server with hive.server2.authentication=KERBEROS on $KRB_HIVE_PORT, for the
# live auth=GSSAPI test (crates/extdata-hive/tests/gssapi.rs). Every file (configuration,
# KDC database, keytabs, ticket cache, the server's state) lives in $KRB_DIR; nothing
# under /etc is read or written (KRB5_CONFIG, KRB5_KDC_PROFILE, java.security.krb5.conf).
# Needs the pyspark of the hive service. Port 10088, not 88: no clash with a real KDC.
# Machine-wide like HIVE_HOME: one KDC and one server per machine, whichever checkout
# (a CI clone, say) runs this script; a per-checkout folder would find the port taken.
# Configuration: kerberos/krb5.conf.in, kerberos/kdc.conf.in, kerberos/core-site.xml.
KRB_DIR=${EXTDATA_KERBEROS_HOME:-/var/lib/extdata-kerberos}
KRB_REALM=EXTDATA.TEST
KRB_KDC_PORT=10088
KRB_HIVE_PORT=10002
KRB_SERVICE=hive/localhost      # the client asks for hive@localhost (option principal)
KRB_USER=extdata                # the client's principal; the server sees this user

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

# krb_hive_query_ok: a real query through beeline with the client's ticket (hive-jdbc's
# Kerberos login needs Hadoop's security setting from hadoop-conf and the JVM's
# krb5.conf; Java takes the cache as a plain path).
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

krb_hive_start() {
    local dir=$KRB_DIR/spark
    note "starting Spark Thrift server (KERBEROS) on 127.0.0.1:$KRB_HIVE_PORT (takes ~15-60 s)"
    HADOOP_CONF_DIR=$KRB_DIR/hadoop-conf KRB5_CONFIG=$KRB_DIR/krb5.conf \
        KRB5CCNAME=FILE:$dir/server-ccache \
        spark_thrift_start "$dir" "$KRB_HIVE_PORT" KERBEROS \
        --conf "spark.driver.extraJavaOptions=-Djava.security.krb5.conf=$KRB_DIR/krb5.conf" \
        --conf spark.hadoop.hadoop.security.authentication=kerberos \
        -- \
        "hive.server2.authentication.kerberos.principal=$KRB_SERVICE@$KRB_REALM" \
        "hive.server2.authentication.kerberos.keytab=$KRB_DIR/hive.keytab"
}

krb_hive_stop() {
    spark_stop "$KRB_DIR/spark"
}

krb_hive_wait() {
    local dir=$KRB_DIR/spark i
    for ((i = 0; i < 240; i++)); do
        port_open "$KRB_HIVE_PORT" && break
        pid_alive "$dir/server.pid" || die "the Kerberos hive server exited; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
        sleep 0.5
    done
    port_open "$KRB_HIVE_PORT" || die "the Kerberos hive server did not open port $KRB_HIVE_PORT within 120 s; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
    krb_hive_query_ok || die "the Kerberos hive server on $KRB_HIVE_PORT does not answer a query with a ticket; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
}

setup_kerberos() {
    log "Kerberos (MIT KDC on 127.0.0.1:$KRB_KDC_PORT, Spark Thrift server with KERBEROS on $KRB_HIVE_PORT)"
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
    for principal in "$KRB_SERVICE" "$KRB_USER"; do
        # Captured first: an early `grep -q` exit would kill the writer with SIGPIPE,
        # which pipefail reports as "no such principal".
        listing=$(krb_kadmin "getprinc $principal")
        if ! grep -q "^Principal: $principal@$KRB_REALM\$" <<<"$listing"; then
            krb_kadmin "addprinc -randkey $principal" >/dev/null
            changed "principal $principal@$KRB_REALM"
        fi
        keytab=$KRB_DIR/${principal%%/*}.keytab     # hive.keytab, extdata.keytab
        if [[ ! -s $keytab ]]; then
            krb_kadmin "ktadd -norandkey -k $keytab $principal" >/dev/null
            chmod 600 "$keytab"
            changed "keytab $keytab"
        fi
    done

    if port_open "$KRB_KDC_PORT" && ! pid_alive "$KRB_DIR/kdc.pid"; then
        die "port $KRB_KDC_PORT is taken by something that is not this checkout's KDC ($KRB_DIR/kdc.pid)"
    fi
    if pid_alive "$KRB_DIR/kdc.pid" && ((conf_changed)); then
        local pid
        pid=$(cat "$KRB_DIR/kdc.pid")
        kill -TERM "$pid"
        wait_exit "$pid" 20 0.25 || true
        changed "stopped the KDC (its configuration or database changed)"
    fi
    if ! pid_alive "$KRB_DIR/kdc.pid"; then
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
    check_ok "kerberos: service ticket for $KRB_SERVICE@$KRB_REALM" \
        "$KRB_SERVICE@$KRB_REALM: kvno = 1" krb_env kvno "$KRB_SERVICE@$KRB_REALM"

    local started=0
    if port_open "$KRB_HIVE_PORT"; then
        if ((!conf_changed)) && krb_hive_query_ok; then
            note "ok       hive KERBEROS server on $KRB_HIVE_PORT is up and answers queries"
        else
            note "hive KERBEROS server on $KRB_HIVE_PORT must be restarted"
            krb_hive_stop
            ! port_open "$KRB_HIVE_PORT" ||
                die "port $KRB_HIVE_PORT is taken by something that is not this checkout's Kerberos hive server"
            krb_hive_start
            started=1
        fi
    else
        krb_hive_start
        started=1
    fi
    if ((started)); then
        krb_hive_wait
        changed "started hive KERBEROS server on $KRB_HIVE_PORT"
    fi
    note "ok       kerberos: beeline logs in with the ticket of $KRB_USER@$KRB_REALM"

    render_env kerberos KRB_HIVE_PORT KRB_SERVICE KRB_REALM KRB_USER KRB_DIR
}
