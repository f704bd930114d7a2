# shellcheck shell=bash
# Helpers shared by scripts/services.sh (and the service scripts it sources) and by
# scripts/reliability.sh: logging, apt, files and templates, checks, waiting for
# processes, TLS material and the .services/env settings. Only functions and the paths
# below; sourcing it changes nothing on the machine.

SERVICES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SERVICES_DIR/../.." && pwd)
STATE_DIR=$REPO/.services
TLS_DIR=$STATE_DIR/tls
ENV_DIR=$STATE_DIR/env.d
ENV_FILE=$STATE_DIR/env

CHANGES=()      # what this run changed, for the summary
APT_UPDATED=0

# ---------------------------------------------------------------------------- logging

log()  { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die()  { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }
changed() { CHANGES+=("$*"); note "changed: $*"; }

# For `trap 'on_error $LINENO "$BASH_COMMAND"' ERR`. Inside $(...) and ( ... ) only pass
# the failure up, so it is reported once.
on_error() {
    ((BASH_SUBSHELL == 0)) || exit 1
    die "unexpected failure at line $1: $2"
}

# -------------------------------------------------------------------------------- apt

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

# ------------------------------------------------------------------ files and templates

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

# install_server_tls DIR OWNER DIR_MODE CERT_MODE: copies the server's TLS files from
# $TLS_DIR (ca.pem and server.pem with CERT_MODE, server.key with 600) into DIR, created
# with DIR_MODE; all owned by OWNER (user:group). Each file that changed is reported.
# Succeeds when any file changed, fails when all were already in place.
install_server_tls() {
    local dir=$1 owner=$2 dir_mode=$3 cert_mode=$4 f mode status=1
    install -d -o "${owner%%:*}" -g "${owner##*:}" -m "$dir_mode" "$dir"
    for f in ca.pem server.pem server.key; do
        mode=$cert_mode
        [[ $f == *.key ]] && mode=600
        if sync_file "$TLS_DIR/$f" "$dir/$f" "$owner" "$mode"; then
            status=0
            changed "$dir/$f"
        fi
    done
    return "$status"
}

# render TEMPLATE [NAME | NAME=VALUE]...: print TEMPLATE (a path under scripts/services/)
# with every @NAME@ replaced by VALUE, or by the value of the shell variable NAME. Only
# these markers are replaced, in one pass; nothing else in the template is interpreted
# (no $, no backslashes, no commands), so the output is the template's bytes, trailing
# newline included. A marker without a value, a name the template does not use or an
# unset variable is an error: nothing is printed then.
render() {
    local template=$1 arg name text out='' marker
    shift
    [[ $template == /* ]] || template=$SERVICES_DIR/$template
    [[ -f $template ]] || die "template $template does not exist"
    local -A values=() used=()
    for arg in "$@"; do
        name=${arg%%=*}
        [[ $name =~ ^[A-Z_][A-Z0-9_]*$ ]] || die "render $template: bad name '$name'"
        if [[ $arg == *=* ]]; then
            values[$name]=${arg#*=}
        else
            [[ -v $name ]] || die "render $template: $name is not set"
            values[$name]=${!name}
        fi
    done
    IFS= read -r -d '' text <"$template" || true
    while [[ $text =~ @([A-Z_][A-Z0-9_]*)@ ]]; do
        marker=${BASH_REMATCH[0]}
        name=${BASH_REMATCH[1]}
        [[ -v values[$name] ]] || die "render $template: no value for @$name@"
        used[$name]=1
        out+=${text%%"$marker"*}${values[$name]}
        text=${text#*"$marker"}
    done
    for name in "${!values[@]}"; do
        [[ -v used[$name] ]] || die "render $template: it has no @$name@"
    done
    printf '%s' "$out$text"
}

# render_to DEST TEMPLATE [NAME | NAME=VALUE]...: render TEMPLATE into DEST with
# update_file: succeeds when DEST changed, fails when it already had this content.
render_to() {
    local dest=$1 text
    shift
    # The dot keeps the trailing newlines that $(...) would strip.
    text=$(render "$@" && printf .) || exit 1
    printf '%s' "${text%.}" | update_file "$dest"
}

# ----------------------------------------------------------------------------- checks

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

# ------------------------------------------------------------------ processes and ports

# retry TRIES DELAY CMD...: run CMD up to TRIES times, DELAY seconds apart, until it
# succeeds; fails when it never did.
retry() {
    local tries=$1 delay=$2 i
    shift 2
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        sleep "$delay"
    done
    return 1
}

# pidfile_pid FILE [PROGRAM]: prints the pid FILE holds when that process is alive and,
# given PROGRAM (an executable's name, or an extended pattern of names), runs it; fails
# otherwise.
# The name guards against a reused pid (this kind of machine has pid_max 32768, and a
# build goes through thousands): a stale file in a directory that outlives a checkout
# would otherwise pass for a running server.
pidfile_pid() {
    local pid exe
    [[ -s $1 ]] || return 1
    pid=$(cat "$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n ${2:-} ]]; then
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
        # A program replaced on disk while it runs (a package upgrade) reads "(deleted)".
        exe=${exe% (deleted)}
        # shellcheck disable=SC2053 # PROGRAM may be a pattern: @(clickhouse|clickhouse-server).
        [[ ${exe##*/} == $2 ]] || return 1
    fi
    echo "$pid"
}

# pid_alive PIDFILE [PROGRAM]: true when PIDFILE names a process that exists (and runs
# PROGRAM).
pid_alive() { pidfile_pid "$@" >/dev/null; }

# True when process PID exists and is not a zombie (PID 1 here may be slow to reap).
pid_running() {
    [[ $(ps -o stat= -p "$1" 2>/dev/null || true) == [^Z]* ]]
}

# wait_exit PID TRIES DELAY: wait until process PID has exited; fails when it is still
# running after TRIES checks DELAY seconds apart.
wait_exit() {
    local pid=$1 tries=$2 delay=$3 i
    for ((i = 0; i < tries; i++)); do
        pid_running "$pid" || return 0
        sleep "$delay"
    done
    ! pid_running "$pid"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# -------------------------------------------------------------------------------- TLS

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
    render tls/ca.cnf.in CN="$cn" >"$cfg"
    gen_key "$key"
    openssl req -x509 -new -config "$cfg" -extensions ext -key "$key" \
        -days 3650 -sha256 -out "$cert" 2>/dev/null
    rm -f "$cfg"
}

# gen_leaf CN CERT KEY EXTENDED_KEY_USAGE [SUBJECT_ALT_NAME]: signed by the test CA.
gen_leaf() {
    local cn=$1 cert=$2 key=$3 eku=$4 san=${5:-} cfg csr
    cfg=$(mktemp)
    csr=$(mktemp)
    render tls/leaf.cnf.in CN="$cn" EKU="$eku" SAN_LINE="${san:+subjectAltName = $san}" >"$cfg"
    gen_key "$key"
    openssl req -new -config "$cfg" -key "$key" -out "$csr" 2>/dev/null
    openssl x509 -req -in "$csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 15)" -days 825 -sha256 \
        -extfile "$cfg" -extensions ext -out "$cert" 2>/dev/null
    rm -f "$cfg" "$csr"
}

# ------------------------------------------------------------------------ env settings

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

# render_env SERVICE [NAME | NAME=VALUE]...: the settings of SERVICE from its template
# SERVICE/env.in, through write_env_fragment.
render_env() {
    local svc=$1 settings
    shift
    settings=$(render "$svc/env.in" "$@") || exit 1
    write_env_fragment "$svc" <<<"$settings"
}

# Quote a value for the env file only when the shell would need it.
env_quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:@,=+-]*$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# write_env: .services/env from the fragments of tls and of every service in
# KNOWN_SERVICES that has one; EXTDATA_TEST_REQUIRE lists those services.
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
