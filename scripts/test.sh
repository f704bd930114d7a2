#!/usr/bin/env bash
# The whole test suite: starts the database servers, then formatting, lints, docs and
# every test of the workspace. Servers this script brings up are *required*: a test
# that cannot reach one fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
set -a
# shellcheck disable=SC1091
. .services/env
set +a
export EXTDATA_TEST_REQUIRE="sqlite,${EXTDATA_TEST_REQUIRE:-}"
echo "required backends: ${EXTDATA_TEST_REQUIRE}"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo test --workspace --locked
