#!/usr/bin/env bash
# The test command of the README and of CI: build and install the package with its test extras,
# run the linters and the type check, then the Rust tests and the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet ".[test]"
python3 -m ruff check python tests benches training scripts
python3 -m mypy
cargo fmt --all --check
cargo clippy --workspace --all-targets --release --quiet -- -D warnings
cargo test -p combiner-core -p combiner-decode --release
python3 -m pytest -m "not slow" tests
