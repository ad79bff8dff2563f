#!/usr/bin/env bash
# The project's test command (README "Set up and test"; .ci/run calls it).
# Builds in the dev profile (dependencies optimised, see Cargo.toml) and runs
# every unit, integration and CLI test. Real-data tests read ../shared/realdata
# when it is present and say so when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked "$@"
