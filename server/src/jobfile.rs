//! Turns an apply or plan body into validated jobs, or into a 400 with every positioned
//! diagnostic. Three body shapes are accepted:
//! - `{ "source": "...", "filename": "job.hcl", "vars": {...} }`: a job file's text, parsed by
//!   `nomos_api::parse_source` (HCL, YAML or JSON by extension or content);
//! - `{ "job": { ...canonical job... } }`;
//! - a canonical job (or a `nomos/v1` manifest in JSON) as the whole body.

use nomos_api::diag::Severity;
use nomos_api::{parse_source, parse_stored_spec, Diagnostic, Job, ParseOptions, Parsed};
use serde_json::Value;

use crate::error::ServerError;
use crate::views::{ApplyRequest, DiagnosticView};

/// The jobs of a request, their warnings, and the check-index it carried.
#[derive(Debug, Clone)]
pub struct JobsInput {
    pub jobs: Vec<Job>,
    pub warnings: Vec<DiagnosticView>,
    pub check_index: Option<i64>,
}

/// Decodes a request body into validated jobs.
pub fn jobs_from_body(body: &[u8]) -> Result<JobsInput, ServerError> {
    let value: Value = crate::body::parse(body)?;
    let wrapped = value
        .as_object()
        .is_some_and(|o| o.contains_key("source") || o.contains_key("job"));
    if wrapped {
        let req: ApplyRequest = crate::body::decode_value(value)?;
        return jobs_from_request(req);
    }
    if !value.is_object() {
        return Err(ServerError::BadRequest(
            "expected a JSON object: {\"source\": ...}, {\"job\": ...} or a job".into(),
        ));
    }
    let parsed = parse_stored_spec("request body", body).map_err(invalid)?;
    Ok(JobsInput {
        jobs: parsed.jobs,
        warnings: views(&parsed.warnings),
        check_index: None,
    })
}

/// Validates the jobs of a decoded [`ApplyRequest`].
pub fn jobs_from_request(req: ApplyRequest) -> Result<JobsInput, ServerError> {
    let parsed: Parsed = match (req.source, req.job) {
        (Some(source), _) => {
            let filename = req.filename.unwrap_or_else(|| "job.hcl".to_string());
            let options = ParseOptions {
                vars: req.vars.into_iter().collect(),
                ..ParseOptions::default()
            };
            parse_source(&filename, &source, &options).map_err(invalid)?
        }
        (None, Some(job)) => {
            let text = serde_json::to_vec(&job)
                .map_err(|e| ServerError::BadRequest(format!("cannot encode job: {e}")))?;
            parse_stored_spec("request body", &text).map_err(invalid)?
        }
        (None, None) => {
            return Err(ServerError::BadRequest(
                "the body needs \"source\" or \"job\"".into(),
            ))
        }
    };
    if parsed.jobs.is_empty() {
        return Err(ServerError::BadRequest("the job file holds no job".into()));
    }
    Ok(JobsInput {
        jobs: parsed.jobs,
        warnings: views(&parsed.warnings),
        check_index: req.check_index,
    })
}

/// A 400 carrying every diagnostic; the message is the first error.
pub fn invalid(diags: Vec<Diagnostic>) -> ServerError {
    let views = views(&diags);
    let errors = views.iter().filter(|d| d.severity == "error").count();
    let message = match views.iter().find(|d| d.severity == "error") {
        Some(first) if errors > 1 => format!("{first} (and {} more errors)", errors - 1),
        Some(first) => first.to_string(),
        None => "the job is not valid".to_string(),
    };
    ServerError::InvalidJob {
        message,
        diagnostics: views,
    }
}

/// Diagnostics in their JSON form.
pub fn views(diags: &[Diagnostic]) -> Vec<DiagnosticView> {
    diags
        .iter()
        .map(|d| DiagnosticView {
            file: d.file.clone(),
            line: d.line,
            column: d.column,
            severity: match d.severity {
                Severity::Error => "error".into(),
                Severity::Warning => "warning".into(),
            },
            message: d.message.clone(),
        })
        .collect()
}
