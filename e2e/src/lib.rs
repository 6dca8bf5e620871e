//! End-to-end tests of Nomos: they run the real `nctl dev` in a temp dir and drive it with the
//! real `nctl`. The tests are in `tests/` (one file per scenario) and their harness in
//! `tests/common/mod.rs` (it needs `CARGO_BIN_EXE_nctl-e2e`, which Cargo gives to tests only).
//! This package builds nctl's own sources as its binary `nctl-e2e` (see `Cargo.toml`), so
//! `cargo test -p nomos-e2e` always exercises the current code. The library holds what the
//! tests share that can be tested on its own: the fault tests' history checker.
pub mod history;
