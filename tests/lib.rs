//! Shared helpers for the conformance tests live in `tests/tests/common`.
