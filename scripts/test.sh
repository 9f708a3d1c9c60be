#!/usr/bin/env bash
# The test command of the README and of CI: build and install the package with its test extras,
# then run the Rust core's tests and the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet ".[test]"
cargo test -p combiner-core -p combiner-decode --release
python3 -m pytest -m "not slow" tests
