//! The Nomos data model and job-file front end. No I/O (file reads go through
//! [`parse::FileSource`], which callers provide).
//!
//! Layout:
//! - [`job`]: the job specification (Job → TaskGroup → Task and their blocks) in canonical form.
//! - [`allocfs`]: a file of an allocation's directory in Nomad's client filesystem API.
//! - [`runtime`]: nodes, allocations, their observed status, job status, deployments.
//! - [`parse`]: the entry points ([`parse_source`], [`parse_file`]) and the shared pipeline:
//!   a front end ([`hcl`] for Nomad HCL1/HCL2, [`manifest`] for YAML/JSON manifests,
//!   [`nomad_json`] for Nomad's JSON) → [`defaults`] → serde → [`validate`], with positions
//!   carried by field path so every error reads `file:line:col: message` ([`diag`]).
//!   Dependencies point one way: `parse` uses the front ends, [`defaults`] and [`validate`];
//!   they use `frontend` (the options a front end is given, the `RawJob` it returns) and
//!   `fieldpath` (field paths and the position map), which use none of them.
//! - [`canonical`]: the canonical JSON written to the store, reading stored specs back, and the
//!   YAML manifest form; [`to_hcl`] writes a job as Nomad-style HCL2 and [`format_hcl`] lays out
//!   an HCL file (`nctl fmt`).
//! - [`nomad_out`]: a job in Nomad's API shapes (the job object, a list entry, the summary),
//!   written with [`nomad_json`]'s tables so that reading it back gives the same job.
//! - [`eval`]: evaluations as Nomad records them (stored by the API and the jobs controller).
//! - [`java_config`]: the `java` driver's task config, checked at validation and read by agents.
//! - [`names`]: the rules for job ids, namespaces, group and task names (store key segments).
//! - [`limits`]: how many instances a group and a job may ask for.
//! - [`acl`]: Nomad's ACL policy language, tokens and policies, and the capability check.
//! - [`filter`]: Nomad's `filter` query expressions (go-bexpr), evaluated on answers' JSON.
//! - [`cron`]: periodic cron expressions read as Nomad reads them (5, 6 or 7 fields).
//! - [`duration`]: Go-style durations (`"1h30m"`) to and from nanoseconds.
//! - [`variables`]: Variables' JSON shapes (`/v1/var`), path syntax, item and lock limits.
//! - [`namespace`]: namespaces and quota specifications as objects, and the quota file format.
//! - [`service`]: service discovery's shared words: a catalogue registration, default service
//!   names, check result names.
//! - [`settings`]: what users set through the API and the controllers honour: the scheduler
//!   configuration, node pools, versions marked stable by hand.
//! - [`driver_constraints`]: constraints a task's driver config implies for placement (a qemu
//!   VM asking for KVM).
//! - [`usage`]: measured CPU and memory as agents report them, with bounded histories.
//! - [`volumes`]: the checks on a group's host `volume`s and its tasks' `volume_mount`s.

pub mod acl;
pub mod allocfs;
pub mod build;
pub mod canonical;
pub mod cron;
pub mod defaults;
pub mod diag;
pub mod dispatch;
pub mod driver_constraints;
pub mod duration;
pub mod error;
pub mod eval;
pub mod exec;
mod fieldpath;
pub mod filter;
mod frontend;
pub mod hcl;
pub mod heartbeat;
pub mod java_config;
pub mod job;
pub mod limits;
pub mod manifest;
pub mod names;
pub mod namespace;
pub mod nomad_json;
pub mod nomad_out;
pub mod parse;
pub mod runtime;
pub mod service;
pub mod settings;
pub mod usage;
pub mod validate;
pub mod variables;
pub mod volumes;

pub use canonical::{parse_stored_spec, spec_hash, to_canonical_json, to_manifest_yaml};
pub use diag::{Diagnostic, Severity};
pub use error::ApiError;
pub use hcl::{format_hcl, to_hcl};
pub use job::*;
pub use parse::{parse_file, parse_source, FileSource, MemFiles, ParseOptions, Parsed, StdFiles};
pub use runtime::*;
