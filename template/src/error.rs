//! The crate's one error type: every failure names the template, a `line:col` and what went wrong.

use thiserror::Error;

/// Why parsing or rendering a template failed.
///
/// None of these is retryable with the same inputs, except `Source`, whose
/// cause is an external data source (a variable store that is briefly
/// unreachable, say) and may succeed on a later render.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    /// The template text is larger than [`crate::MAX_TEMPLATE_BYTES`].
    #[error("template: {name}: text is {size} bytes, more than the limit of {limit} bytes")]
    TextTooLarge {
        name: String,
        size: usize,
        limit: usize,
    },
    /// The text is not a valid template (syntax, unknown function, undefined variable).
    #[error("template: {name}:{line}:{col}: {message}")]
    Parse {
        name: String,
        line: usize,
        col: usize,
        message: String,
    },
    /// The template calls a function that is neither built in nor declared in
    /// [`crate::Options::external_functions`] (a typo, or a consul-template
    /// function Nomos does not provide, such as `key`).
    #[error("template: {name}:{line}:{col}: function {function:?} not defined{hint}")]
    UnknownFunction {
        name: String,
        line: usize,
        col: usize,
        function: String,
        /// Why a consul-template function Nomos leaves out is missing (empty for a typo).
        hint: String,
    },
    /// Evaluating an action failed (wrong argument, index out of range, missing key).
    #[error("template: {name}:{line}:{col}: {message}")]
    Render {
        name: String,
        line: usize,
        col: usize,
        message: String,
    },
    /// A caller-supplied function (a data source) returned an error.
    #[error("template: {name}:{line}:{col}: error calling {function}: {message}")]
    Source {
        name: String,
        line: usize,
        col: usize,
        function: String,
        message: String,
    },
    /// A render budget (output size, iterations, steps, call depth) was exhausted.
    #[error("template: {name}:{line}:{col}: {what} exceeds the limit of {limit}")]
    Limit {
        name: String,
        line: usize,
        col: usize,
        what: &'static str,
        limit: usize,
    },
}

impl TemplateError {
    /// The `(line, col)` the error points at, both 1-based; `None` for `TextTooLarge`.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            TemplateError::TextTooLarge { .. } => None,
            TemplateError::Parse { line, col, .. }
            | TemplateError::UnknownFunction { line, col, .. }
            | TemplateError::Render { line, col, .. }
            | TemplateError::Source { line, col, .. }
            | TemplateError::Limit { line, col, .. } => Some((*line, *col)),
        }
    }
}

/// Converts byte offsets in a template's text to 1-based `line:col` (columns count characters).
#[derive(Debug, Clone)]
pub(crate) struct Positions {
    name: String,
    text: String,
}

impl Positions {
    pub(crate) fn new(name: &str, text: &str) -> Self {
        Positions {
            name: name.to_string(),
            text: text.to_string(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The 1-based line and column of byte offset `pos`.
    pub(crate) fn line_col(&self, pos: usize) -> (usize, usize) {
        let mut pos = pos.min(self.text.len());
        while !self.text.is_char_boundary(pos) {
            pos -= 1;
        }
        let before = &self.text[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    pub(crate) fn parse_error(&self, pos: usize, message: impl Into<String>) -> TemplateError {
        let (line, col) = self.line_col(pos);
        TemplateError::Parse {
            name: self.name.clone(),
            line,
            col,
            message: message.into(),
        }
    }
}
