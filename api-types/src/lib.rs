//! The Nomos data model and job-file front end. No I/O.
//!
//! Layout:
//! - [`job`]: the job specification (Job → TaskGroup → Task and their blocks) in canonical form.
//! - [`runtime`]: nodes, allocations, their observed status, job status, deployments.
//! - parsing of job files (HCL, YAML/JSON manifests, Nomad JSON), defaults and validation build on
//!   these types and return positioned errors.

pub mod job;
pub mod runtime;

pub use job::*;
pub use runtime::*;
