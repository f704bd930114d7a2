# shellcheck shell=bash
# Dedicated PostgreSQL (5433), MariaDB (3307) and ClickHouse (8124) instances that the
# restart tests of crates/extdata-reliability stop and start; the shared servers are
# never restarted by tests. scripts/reliability.sh does the work (its templates are in
# reliability/) and prints the settings.

setup_reliability() {
    log "Reliability instances (restartable PostgreSQL and MariaDB)"
    local settings
    settings=$(bash "$REPO/scripts/reliability.sh" setup) ||
        die "setting up the reliability instances failed"
    write_env_fragment reliability <<<"$settings"
}
