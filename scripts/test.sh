#!/usr/bin/env bash
# The whole test suite: starts the database servers, then formatting, lints, docs and
# every test of the workspace. Servers this script brings up are *required*: a test
# that cannot reach one fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every shell script of the repository passes shellcheck (Debian's package; installed
# when missing). -x follows the files they source (scripts/services/*.sh).
if ! command -v shellcheck >/dev/null; then
    echo "installing shellcheck"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null
fi
mapfile -t shell_scripts < <(find scripts -name '*.sh' | sort)
shellcheck -x "${shell_scripts[@]}" .ci/run

# The disk the build has to work with, for the log of a run that runs out of it.
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
echo "free disk for the build: $(df -h --output=avail "$target_dir" | tail -1 | tr -d ' ')"
bash scripts/services.sh
set -a
# shellcheck disable=SC1091
. .services/env
set +a
export EXTDATA_TEST_REQUIRE="sqlite,${EXTDATA_TEST_REQUIRE:-}"
echo "required backends: ${EXTDATA_TEST_REQUIRE}"

# The Hive backend's `gssapi` feature links MIT Kerberos and generates its bindings with
# libclang: both are build dependencies only, checked below. GNU time measures the CLI's
# peak RSS in crates/extdata-cli/tests/columnar.rs.
missing=()
for pkg in libkrb5-dev libclang-dev time; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "installing build and test dependencies: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Opt-in backends and features: they must build and stay lint-clean too.
cargo clippy -p extdata --features mssql,oracle --all-targets --locked -- -D warnings
cargo clippy -p extdata-hive --features gssapi --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo test --workspace --locked --no-fail-fast
# `cargo test --workspace` leaves the `gssapi` feature off: its live Kerberos tests here
# (binary and SPNEGO), then the conformance suite over SPNEGO in the test KDC's Kerberos
# environment (the library reads it from the process).
cargo test -p extdata-hive --features gssapi --locked --test gssapi
KRB5_CONFIG="$EXTDATA_TEST_HIVE_GSSAPI_KRB5_CONFIG" KRB5CCNAME="$EXTDATA_TEST_HIVE_GSSAPI_CCACHE" \
    cargo test -p extdata-hive --features gssapi --locked --test conformance -- spnego::
# The facade with the opt-in backends compiled in (their crates' own tests ran above).
cargo test -p extdata --features mssql,oracle --locked
