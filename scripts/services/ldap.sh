# shellcheck shell=bash
# A throw-away OpenLDAP server (Debian's slapd, on a configuration of its own) on
# 127.0.0.1:$LDAP_PORT with one user, and two Spark Thrift servers with
# hive.server2.authentication=LDAP that check passwords against it, both over TLS
# (hive.server2.use.SSL with a keystore made from the test CA's server certificate):
# the binary transport (SASL PLAIN) on $LDAP_HIVE_PORT and the HTTP transport (HTTP
# Basic, path $LDAP_HTTP_PATH) on $LDAP_HTTP_PORT — Spark's Thrift server runs one
# transport per JVM. For the live LDAP, TLS and HTTPS tests
# (crates/extdata-hive/tests/ldap.rs, tests/http.rs). The packaged slapd is
# left unconfigured and stopped (debconf: slapd/no_configuration); configuration and
# database live in $LDAP_DIR, machine-wide like the hive and kerberos services' folders.
# Needs the pyspark of the hive service. Configuration: ldap/slapd.conf.in,
# ldap/base.ldif.in.
LDAP_DIR=${EXTDATA_LDAP_HOME:-/var/lib/extdata-ldap}
LDAP_PORT=10389
LDAP_HIVE_PORT=10003
LDAP_HTTP_PORT=10005
# Not the default path (cliservice), as a gateway would publish it.
LDAP_HTTP_PATH=gateway/cliservice
LDAP_SUFFIX=dc=extdata,dc=test
LDAP_PEOPLE=ou=people,$LDAP_SUFFIX
LDAP_USER=$PW_USER
LDAP_PASSWORD=$PW_PASSWORD
# Keystore and truststore of the Spark server and beeline: throw-away PKCS12 files of
# public test material (the server key is in $TLS_DIR anyway); Java wants a password.
LDAP_STORE_PASSWORD=extdata-store-pw

# ldap_hive_stores: the Spark server's keystore (test CA's server certificate and key)
# and beeline's truststore (the test CA), named after the certificate's fingerprint, so
# that new TLS material gives new file names and so other settings, which restarts the
# server. Sets LDAP_KEYSTORE and LDAP_TRUSTSTORE.
ldap_hive_stores() {
    local dir fp keystore truststore
    dir=$(hive_server_dir LDAP)
    mkdir -p "$dir"
    fp=$(openssl x509 -in "$TLS_DIR/server.pem" -noout -fingerprint -sha256 | tr -d ':' | sed 's/.*=//' | cut -c1-16)
    keystore=$dir/keystore-$fp.p12
    truststore=$dir/truststore-$fp.p12
    if [[ ! -s $keystore ]]; then
        rm -f "$dir"/keystore-*.p12
        (umask 077 && openssl pkcs12 -export -in "$TLS_DIR/server.pem" -inkey "$TLS_DIR/server.key" \
            -certfile "$TLS_DIR/ca.pem" -name server -passout "pass:$LDAP_STORE_PASSWORD" \
            -out "$keystore") || die "openssl pkcs12 failed"
        changed "keystore $keystore"
    fi
    if [[ ! -s $truststore ]]; then
        rm -f "$dir"/truststore-*.p12
        keytool -importcert -noprompt -alias extdata-test-ca -file "$TLS_DIR/ca.pem" \
            -storetype PKCS12 -keystore "$truststore" -storepass "$LDAP_STORE_PASSWORD" \
            >/dev/null 2>&1 || die "keytool -importcert failed"
        changed "truststore $truststore"
    fi
    LDAP_KEYSTORE=$keystore
    LDAP_TRUSTSTORE=$truststore
}

ldap_url() {
    printf 'ldap://127.0.0.1:%s/' "$LDAP_PORT"
}

# ldap_bind_ok USER PASSWORD: a simple bind as uid=USER under $LDAP_PEOPLE.
ldap_bind_ok() {
    ldapwhoami -x -H "$(ldap_url)" -D "uid=$1,$LDAP_PEOPLE" -w "$2" 2>&1
}

ldap_stop() {
    local pid
    pid=$(pidfile_pid "$LDAP_DIR/slapd.pid" slapd || true)
    [[ -n $pid ]] || { rm -f "$LDAP_DIR/slapd.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 40 0.25 || die "slapd ($pid) did not stop"
    rm -f "$LDAP_DIR/slapd.pid"
}

# True when the database holds the test user.
ldap_has_user() {
    local out
    # Captured first: grep -q would end the pipe early (see kerberos.sh).
    out=$(slapcat -f "$LDAP_DIR/slapd.conf" -a "(uid=$LDAP_USER)" 2>/dev/null) || return 1
    grep -q "^dn: uid=$LDAP_USER,$LDAP_PEOPLE\$" <<<"$out"
}

setup_ldap() {
    log "LDAP (slapd on 127.0.0.1:$LDAP_PORT, Spark Thrift servers with LDAP over TLS on $LDAP_HIVE_PORT (binary) and $LDAP_HTTP_PORT (HTTP))"
    if ! command -v slapd >/dev/null && [[ ! -x /usr/sbin/slapd ]] ||
        ! command -v ldapwhoami >/dev/null; then
        # No default directory, no running daemon: this script runs its own.
        echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
        apt_install slapd ldap-utils
    fi
    hive_spark_home >/dev/null ||
        die "the LDAP hive server needs the hive service's pyspark: run scripts/services.sh hive ldap"
    mkdir -p "$LDAP_DIR/db"

    local restart=0
    if render_to "$LDAP_DIR/slapd.conf" ldap/slapd.conf.in LDAP_DIR LDAP_SUFFIX; then
        restart=1
        changed "$LDAP_DIR/slapd.conf"
    fi
    if ! ldap_has_user; then
        ldap_stop
        rm -rf "$LDAP_DIR/db"
        mkdir -p "$LDAP_DIR/db"
        local ldif out
        ldif=$(mktemp)
        render ldap/base.ldif.in LDAP_SUFFIX LDAP_PEOPLE LDAP_USER \
            LDAP_HASH="$(slappasswd -s "$LDAP_PASSWORD")" >"$ldif"
        out=$(slapadd -q -f "$LDAP_DIR/slapd.conf" -l "$ldif" 2>&1) || die "slapadd failed: $out"
        rm -f "$ldif"
        restart=1
        changed "LDAP directory $LDAP_SUFFIX with the user uid=$LDAP_USER"
    fi
    chown -R openldap:openldap "$LDAP_DIR"
    chmod 700 "$LDAP_DIR/db"

    if port_open "$LDAP_PORT" && ! pid_alive "$LDAP_DIR/slapd.pid" slapd; then
        die "port $LDAP_PORT is taken by something that is not this machine's test slapd ($LDAP_DIR/slapd.pid)"
    fi
    if ((restart)) && pid_alive "$LDAP_DIR/slapd.pid" slapd; then
        ldap_stop
        changed "stopped slapd (its configuration or directory changed)"
    fi
    if ! pid_alive "$LDAP_DIR/slapd.pid" slapd; then
        local out
        out=$(slapd -f "$LDAP_DIR/slapd.conf" -h "$(ldap_url)" -u openldap -g openldap 2>&1) ||
            die "slapd did not start: $out"
        retry 40 0.25 port_open "$LDAP_PORT" || die "slapd did not open port $LDAP_PORT"
        changed "started slapd on 127.0.0.1:$LDAP_PORT"
    fi
    check_ok "ldap: uid=$LDAP_USER binds with its password" "dn:uid=$LDAP_USER,$LDAP_PEOPLE" \
        ldap_bind_ok "$LDAP_USER" "$LDAP_PASSWORD"
    check_refused "ldap: uid=$LDAP_USER with a wrong password" 'Invalid credentials' \
        ldap_bind_ok "$LDAP_USER" "not-$LDAP_PASSWORD"

    command -v keytool >/dev/null || apt_install openjdk-17-jre-headless
    ldap_hive_stores
    # Read by hive.sh's hive_start and hive_query: the two servers differ in their
    # transport only.
    local tls_conf tls_url
    tls_conf="hive.server2.authentication.ldap.url=$(ldap_url)
hive.server2.authentication.ldap.baseDN=$LDAP_PEOPLE
hive.server2.use.SSL=true
hive.server2.keystore.path=$LDAP_KEYSTORE
hive.server2.keystore.password=$LDAP_STORE_PASSWORD"
    tls_url=";ssl=true;sslTrustStore=$LDAP_TRUSTSTORE;trustStorePassword=$LDAP_STORE_PASSWORD"
    # shellcheck disable=SC2034
    HIVE_MODE_CONF[LDAP]=$tls_conf
    # shellcheck disable=SC2034
    HIVE_MODE_CONF[LDAP_HTTP]="$tls_conf
hive.server2.transport.mode=http
hive.server2.thrift.http.port=$LDAP_HTTP_PORT
hive.server2.thrift.http.path=$LDAP_HTTP_PATH"
    # shellcheck disable=SC2034
    HIVE_MODE_AUTH[LDAP_HTTP]=LDAP
    # shellcheck disable=SC2034
    HIVE_MODE_URL[LDAP]=$tls_url
    # shellcheck disable=SC2034
    HIVE_MODE_URL[LDAP_HTTP]="$tls_url;transportMode=http;httpPath=$LDAP_HTTP_PATH"
    # shellcheck disable=SC2034
    HIVE_MODE_USER[LDAP]=$LDAP_USER
    # shellcheck disable=SC2034
    HIVE_MODE_USER[LDAP_HTTP]=$LDAP_USER
    # shellcheck disable=SC2034
    HIVE_MODE_PASSWORD[LDAP]=$LDAP_PASSWORD
    # shellcheck disable=SC2034
    HIVE_MODE_PASSWORD[LDAP_HTTP]=$LDAP_PASSWORD
    HIVE_STARTED=()
    hive_ensure LDAP "$LDAP_HIVE_PORT"
    hive_ensure LDAP_HTTP "$LDAP_HTTP_PORT"
    local started
    for started in "${HIVE_STARTED[@]}"; do
        hive_wait "${started%%:*}" "${started##*:}"
    done
    note "ok       ldap: beeline logs in to the hive LDAP servers as $LDAP_USER over TLS (binary and HTTP)"
    check_refused "ldap: the hive LDAP server refuses a wrong password" \
        'Error validating the login|Peer indicated failure' \
        hive_query "$LDAP_HIVE_PORT" LDAP "not-$LDAP_PASSWORD"
    check_refused "ldap: the hive LDAP server over HTTP refuses a wrong password" \
        '401|Unauthorized|Error validating' \
        hive_query "$LDAP_HTTP_PORT" LDAP_HTTP "not-$LDAP_PASSWORD"

    render_env ldap LDAP_HIVE_PORT LDAP_HTTP_PORT LDAP_HTTP_PATH LDAP_USER LDAP_PASSWORD \
        LDAP_PORT LDAP_HIVE_LOG="$(hive_server_dir LDAP)/server.log" \
        LDAP_HTTP_LOG="$(hive_server_dir LDAP_HTTP)/server.log"
}
