//! Job-file diagnostics as the API answers them: a 400 carrying every positioned diagnostic
//! ([`invalid`]) and warnings as [`DiagnosticView`]s ([`views`]).

use nomos_api::diag::Severity;
use nomos_api::Diagnostic;

use crate::error::ServerError;
use crate::views::DiagnosticView;

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
