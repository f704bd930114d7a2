#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Bring up the local database servers the test suite needs and write the settings the
# tests read to .services/env (source it: `. .services/env`).
#
#   scripts/services.sh [service...]      default: every known service
#
# Services: postgres (alias postgresql, pg), mysql (alias mariadb), clickhouse (18.16),
# clickhouse26 (ClickHouse 26.x from PyPI chdb-core, beside it), hive (two
# Spark Thrift servers), kerberos (a throw-away KDC and two Kerberos Spark Thrift
# servers, binary and HTTP with SPNEGO; needs hive's pyspark), ldap (a throw-away OpenLDAP server and two Spark Thrift servers
# with LDAP authentication over TLS, binary and HTTP; needs hive's pyspark), reliability (restartable PostgreSQL, MariaDB and ClickHouse
# instances for the restart tests; scripts/reliability.sh).
# Needs root on Debian 12 (installs packages, writes under /etc). Idempotent: a second
# run changes nothing and says so. See ../shared/SERVICES.md for what works here.
#
# Layout: scripts/services/lib.sh holds the shared helpers; scripts/services/<name>.sh
# defines setup_<name> (install, configure, start, create users, verify, then
# `render_env <name> ...`); its configuration files are templates in
# scripts/services/<name>/ (`render` replaces @NAME@ markers, nothing else).
# Adding a service: write those, add <name> to KNOWN_SERVICES and source its script
# below. Each service keeps its own fragment under .services/env.d/, so running the
# script for one service leaves the settings of the others in .services/env alone.
set -Eeuo pipefail
umask 022

KNOWN_SERVICES=(postgres mysql hive kerberos ldap clickhouse clickhouse26 reliability)

# The test users and database, the same on every server.
TEST_DB=extdata_test
PW_USER=extdata_pw
PW_PASSWORD=extdata-secret-pw
CERT_USER=extdata_cert          # logs in by client certificate only; CN = user name

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=services/lib.sh
. "$SCRIPTS/services/lib.sh"
# shellcheck source=services/tls.sh
. "$SCRIPTS/services/tls.sh"
# shellcheck source=services/postgres.sh
. "$SCRIPTS/services/postgres.sh"
# shellcheck source=services/mysql.sh
. "$SCRIPTS/services/mysql.sh"
# shellcheck source=services/hive.sh
. "$SCRIPTS/services/hive.sh"
# shellcheck source=services/kerberos.sh
. "$SCRIPTS/services/kerberos.sh"
# shellcheck source=services/ldap.sh
. "$SCRIPTS/services/ldap.sh"
# shellcheck source=services/clickhouse.sh
. "$SCRIPTS/services/clickhouse.sh"
# shellcheck source=services/clickhouse26.sh
. "$SCRIPTS/services/clickhouse26.sh"
# shellcheck source=services/reliability.sh
. "$SCRIPTS/services/reliability.sh"

trap 'on_error $LINENO "$BASH_COMMAND"' ERR

main() {
    [[ $(id -u) == 0 ]] || die "run as root: it installs packages and writes under /etc"

    local args=("$@") requested=() up=() svc k known
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

    setup_tls
    for svc in "${requested[@]}"; do
        "setup_$svc"
        up+=("$svc")
    done
    write_env
    # Tests may run as the owner of the checkout rather than as root.
    if [[ -n $(find "$STATE_DIR" \! -user "$(stat -c %u "$REPO")" -print -quit) ]]; then
        chown -R --reference="$REPO" "$STATE_DIR"
    fi

    echo
    log "Summary"
    note "up:       ${up[*]}"
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
