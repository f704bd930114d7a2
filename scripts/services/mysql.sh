# shellcheck shell=bash
# MariaDB (Debian's mariadb-server) on 127.0.0.1:3306 and its socket: the password user
# with and without TLS, the certificate user (REQUIRE SUBJECT/ISSUER) over TLS only.
# Configuration: mysql/99-extdata.cnf.in in mariadb.conf.d; users: mysql/users.sql.in.

MY_PORT=3306
MY_SOCKET=/run/mysqld/mysqld.sock
MY_PIDFILE=/run/mysqld/mysqld.pid
MY_CNF_DIR=/etc/mysql/mariadb.conf.d
MY_CNF=$MY_CNF_DIR/99-extdata.cnf
MY_TLS_DIR=/etc/mysql/extdata-tls
MY_CONSOLE_LOG=/var/log/mysql/mariadbd.console.log


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
    local pid
    pid=$(cat "$MY_PIDFILE" 2>/dev/null || true)
    mysqladmin --protocol=socket -S "$MY_SOCKET" -u root shutdown ||
        die "mysqladmin shutdown failed"
    if [[ -n $pid ]]; then
        wait_exit "$pid" 120 0.5 || die "MariaDB (pid $pid) did not stop within 60 s"
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

setup_mysql() {
    log "MariaDB"
    local fresh=0
    if [[ ! -x /usr/sbin/mariadbd ]]; then
        apt_install mariadb-server
        fresh=1
    fi

    local tls_changed=0
    if install_server_tls "$MY_TLS_DIR" mysql:mysql 750 644; then
        tls_changed=1
    fi

    # Small-memory settings only on a server we installed ourselves (or that got them
    # from an earlier run): a prepared machine keeps its own tuning.
    if [[ -f $MY_CNF ]] && grep -q '^innodb_buffer_pool_size' "$MY_CNF"; then fresh=1; fi
    mkdir -p "$MY_CNF_DIR"
    local cnf_changed=0
    local cnf
    cnf=$(render mysql/99-extdata.cnf.in MY_TLS_DIR)
    if {
        printf '%s\n' "$cnf"
        if ((fresh)); then
            cat "$SERVICES_DIR/mysql/small-memory.cnf"
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
    local sql="CREATE DATABASE IF NOT EXISTS $TEST_DB;"$'\n'
    for host in localhost 127.0.0.1 %; do
        sql+=$(render mysql/users.sql.in TEST_DB PW_USER PW_PASSWORD CERT_USER \
            HOST="$host" SUBJECT="$subject" ISSUER="$issuer")$'\n'
    done
    my_admin <<<"${sql%$'\n'}" || die "creating the MariaDB database and users failed"

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

    render_env mysql MY_PORT MY_SOCKET TEST_DB PW_USER PW_PASSWORD CERT_USER
}
