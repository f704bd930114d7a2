#!/usr/bin/env bash
# Bring up the local database servers the test suite needs and write the settings the
# tests read to .services/env (source it: `. .services/env`).
#
#   scripts/services.sh [service...]      default: every known service
#
# Services: postgres (alias postgresql), mysql (alias mariadb), clickhouse, hive (two Spark Thrift servers),
# kerberos (a throw-away KDC and a Kerberos Spark Thrift server; needs hive's pyspark),
# reliability (restartable PostgreSQL and MariaDB instances for the restart tests; scripts/reliability.sh).
# Needs root on Debian 12 (installs packages, writes under /etc). Idempotent: a second
# run changes nothing and says so. See ../shared/SERVICES.md for what works here.
#
# Adding a service: write setup_<name> (install, configure, start, create users, verify,
# then `write_env_fragment <name>`), add <name> to KNOWN_SERVICES and to run_service.
# Each service keeps its own fragment under .services/env.d/, so running the script for
# one service leaves the settings of the others in .services/env alone.
set -Eeuo pipefail
umask 022

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR=$REPO/.services
TLS_DIR=$STATE_DIR/tls
WRONG_HOST=extdata-wrong-host.test
ENV_DIR=$STATE_DIR/env.d
ENV_FILE=$STATE_DIR/env

KNOWN_SERVICES=(postgres mysql hive kerberos clickhouse reliability)

TEST_DB=extdata_test
PW_USER=extdata_pw
PW_PASSWORD=extdata-secret-pw
CERT_USER=extdata_cert          # logs in by client certificate only; CN = user name
CA_CN=extdata-test-ca
WRONG_CA_CN=extdata-wrong-ca

PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_SOCKET_DIR=/var/run/postgresql
PG_CONF_DIR=/etc/postgresql/$PG_VERSION/$PG_CLUSTER
PG_TLS_DIR=$PG_CONF_DIR/extdata-tls
PG_LOG=/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log

MY_PORT=3306
MY_SOCKET=/run/mysqld/mysqld.sock
MY_PIDFILE=/run/mysqld/mysqld.pid
MY_CNF_DIR=/etc/mysql/mariadb.conf.d
MY_CNF=$MY_CNF_DIR/99-extdata.cnf
MY_TLS_DIR=/etc/mysql/extdata-tls
MY_CONSOLE_LOG=/var/log/mysql/mariadbd.console.log

CHANGES=()      # what this run changed, for the summary
UP=()           # services brought up by this run

# --------------------------------------------------------------------------- helpers

log()  { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die()  { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }
changed() { CHANGES+=("$*"); note "changed: $*"; }
# Inside $(...) and ( ... ) only pass the failure up, so it is reported once.
on_error() {
    ((BASH_SUBSHELL == 0)) || exit 1
    die "unexpected failure at line $1: $2"
}
trap 'on_error $LINENO "$BASH_COMMAND"' ERR

APT_UPDATED=0
apt_install() {
    local aptlog
    aptlog=$(mktemp)
    note "installing $* (apt-get; takes a while)"
    # Only refresh the package lists when something is actually missing.
    if ((!APT_UPDATED)); then
        apt-get update -q >"$aptlog" 2>&1 ||
            die "apt-get update failed:
$(tail -n 20 "$aptlog")"
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" \
        >"$aptlog" 2>&1 || die "apt-get install $* failed:
$(tail -n 20 "$aptlog")"
    rm -f "$aptlog"
    changed "installed $*"
}

# Replace FILE with stdin if the content differs, keeping FILE's owner and mode.
# Succeeds when the file changed, fails (status 1) when it already had this content.
update_file() {
    local dest=$1 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 1
    fi
    if [[ -f $dest ]]; then
        cat "$tmp" >"$dest"
        rm -f "$tmp"
    else
        mv "$tmp" "$dest"
        chmod 644 "$dest"
    fi
    return 0
}

# Copy SRC to DEST owned by OWNER (user:group) with MODE (e.g. 600).
# Succeeds when anything changed, fails when DEST was already identical.
sync_file() {
    local src=$1 dest=$2 owner=$3 mode=$4
    if [[ -f $dest ]] && cmp -s "$src" "$dest" &&
        [[ $(stat -c '%U:%G %a' "$dest") == "$owner $mode" ]]; then
        return 1
    fi
    install -o "${owner%%:*}" -g "${owner##*:}" -m "$mode" "$src" "$dest"
    return 0
}

# check_ok WHAT EXPECTED CMD...: CMD must succeed and print exactly EXPECTED.
check_ok() {
    local what=$1 expected=$2 out
    shift 2
    out=$("$@" 2>&1) || die "check failed: $what: $out"
    [[ $out == "$expected" ]] || die "check failed: $what: expected '$expected', got '$out'"
    note "ok       $what"
}

# check_refused WHAT PATTERN CMD...: CMD must fail with a message matching PATTERN
# (so a server that is simply down does not count as a correct refusal).
check_refused() {
    local what=$1 pattern=$2 out
    shift 2
    if out=$("$@" 2>&1); then
        die "check failed: $what: was accepted ($out)"
    fi
    grep -qiE -- "$pattern" <<<"$out" ||
        die "check failed: $what: refused for an unexpected reason: $out"
    note "refused  $what"
}

# write_env_fragment SERVICE < KEY=VALUE lines
write_env_fragment() {
    mkdir -p "$ENV_DIR"
    local settings line
    settings=$(cat)
    # Every line must be a setting: a stray message would break `. .services/env`.
    while IFS= read -r line; do
        [[ -z $line || $line =~ ^[A-Z_][A-Z0-9_]*= ]] ||
            die "settings for $1: not a KEY=VALUE line: $line"
    done <<<"$settings"
    if update_file "$ENV_DIR/$1.env" <<<"$settings"; then changed "env settings for $1"; fi
}

# Quote a value for the env file only when the shell would need it.
env_quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:@,=+-]*$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

write_env() {
    local svc line required=()
    for svc in "${KNOWN_SERVICES[@]}"; do
        [[ -f $ENV_DIR/$svc.env ]] && required+=("$svc")
    done
    if {
        echo "# Written by scripts/services.sh; do not edit. Load with: . .services/env"
        for svc in tls "${required[@]}"; do
            [[ -f $ENV_DIR/$svc.env ]] || continue
            while IFS= read -r line; do
                [[ -n $line ]] || continue
                printf 'export %s=%s\n' "${line%%=*}" "$(env_quote "${line#*=}")"
            done <"$ENV_DIR/$svc.env"
        done
        printf 'export EXTDATA_TEST_REQUIRE=%s\n' "$(IFS=,; echo "${required[*]-}")"
    } | update_file "$ENV_FILE"; then
        changed "$ENV_FILE"
    fi
}

# ------------------------------------------------------------------------------ TLS

# True when CERT exists, is not about to expire, matches KEY and (if CA is given)
# was signed by CA. Anything else means: generate it again.
cert_usable() {
    local cert=$1 key=$2 ca=${3:-}
    [[ -s $cert && -s $key ]] || return 1
    openssl x509 -in "$cert" -noout -checkend 86400 >/dev/null 2>&1 || return 1
    [[ $(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null) == \
        "$(openssl pkey -in "$key" -pubout 2>/dev/null)" ]] || return 1
    if [[ -n $ca ]]; then
        openssl verify -CAfile "$ca" "$cert" >/dev/null 2>&1 || return 1
    fi
}

gen_key() {
    (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null)
    chmod 600 "$1"
}

# gen_ca CN CERT KEY: self-signed CA.
gen_ca() {
    local cn=$1 cert=$2 key=$3 cfg
    cfg=$(mktemp)
    cat >"$cfg" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $cn
[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    gen_key "$key"
    openssl req -x509 -new -config "$cfg" -extensions ext -key "$key" \
        -days 3650 -sha256 -out "$cert" 2>/dev/null
    rm -f "$cfg"
}

# gen_leaf CN CERT KEY EXTENDED_KEY_USAGE [SUBJECT_ALT_NAME]: signed by ca.pem.
gen_leaf() {
    local cn=$1 cert=$2 key=$3 eku=$4 san=${5:-} cfg csr
    cfg=$(mktemp)
    csr=$(mktemp)
    cat >"$cfg" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $cn
[ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = $eku
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
${san:+subjectAltName = $san}
EOF
    gen_key "$key"
    openssl req -new -config "$cfg" -key "$key" -out "$csr" 2>/dev/null
    openssl x509 -req -in "$csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 15)" -days 825 -sha256 \
        -extfile "$cfg" -extensions ext -out "$cert" 2>/dev/null
    rm -f "$cfg" "$csr"
}

setup_certs() {
    log "TLS material in $TLS_DIR"
    command -v openssl >/dev/null || apt_install openssl
    mkdir -p "$TLS_DIR"
    local d=$TLS_DIR
    if ! cert_usable "$d/ca.pem" "$d/ca.key"; then
        gen_ca "$CA_CN" "$d/ca.pem" "$d/ca.key"
        rm -f "$d/server.pem" "$d/client.pem"     # signed by the old CA
        changed "generated CA $d/ca.pem"
    fi
    if ! cert_usable "$d/server.pem" "$d/server.key" "$d/ca.pem"; then
        gen_leaf localhost "$d/server.pem" "$d/server.key" serverAuth \
            "DNS:localhost, IP:127.0.0.1, IP:::1"
        changed "generated server certificate $d/server.pem"
    fi
    if ! cert_usable "$d/client.pem" "$d/client.key" "$d/ca.pem"; then
        gen_leaf "$CERT_USER" "$d/client.pem" "$d/client.key" clientAuth
        changed "generated client certificate $d/client.pem (CN=$CERT_USER)"
    fi
    if [[ ! -s $d/wrong-ca.pem ]]; then
        # Only the certificate is needed (to show that trusting it fails); drop the key.
        gen_ca "$WRONG_CA_CN" "$d/wrong-ca.pem" "$d/wrong-ca.key"
        rm -f "$d/wrong-ca.key"
        changed "generated unrelated CA $d/wrong-ca.pem"
    fi
    # libpq refuses a client key that group or others can read.
    chmod 600 "$d/ca.key" "$d/server.key" "$d/client.key"
    # A name of 127.0.0.1 that the server certificate does not list: the TLS tests'
    # wrong host name (crates/extdata-reliability/tests/tls.rs reads it from /etc/hosts).
    if ! awk -v name="$WRONG_HOST" '$1 == "127.0.0.1" { for (i = 2; i <= NF; i++) if ($i == name) found = 1 }
            END { exit !found }' /etc/hosts; then
        printf '127.0.0.1 %s\n' "$WRONG_HOST" >>/etc/hosts
        changed "/etc/hosts: $WRONG_HOST is 127.0.0.1 (not in the server certificate)"
    fi

    write_env_fragment tls <<EOF
EXTDATA_TEST_TLS_DIR=$d
EXTDATA_TEST_CA=$d/ca.pem
EXTDATA_TEST_WRONG_CA=$d/wrong-ca.pem
EXTDATA_TEST_CLIENT_CERT=$d/client.pem
EXTDATA_TEST_CLIENT_KEY=$d/client.key
EOF
}

# ---------------------------------------------------------------------- PostgreSQL

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
    local i
    for ((i = 0; i < 60; i++)); do
        pg_isready -q -h "$PG_SOCKET_DIR" -p "$PG_PORT" && return 0
        sleep 0.5
    done
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

pg_hba_block() {
    # pg_hba.conf is first-match: these lines must come before the generic trust/peer
    # lines, or the test users would get in without a password / certificate.
    # `host` matches both hostssl and hostnossl.
    cat <<EOF
# BEGIN extdata test users (managed by scripts/services.sh)
local    all  $PW_USER    scram-sha-256
host     all  $PW_USER    all  scram-sha-256
hostssl  all  $CERT_USER  all  cert
local    all  $CERT_USER  reject
host     all  $CERT_USER  all  reject
# END extdata test users
EOF
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
    install -d -o postgres -g postgres -m 700 "$PG_TLS_DIR"
    local f
    for f in ca.pem server.pem server.key; do
        if sync_file "$TLS_DIR/$f" "$PG_TLS_DIR/$f" postgres:postgres 600; then
            changed "$PG_TLS_DIR/$f"
        fi
    done

    # conf.d is read in file-name order: extdata.conf sorts after 90-ci.conf, so ours wins.
    if update_file "$PG_CONF_DIR/conf.d/extdata.conf" <<EOF
# Managed by scripts/services.sh (extdata test server); rewritten on each run.
listen_addresses = '127.0.0.1'
port = $PG_PORT
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$PG_TLS_DIR/server.pem'
ssl_key_file = '$PG_TLS_DIR/server.key'
ssl_ca_file = '$PG_TLS_DIR/ca.pem'
EOF
    then
        chown postgres:postgres "$PG_CONF_DIR/conf.d/extdata.conf"
        changed "$PG_CONF_DIR/conf.d/extdata.conf"
    fi

    local hba=$PG_CONF_DIR/pg_hba.conf
    if {
        pg_hba_block
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
    pg_admin -d postgres -v pw="$PW_USER" -v cert="$CERT_USER" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'pw') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'cert')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'cert') \gexec
SELECT format('ALTER ROLE %I LOGIN', r) FROM unnest(ARRAY[:'pw', :'cert']) r
 WHERE NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = r) \gexec
SELECT format('ALTER ROLE %I PASSWORD NULL', :'cert')
 WHERE (SELECT rolpassword FROM pg_authid WHERE rolname = :'cert') IS NOT NULL \gexec
SQL
    # A SCRAM hash is salted, so setting the same password again would still rewrite
    # it: only set it when there is none or logging in with it does not work (our
    # pg_hba block is active by now, so the login really checks the password).
    if [[ $(pg_admin -d postgres -c "SELECT rolpassword LIKE 'SCRAM-SHA-256\$%' FROM pg_authid WHERE rolname = '$PW_USER'") != t ]] ||
        ! pg_client "host=127.0.0.1 port=$PG_PORT dbname=postgres user=$PW_USER password=$PW_PASSWORD sslmode=disable" >/dev/null 2>&1; then
        pg_admin -d postgres -v pw="$PW_USER" -v secret="$PW_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
SELECT format('ALTER ROLE %I PASSWORD %L', :'pw', :'secret') \gexec
SQL
        changed "set password of PostgreSQL role $PW_USER"
    fi

    if [[ -z $(pg_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$TEST_DB'") ]]; then
        pg_admin -d postgres -c "CREATE DATABASE $TEST_DB OWNER $PW_USER"
        changed "created PostgreSQL database $TEST_DB"
    fi
    # Since PostgreSQL 15 only the database owner may create in schema public.
    pg_admin -d "$TEST_DB" <<SQL
ALTER DATABASE $TEST_DB OWNER TO $PW_USER;
GRANT CONNECT, TEMPORARY ON DATABASE $TEST_DB TO $CERT_USER;
GRANT USAGE, CREATE ON SCHEMA public TO $CERT_USER;
SQL

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

    write_env_fragment postgres <<EOF
EXTDATA_TEST_POSTGRES_HOST=127.0.0.1
EXTDATA_TEST_POSTGRES_PORT=$PG_PORT
EXTDATA_TEST_POSTGRES_SOCKET=$PG_SOCKET_DIR
EXTDATA_TEST_POSTGRES_DATABASE=$TEST_DB
EXTDATA_TEST_POSTGRES_USER=$PW_USER
EXTDATA_TEST_POSTGRES_PASSWORD=$PW_PASSWORD
EXTDATA_TEST_POSTGRES_CERT_USER=$CERT_USER
EXTDATA_TEST_POSTGRES_URL=postgres://$PW_USER:$PW_PASSWORD@localhost:$PG_PORT/$TEST_DB?sslmode=verify-full&sslrootcert=$TLS_DIR/ca.pem
EOF
}

# ------------------------------------------------------------------------- MariaDB

# Admin over the socket as root: unix_socket auth on a fresh install, an empty
# password on the prepared machines.
my_admin() {
    mariadb --protocol=socket -S "$MY_SOCKET" -u root -N -B "$@"
}

my_running() {
    mysqladmin --protocol=socket -S "$MY_SOCKET" --connect-timeout=2 ping >/dev/null 2>&1
}

# Captured first rather than piped into `grep -q`: an early grep exit would make the
# writer die of SIGPIPE, which pipefail reports as a failure.
my_reads_cnf() {
    local defaults
    defaults=$(my_print_defaults --mysqld)
    grep -qxF -- "--ssl_cert=$MY_TLS_DIR/server.pem" <<<"$defaults"
}

mariadbd_alive() {
    local states
    states=$(ps -C mariadbd -o stat= || true)
    grep -q '^[^Z]' <<<"$states"
}

my_log_tail() {
    local f
    for f in /var/log/mysql/error.log "$MY_CONSOLE_LOG"; do
        [[ -s $f ]] && { echo "--- $f"; tail -n 15 "$f"; }
    done
    return 0
}

my_start() {
    # /run is a tmpfs: the socket directory vanishes with every boot of the machine.
    install -d -o mysql -g mysql -m 755 /run/mysqld
    mkdir -p "$(dirname "$MY_CONSOLE_LOG")"
    # No systemd here. --output keeps what mariadbd prints before its own error log is
    # open (a bad option, say), which --background would otherwise throw away.
    start-stop-daemon --start --oknodo --background --pidfile "$MY_PIDFILE" \
        --output "$MY_CONSOLE_LOG" --exec /usr/sbin/mariadbd -- --user=mysql
    local i
    for ((i = 0; i < 120; i++)); do
        if [[ -S $MY_SOCKET ]] && my_running; then return 0; fi
        # Give up early when mariadbd has already exited (a bad option, say).
        if ((i >= 4)) && ! mariadbd_alive; then break; fi
        sleep 0.5
    done
    die "MariaDB did not come up:
$(my_log_tail)"
}

my_stop() {
    local pid i
    pid=$(cat "$MY_PIDFILE" 2>/dev/null || true)
    mysqladmin --protocol=socket -S "$MY_SOCKET" -u root shutdown ||
        die "mysqladmin shutdown failed"
    if [[ -n $pid ]]; then
        for ((i = 0; i < 120; i++)); do
            # A zombie counts as gone: PID 1 here may be slow to reap it.
            [[ $(ps -o stat= -p "$pid" 2>/dev/null || true) == [^Z]* ]] || return 0
            sleep 0.5
        done
        die "MariaDB (pid $pid) did not stop within 60 s"
    fi
}

# Clients for the checks ignore every option file (--no-defaults must come first).
# The 10.11 client asks for TLS (unverified) by default, even over the socket: the
# checks say --skip-ssl or --ssl-ca explicitly.
my_client() {
    mariadb --no-defaults --connect-timeout=5 -N -B "$@" -e "
        SELECT CONCAT(SUBSTRING_INDEX(CURRENT_USER(), '@', 1), ' tls=',
                      IF(VARIABLE_VALUE <> '', 'yes', 'no'))
          FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_CIPHER'"
}

# The subject/issuer strings MariaDB compares are OpenSSL's X509_NAME_oneline form
# ("/CN=..."), which `-nameopt compat` prints.
x509_oneline() {
    openssl x509 -in "$2" -noout "-$1" -nameopt compat | sed "s/^$1=//"
}

setup_mariadb() {
    log "MariaDB"
    local fresh=0
    if [[ ! -x /usr/sbin/mariadbd ]]; then
        apt_install mariadb-server
        fresh=1
    fi

    local tls_changed=0 f mode
    install -d -o mysql -g mysql -m 750 "$MY_TLS_DIR"
    for f in ca.pem server.pem server.key; do
        mode=644
        [[ $f == *.key ]] && mode=600
        if sync_file "$TLS_DIR/$f" "$MY_TLS_DIR/$f" mysql:mysql "$mode"; then
            tls_changed=1
            changed "$MY_TLS_DIR/$f"
        fi
    done

    # Small-memory settings only on a server we installed ourselves (or that got them
    # from an earlier run): a prepared machine keeps its own tuning.
    if [[ -f $MY_CNF ]] && grep -q '^innodb_buffer_pool_size' "$MY_CNF"; then fresh=1; fi
    mkdir -p "$MY_CNF_DIR"
    local cnf_changed=0
    if {
        cat <<EOF
# Managed by scripts/services.sh (extdata test server); rewritten on each run.
[mariadbd]
bind-address = 127.0.0.1
ssl_ca = $MY_TLS_DIR/ca.pem
ssl_cert = $MY_TLS_DIR/server.pem
ssl_key = $MY_TLS_DIR/server.key
EOF
        if ((fresh)); then
            printf 'innodb_buffer_pool_size = 64M\nperformance_schema = OFF\n'
        fi
    } | update_file "$MY_CNF"; then
        cnf_changed=1
        changed "$MY_CNF"
    fi

    # Debian's stock my.cnf includes mariadb.conf.d/, but a hand-written one (as on the
    # prepared machines) may not, and then the file above is silently ignored.
    if ! my_reads_cnf; then
        printf '\n# Added by extdata scripts/services.sh\n!includedir %s/\n' "$MY_CNF_DIR" >>/etc/mysql/my.cnf
        changed "/etc/mysql/my.cnf now includes $MY_CNF_DIR/"
        my_reads_cnf || die "MariaDB does not read $MY_CNF (check /etc/mysql/my.cnf)"
    fi

    if ! my_running; then
        my_start
        changed "started MariaDB"
    elif ((cnf_changed)) || [[ $(my_admin -e 'SELECT @@ssl_cert') != "$MY_TLS_DIR/server.pem" ]]; then
        # ssl_* are read-only variables: a changed file needs a restart.
        my_stop
        my_start
        changed "restarted MariaDB"
    elif ((tls_changed)); then
        my_admin -e 'FLUSH SSL'
        changed "reloaded MariaDB TLS certificates"
    fi
    [[ $(my_admin -e 'SELECT @@have_ssl') == YES ]] ||
        die "MariaDB has no TLS (have_ssl=$(my_admin -e 'SELECT @@have_ssl')):
$(my_log_tail)"

    local subject issuer host
    subject=$(x509_oneline subject "$TLS_DIR/client.pem")
    issuer=$(x509_oneline subject "$TLS_DIR/ca.pem")
    # A TCP login from 127.0.0.1 is user@localhost when the server resolves names and
    # user@127.0.0.1 with skip-name-resolve (as on the prepared machines); '%' covers ::1.
    # KILL QUERY on a session of the same account needs no privilege (the account is
    # user@host: under skip-name-resolve a socket session, @localhost, gets "not owner"
    # killing a TCP one, @127.0.0.1). PROCESS lets the tests see all sessions.
    {
        echo "CREATE DATABASE IF NOT EXISTS $TEST_DB;"
        for host in localhost 127.0.0.1 %; do
            cat <<SQL
CREATE USER IF NOT EXISTS '$PW_USER'@'$host' IDENTIFIED BY '$PW_PASSWORD';
ALTER USER '$PW_USER'@'$host' IDENTIFIED BY '$PW_PASSWORD' REQUIRE NONE;
GRANT ALL PRIVILEGES ON $TEST_DB.* TO '$PW_USER'@'$host';
GRANT PROCESS ON *.* TO '$PW_USER'@'$host';
CREATE USER IF NOT EXISTS '$CERT_USER'@'$host' REQUIRE SUBJECT '$subject' AND ISSUER '$issuer';
ALTER USER '$CERT_USER'@'$host' IDENTIFIED BY '' REQUIRE SUBJECT '$subject' AND ISSUER '$issuer';
GRANT ALL PRIVILEGES ON $TEST_DB.* TO '$CERT_USER'@'$host';
SQL
        done
    } | my_admin || die "creating the MariaDB database and users failed"

    local ca=$TLS_DIR/ca.pem tcp=(--protocol=tcp -h 127.0.0.1 -P "$MY_PORT" -D "$TEST_DB")
    local cert=(--ssl-cert="$TLS_DIR/client.pem" --ssl-key="$TLS_DIR/client.key")
    check_ok "mysql: $PW_USER, password, verified TLS" "$PW_USER tls=yes" \
        my_client "${tcp[@]}" -u "$PW_USER" --password="$PW_PASSWORD" --ssl-ca="$ca" --ssl-verify-server-cert
    check_ok "mysql: $PW_USER, password, no TLS" "$PW_USER tls=no" \
        my_client "${tcp[@]}" -u "$PW_USER" --password="$PW_PASSWORD" --skip-ssl
    check_ok "mysql: $PW_USER, password, socket" "$PW_USER tls=no" \
        my_client --protocol=socket -S "$MY_SOCKET" -D "$TEST_DB" -u "$PW_USER" --password="$PW_PASSWORD" --skip-ssl
    check_ok "mysql: $CERT_USER, client certificate" "$CERT_USER tls=yes" \
        my_client "${tcp[@]}" -u "$CERT_USER" --ssl-ca="$ca" --ssl-verify-server-cert "${cert[@]}"
    check_refused "mysql: $PW_USER, wrong password" "access denied" \
        my_client "${tcp[@]}" -u "$PW_USER" --password="wrong-$PW_PASSWORD" --ssl-ca="$ca"
    check_refused "mysql: server verified against the wrong CA" "certificate|SSL" \
        my_client "${tcp[@]}" -u "$PW_USER" --password="$PW_PASSWORD" \
        --ssl-ca="$TLS_DIR/wrong-ca.pem" --ssl-verify-server-cert
    check_refused "mysql: $CERT_USER without a client certificate" "access denied" \
        my_client "${tcp[@]}" -u "$CERT_USER" --ssl-ca="$ca" --ssl-verify-server-cert
    check_refused "mysql: $CERT_USER without TLS" "access denied" \
        my_client "${tcp[@]}" -u "$CERT_USER" --skip-ssl

    write_env_fragment mysql <<EOF
EXTDATA_TEST_MYSQL_HOST=127.0.0.1
EXTDATA_TEST_MYSQL_PORT=$MY_PORT
EXTDATA_TEST_MYSQL_SOCKET=$MY_SOCKET
EXTDATA_TEST_MYSQL_DATABASE=$TEST_DB
EXTDATA_TEST_MYSQL_USER=$PW_USER
EXTDATA_TEST_MYSQL_PASSWORD=$PW_PASSWORD
EXTDATA_TEST_MYSQL_CERT_USER=$CERT_USER
EXTDATA_TEST_MYSQL_URL=mysql://$PW_USER:$PW_PASSWORD@127.0.0.1:$MY_PORT/$TEST_DB
EOF
}

# --------------------------------------------------------------------------- Hive

# Two Spark Thrift servers (HiveServer2 protocol) from PyPI pyspark: one with
# authentication NONE (SASL PLAIN; any user and password) and one NOSASL (raw binary
# Thrift), so that both transports are tested. Under /opt so that a fresh clone of the
# checkout (as CI makes) reuses the virtualenv instead of installing it again.
HIVE_HOME=/opt/extdata-hive
HIVE_VENV=$HIVE_HOME/venv
HIVE_PYSPARK_VERSION=4.3.0
HIVE_PLAIN_PORT=10000
HIVE_NOSASL_PORT=10001
HIVE_USER=extdata
HIVE_PASSWORD=extdata-hive-pw     # NONE accepts any password; the tests still send one

hive_spark_home() {
    local d
    d=$(echo "$HIVE_VENV"/lib/python3*/site-packages/pyspark)
    [[ -x $d/bin/spark-submit ]] || return 1
    printf '%s' "$d"
}

hive_port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# hive_query_ok PORT MODE: a real query through beeline (hive-jdbc from the pyspark jars).
hive_query_ok() {
    local port=$1 mode=$2 url out spark_home
    spark_home=$(hive_spark_home) || return 1
    url="jdbc:hive2://127.0.0.1:$port/default"
    [[ $mode == NOSASL ]] && url="$url;auth=noSasl"
    out=$(cd / && env -i PATH="$PATH" SPARK_HOME="$spark_home" \
        timeout 90 "$spark_home/bin/beeline" -u "$url" -n "$HIVE_USER" -p "$HIVE_PASSWORD" \
        --silent=true --outputformat=csv2 --showHeader=false \
        -e "SELECT concat('extdata-ok-', 40 + 2) AS answer" 2>&1) || return 1
    # beeline prints its prompt on the same line as the answer.
    grep -q 'extdata-ok-42' <<<"$out"
}

hive_server_dir() {
    printf '%s/%s' "$HIVE_HOME" "${1,,}"
}

# hive_start MODE PORT: start one server in the background (setsid: it outlives us).
hive_start() {
    local mode=$1 port=$2 dir spark_home
    dir=$(hive_server_dir "$mode")
    spark_home=$(hive_spark_home)
    mkdir -p "$dir"
    note "starting Spark Thrift server ($mode) on 127.0.0.1:$port (takes ~15 s)"
    (
        cd "$dir"
        SPARK_HOME=$spark_home SPARK_LOCAL_IP=127.0.0.1 \
            setsid "$spark_home/bin/spark-submit" --master 'local[2]' --driver-memory 1g \
            --conf spark.ui.enabled=false \
            --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \
            --conf "spark.sql.warehouse.dir=$dir/warehouse" \
            --conf spark.sql.catalogImplementation=hive \
            --conf "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName=$dir/metastore_db;create=true" \
            --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \
            --hiveconf hive.server2.thrift.bind.host=127.0.0.1 \
            --hiveconf "hive.server2.thrift.port=$port" \
            --hiveconf "hive.server2.authentication=$mode" \
            --hiveconf hive.server2.enable.doAs=false \
            </dev/null >"$dir/server.log" 2>&1 &
        echo $! >"$dir/server.pid"
    )
}

# spark_stop DIR: stops the Spark server whose pid is in DIR/server.pid (up to 30 s).
spark_stop() {
    local dir=$1 pid i
    pid=$(cat "$dir/server.pid" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    # setsid made the server the leader of its own process group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    rm -f "$dir/server.pid"
}

hive_stop() {
    spark_stop "$(hive_server_dir "$1")"
}

# hive_ensure MODE PORT: leaves a healthy server alone; otherwise (re)starts it without
# waiting (hive_wait does), so that both servers boot at the same time.
hive_ensure() {
    local mode=$1 port=$2
    if hive_port_open "$port"; then
        if hive_query_ok "$port" "$mode"; then
            note "ok       hive $mode server on $port is up and answers queries"
            return 0
        fi
        note "hive $mode server on $port does not answer queries: restarting it"
        hive_stop "$mode"
        ! hive_port_open "$port" ||
            die "port $port is taken by something that is not a working $mode Spark Thrift server"
    fi
    hive_start "$mode" "$port"
    HIVE_STARTED+=("$mode:$port")
}

hive_wait() {
    local mode=$1 port=$2 dir pid i
    dir=$(hive_server_dir "$mode")
    for ((i = 0; i < 240; i++)); do
        hive_port_open "$port" && break
        pid=$(cat "$dir/server.pid" 2>/dev/null || true)
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            die "the hive $mode server exited; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
        fi
        sleep 0.5
    done
    hive_port_open "$port" || die "the hive $mode server did not open port $port within 120 s; see $dir/server.log:
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
    local started
    for started in "${HIVE_STARTED[@]}"; do
        hive_wait "${started%%:*}" "${started##*:}"
    done

    write_env_fragment hive <<EOF
EXTDATA_TEST_HIVE_HOST=127.0.0.1
EXTDATA_TEST_HIVE_PORT=$HIVE_PLAIN_PORT
EXTDATA_TEST_HIVE_NOSASL_PORT=$HIVE_NOSASL_PORT
EXTDATA_TEST_HIVE_DATABASE=default
EXTDATA_TEST_HIVE_USER=$HIVE_USER
EXTDATA_TEST_HIVE_PASSWORD=$HIVE_PASSWORD
EXTDATA_TEST_HIVE_LOG=$(hive_server_dir NONE)/server.log
EOF
}

# ------------------------------------------------------------------------ Kerberos

# A throw-away MIT Kerberos KDC on 127.0.0.1:$KRB_KDC_PORT (realm $KRB_REALM) and a third
# Spark Thrift server with hive.server2.authentication=KERBEROS on $KRB_HIVE_PORT, for the
# live auth=GSSAPI test (crates/extdata-hive/tests/gssapi.rs). Every file (configuration,
# KDC database, keytabs, ticket cache, the server's state) lives in $KRB_DIR; nothing
# under /etc is read or written (KRB5_CONFIG, KRB5_KDC_PROFILE, java.security.krb5.conf).
# Needs the pyspark of the hive service. Port 10088, not 88: no clash with a real KDC.
# Machine-wide like HIVE_HOME: one KDC and one server per machine, whichever checkout
# (a CI clone, say) runs this script; a per-checkout folder would find the port taken.
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

krb_pid_alive() {
    local pid
    pid=$(cat "$1" 2>/dev/null || true)
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
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
    local dir=$KRB_DIR/spark spark_home
    spark_home=$(hive_spark_home)
    mkdir -p "$dir"
    note "starting Spark Thrift server (KERBEROS) on 127.0.0.1:$KRB_HIVE_PORT (takes ~15-60 s)"
    (
        cd "$dir"
        SPARK_HOME=$spark_home SPARK_LOCAL_IP=127.0.0.1 HADOOP_CONF_DIR=$KRB_DIR/hadoop-conf \
            KRB5_CONFIG=$KRB_DIR/krb5.conf KRB5CCNAME=FILE:$dir/server-ccache \
            setsid "$spark_home/bin/spark-submit" --master 'local[2]' --driver-memory 1g \
            --conf spark.ui.enabled=false \
            --conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 \
            --conf "spark.driver.extraJavaOptions=-Djava.security.krb5.conf=$KRB_DIR/krb5.conf" \
            --conf spark.hadoop.hadoop.security.authentication=kerberos \
            --conf "spark.sql.warehouse.dir=$dir/warehouse" \
            --conf spark.sql.catalogImplementation=hive \
            --conf "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName=$dir/metastore_db;create=true" \
            --class org.apache.spark.sql.hive.thriftserver.HiveThriftServer2 \
            --hiveconf hive.server2.thrift.bind.host=127.0.0.1 \
            --hiveconf "hive.server2.thrift.port=$KRB_HIVE_PORT" \
            --hiveconf hive.server2.authentication=KERBEROS \
            --hiveconf "hive.server2.authentication.kerberos.principal=$KRB_SERVICE@$KRB_REALM" \
            --hiveconf "hive.server2.authentication.kerberos.keytab=$KRB_DIR/hive.keytab" \
            --hiveconf hive.server2.enable.doAs=false \
            </dev/null >"$dir/server.log" 2>&1 &
        echo $! >"$dir/server.pid"
    )
}

krb_hive_stop() {
    spark_stop "$KRB_DIR/spark"
}

krb_hive_wait() {
    local dir=$KRB_DIR/spark i
    for ((i = 0; i < 240; i++)); do
        hive_port_open "$KRB_HIVE_PORT" && break
        krb_pid_alive "$dir/server.pid" || die "the Kerberos hive server exited; see $dir/server.log:
$(tail -n 30 "$dir/server.log")"
        sleep 0.5
    done
    hive_port_open "$KRB_HIVE_PORT" || die "the Kerberos hive server did not open port $KRB_HIVE_PORT within 120 s; see $dir/server.log:
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
    if update_file "$KRB_DIR/krb5.conf" <<EOF; then
# Managed by scripts/services.sh (extdata test KDC); rewritten on each run.
[libdefaults]
    default_realm = $KRB_REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    ticket_lifetime = 24h
    permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
[realms]
    $KRB_REALM = {
        kdc = 127.0.0.1:$KRB_KDC_PORT
    }
[domain_realm]
    localhost = $KRB_REALM
EOF
        conf_changed=1
        changed "$KRB_DIR/krb5.conf"
    fi
    if update_file "$KRB_DIR/kdc.conf" <<EOF; then
# Managed by scripts/services.sh (extdata test KDC); rewritten on each run.
[kdcdefaults]
    kdc_listen = 127.0.0.1:$KRB_KDC_PORT
    kdc_tcp_listen = 127.0.0.1:$KRB_KDC_PORT
[realms]
    $KRB_REALM = {
        database_name = $KRB_DIR/db/principal
        key_stash_file = $KRB_DIR/db/stash
        acl_file = $KRB_DIR/db/kadm5.acl
        max_life = 24h 0m 0s
        master_key_type = aes256-cts-hmac-sha1-96
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }
[logging]
    kdc = FILE:$KRB_DIR/kdc.log
EOF
        conf_changed=1
        changed "$KRB_DIR/kdc.conf"
    fi
    # Read by Hadoop's UserGroupInformation in the server and in beeline.
    if update_file "$KRB_DIR/hadoop-conf/core-site.xml" <<EOF; then
<?xml version="1.0"?>
<!-- Managed by scripts/services.sh (extdata test KDC); rewritten on each run. -->
<configuration>
  <property><name>hadoop.security.authentication</name><value>kerberos</value></property>
</configuration>
EOF
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
    local principal keytab
    for principal in "$KRB_SERVICE" "$KRB_USER"; do
        if ! krb_kadmin "getprinc $principal" | grep -q "^Principal: $principal@$KRB_REALM\$"; then
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

    if hive_port_open "$KRB_KDC_PORT" && ! krb_pid_alive "$KRB_DIR/kdc.pid"; then
        die "port $KRB_KDC_PORT is taken by something that is not this checkout's KDC ($KRB_DIR/kdc.pid)"
    fi
    if krb_pid_alive "$KRB_DIR/kdc.pid" && ((conf_changed)); then
        kill -TERM "$(cat "$KRB_DIR/kdc.pid")"
        local i
        for ((i = 0; i < 20; i++)); do
            krb_pid_alive "$KRB_DIR/kdc.pid" || break
            sleep 0.25
        done
        changed "stopped the KDC (its configuration or database changed)"
    fi
    if ! krb_pid_alive "$KRB_DIR/kdc.pid"; then
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
    if hive_port_open "$KRB_HIVE_PORT"; then
        if ((!conf_changed)) && krb_hive_query_ok; then
            note "ok       hive KERBEROS server on $KRB_HIVE_PORT is up and answers queries"
        else
            note "hive KERBEROS server on $KRB_HIVE_PORT must be restarted"
            krb_hive_stop
            ! hive_port_open "$KRB_HIVE_PORT" ||
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

    write_env_fragment kerberos <<EOF
EXTDATA_TEST_HIVE_GSSAPI_HOST=127.0.0.1
EXTDATA_TEST_HIVE_GSSAPI_PORT=$KRB_HIVE_PORT
EXTDATA_TEST_HIVE_GSSAPI_PRINCIPAL=$KRB_SERVICE@$KRB_REALM
EXTDATA_TEST_HIVE_GSSAPI_USER=$KRB_USER
EXTDATA_TEST_HIVE_GSSAPI_KRB5_CONFIG=$KRB_DIR/krb5.conf
EXTDATA_TEST_HIVE_GSSAPI_CCACHE=FILE:$KRB_DIR/ccache
EXTDATA_TEST_HIVE_GSSAPI_LOG=$KRB_DIR/spark/server.log
EOF
}

# ---------------------------------------------------------------------- ClickHouse

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

ch_alive() {
    [[ -s $CH_PIDFILE ]] && kill -0 "$(cat "$CH_PIDFILE")" 2>/dev/null
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
        if ((i >= 6)) && ! ch_alive; then break; fi
        sleep 0.5
    done
    die "ClickHouse did not answer /ping within 60 s:
$(ch_log_tail)"
}

ch_stop() {
    local pid i
    pid=$(cat "$CH_PIDFILE" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 120; i++)); do
        [[ $(ps -o stat= -p "$pid" 2>/dev/null || true) == [^Z]* ]] || return 0
        sleep 0.5
    done
    die "ClickHouse (pid $pid) did not stop within 60 s"
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

    local f mode conf_changed=0
    install -d -o clickhouse -g clickhouse -m 750 "$CH_TLS_DIR"
    for f in ca.pem server.pem server.key; do
        mode=644
        [[ $f == *.key ]] && mode=600
        if sync_file "$TLS_DIR/$f" "$CH_TLS_DIR/$f" clickhouse:clickhouse "$mode"; then
            conf_changed=1
            changed "$CH_TLS_DIR/$f"
        fi
    done

    # 18.x reads overrides with the root tag <yandex>. The packaged config points at a
    # dhparam.pem that does not exist: an empty dhParamsFile skips it. Small caches: the
    # packaged ones are sized for a dedicated machine (5 GiB marks, 8 GiB uncompressed).
    mkdir -p "$CH_ETC/config.d" "$CH_ETC/users.d"
    if update_file "$CH_ETC/config.d/extdata.xml" <<EOF; then
<?xml version="1.0"?>
<!-- Managed by scripts/services.sh (extdata test server); rewritten on each run. -->
<yandex>
    <listen_host replace="replace">127.0.0.1</listen_host>
    <http_port>$CH_HTTP_PORT</http_port>
    <https_port>$CH_HTTPS_PORT</https_port>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <openSSL>
        <server>
            <certificateFile>$CH_TLS_DIR/server.pem</certificateFile>
            <privateKeyFile>$CH_TLS_DIR/server.key</privateKeyFile>
            <caConfig>$CH_TLS_DIR/ca.pem</caConfig>
            <dhParamsFile></dhParamsFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
        </server>
    </openSSL>
</yandex>
EOF
        conf_changed=1
        changed "$CH_ETC/config.d/extdata.xml"
    fi
    local pw_hash
    pw_hash=$(printf '%s' "$PW_PASSWORD" | sha256sum | cut -d' ' -f1)
    # users.d is re-read by the running server: no restart for a change here.
    if update_file "$CH_ETC/users.d/extdata.xml" <<EOF; then
<?xml version="1.0"?>
<!-- Managed by scripts/services.sh (extdata test server); rewritten on each run. -->
<yandex>
    <profiles>
        <extdata>
            <max_memory_usage>1000000000</max_memory_usage>
        </extdata>
    </profiles>
    <users>
        <$PW_USER>
            <password_sha256_hex>$pw_hash</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>extdata</profile>
            <quota>default</quota>
        </$PW_USER>
    </users>
</yandex>
EOF
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

    local i
    for ((i = 0; i < 40; i++)); do
        ch_query "$PW_USER" "$PW_PASSWORD" "SELECT 1" >/dev/null 2>&1 && break
        sleep 0.5
    done
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

    write_env_fragment clickhouse <<EOF
EXTDATA_TEST_CLICKHOUSE_HOST=127.0.0.1
EXTDATA_TEST_CLICKHOUSE_PORT=$CH_HTTP_PORT
EXTDATA_TEST_CLICKHOUSE_HTTPS_PORT=$CH_HTTPS_PORT
EXTDATA_TEST_CLICKHOUSE_DATABASE=$TEST_DB
EXTDATA_TEST_CLICKHOUSE_USER=$PW_USER
EXTDATA_TEST_CLICKHOUSE_PASSWORD=$PW_PASSWORD
EOF
}

# --------------------------------------------------------------------- reliability

# Dedicated PostgreSQL (5433) and MariaDB (3307) instances that the restart tests of
# crates/extdata-reliability stop and start; the shared servers above are never
# restarted by tests. scripts/reliability.sh does the work and prints the settings.
setup_reliability() {
    log "Reliability instances (restartable PostgreSQL and MariaDB)"
    local settings
    settings=$(bash "$REPO/scripts/reliability.sh" setup) ||
        die "setting up the reliability instances failed"
    write_env_fragment reliability <<<"$settings"
}

# ---------------------------------------------------------------------------- main

run_service() {
    case $1 in
        postgres) setup_postgres ;;
        mysql) setup_mariadb ;;
        clickhouse) setup_clickhouse ;;
        hive) setup_hive ;;
        kerberos) setup_kerberos ;;
        reliability) setup_reliability ;;
    esac
}

main() {
    [[ $(id -u) == 0 ]] || die "run as root: it installs packages and writes under /etc"

    local args=("$@") requested=() svc k known
    ((${#args[@]})) || args=("${KNOWN_SERVICES[@]}")
    for svc in "${args[@]}"; do
        case $svc in
            postgresql | pg) svc=postgres ;;
            mariadb) svc=mysql ;;
        esac
        known=0
        for k in "${KNOWN_SERVICES[@]}"; do [[ $k == "$svc" ]] && known=1; done
        ((known)) || die "unknown service '$svc' (known: ${KNOWN_SERVICES[*]})"
        [[ " ${requested[*]-} " == *" $svc "* ]] || requested+=("$svc")
    done

    setup_certs
    for svc in "${requested[@]}"; do
        run_service "$svc"
        UP+=("$svc")
    done
    write_env
    # Tests may run as the owner of the checkout rather than as root.
    if [[ -n $(find "$STATE_DIR" \! -user "$(stat -c %u "$REPO")" -print -quit) ]]; then
        chown -R --reference="$REPO" "$STATE_DIR"
    fi

    echo
    log "Summary"
    note "up:       ${UP[*]}"
    note "required: $(sed -n 's/^export EXTDATA_TEST_REQUIRE=//p' "$ENV_FILE")"
    note "users:    $PW_USER (password $PW_PASSWORD), $CERT_USER (client certificate only)"
    note "database: $TEST_DB"
    note "env file: $ENV_FILE   (. .services/env)"
    if ((${#CHANGES[@]})); then
        note "changes:  ${#CHANGES[@]}"
    else
        note "changes:  none (everything was already in place)"
    fi
}

main "$@"
