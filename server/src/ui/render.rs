//! The template environment: the HTML templates of `server/templates/`, embedded in the binary
//! and parsed once. Names end in `.html`, so minijinja escapes every value for HTML unless a
//! template marks it safe (none does): a job named `<script>` shows as text.

use std::sync::LazyLock;

use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::error::ServerError;

/// How often the pages' live tables refresh (htmx `every`).
pub const REFRESH: &str = "2s";

/// Every template, by the name pages include and extend it with.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    (
        "overview.html",
        include_str!("../../templates/overview.html"),
    ),
    ("job.html", include_str!("../../templates/job.html")),
    ("node.html", include_str!("../../templates/node.html")),
    ("alloc.html", include_str!("../../templates/alloc.html")),
    ("error.html", include_str!("../../templates/error.html")),
    (
        "usage_chart.html",
        include_str!("../../templates/usage_chart.html"),
    ),
    (
        "fragments/counts.html",
        include_str!("../../templates/fragments/counts.html"),
    ),
    (
        "fragments/jobs.html",
        include_str!("../../templates/fragments/jobs.html"),
    ),
    (
        "fragments/nodes.html",
        include_str!("../../templates/fragments/nodes.html"),
    ),
    (
        "fragments/job.html",
        include_str!("../../templates/fragments/job.html"),
    ),
    (
        "fragments/node.html",
        include_str!("../../templates/fragments/node.html"),
    ),
    (
        "fragments/alloc.html",
        include_str!("../../templates/fragments/alloc.html"),
    ),
    (
        "fragments/actions_macros.html",
        include_str!("../../templates/fragments/actions_macros.html"),
    ),
    (
        "fragments/actions_job.html",
        include_str!("../../templates/fragments/actions_job.html"),
    ),
    (
        "fragments/actions_alloc.html",
        include_str!("../../templates/fragments/actions_alloc.html"),
    ),
    (
        "fragments/actions_node.html",
        include_str!("../../templates/fragments/actions_node.html"),
    ),
    (
        "fragments/console.html",
        include_str!("../../templates/fragments/console.html"),
    ),
];

static ENV: LazyLock<Result<Environment<'static>, minijinja::Error>> = LazyLock::new(build);

fn build() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // A misspelt field is an error (caught by the tests), not an empty cell.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    env.add_filter("href", href);
    env.add_filter("segment", |s: String| super::model::encode_segment(&s));
    env.add_filter("json_attr", json_attr);
    env.add_global("version", env!("CARGO_PKG_VERSION"));
    env.add_global("refresh", REFRESH);
    Ok(env)
}

/// `{{ x.href|href }}`: a link the server built (a path whose segments are percent-encoded) goes
/// out as is rather than with every `/` escaped; anything else becomes `#`.
fn href(v: String) -> Value {
    let ours = v.starts_with('/')
        && !v.starts_with("//")
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%?=&#".contains(&b));
    if ours {
        Value::from_safe_string(v.replace('&', "&amp;"))
    } else {
        Value::from_safe_string("#".into())
    }
}

/// `{{ x|json_attr }}`: a value as JSON for the action buttons' request bodies, with `<`, `>`,
/// `&` and `'` as `\u` escapes. It is not marked safe: what it is joined into is HTML-escaped
/// into its attribute as any value is.
fn json_attr(v: Value) -> Result<Value, minijinja::Error> {
    let text = serde_json::to_string(&v).map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
    })?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' | '>' | '&' | '\'' => out.push_str(&format!("\\u{:04x}", c as u32)),
            _ => out.push(c),
        }
    }
    Ok(Value::from(out))
}

/// Renders one template over a serialisable context.
pub fn render<S: Serialize>(name: &str, ctx: &S) -> Result<String, ServerError> {
    let env = ENV
        .as_ref()
        .map_err(|e| ServerError::Internal(format!("UI templates do not parse: {e:#}")))?;
    env.get_template(name)
        .and_then(|t| t.render(Serde(ctx)))
        .map_err(|e| ServerError::Internal(format!("rendering {name} failed: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        if let Err(e) = &*ENV {
            panic!("{e:#}");
        }
    }

    #[test]
    fn values_are_escaped_for_html() {
        let html = render(
            "error.html",
            &serde_json::json!({"code": 404, "title": "<b>x</b>", "message": "\"<script>\""}),
        )
        .unwrap();
        assert!(html.contains("&lt;b&gt;x&lt;&#x2f;b&gt;"), "{html}");
        assert!(!html.contains("<script>\""), "{html}");
    }

    #[test]
    fn json_in_attributes_cannot_close_the_attribute_or_open_a_tag() {
        let out = json_attr(Value::from("a'<b>&\"")).unwrap().to_string();
        assert_eq!(out, r#""a\u0027\u003cb\u003e\u0026\"""#);
    }

    #[test]
    fn only_links_the_server_built_go_out_unescaped() {
        assert_eq!(
            href("/ui/job/a%20b?namespace=x&y=1".into()).to_string(),
            "/ui/job/a%20b?namespace=x&amp;y=1"
        );
        assert_eq!(href("javascript:alert(1)".into()).to_string(), "#");
        assert_eq!(href("//evil.example/".into()).to_string(), "#");
        assert_eq!(href("/ui/\"<x>".into()).to_string(), "#");
    }
}
