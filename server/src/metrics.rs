//! Prometheus metrics: the server's own HTTP metrics (requests by route, method and status,
//! and their latency) recorded by a middleware, and `/metrics`, which encodes the process's
//! registry (the controllers register theirs into the same one) in the text format.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::AppState;

/// Rewrites OpenMetrics text into the Prometheus text format 0.0.4: counter families are named
/// with their `_total` suffix in `HELP`/`TYPE`, `info` families become gauges named `_info`, and
/// `# UNIT` and `# EOF` lines are dropped. Samples are unchanged.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut renames = std::collections::HashMap::new();
    for line in openmetrics.lines() {
        let mut parts = line.splitn(4, ' ');
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            match kind {
                "counter" if !name.ends_with("_total") => {
                    renames.insert(name.to_string(), (format!("{name}_total"), "counter"));
                }
                "info" => {
                    renames.insert(name.to_string(), (format!("{name}_info"), "gauge"));
                }
                "stateset" | "gaugehistogram" => {
                    renames.insert(name.to_string(), (name.to_string(), "untyped"));
                }
                _ => {}
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let mut parts = line.splitn(4, ' ');
        let (hash, what, name, rest) = (parts.next(), parts.next(), parts.next(), parts.next());
        match (hash, what, name) {
            (Some("#"), Some("HELP"), Some(name)) if renames.contains_key(name) => {
                out.push_str(&format!(
                    "# HELP {} {}\n",
                    renames[name].0,
                    rest.unwrap_or("")
                ));
            }
            (Some("#"), Some("TYPE"), Some(name)) if renames.contains_key(name) => {
                let (new, kind) = &renames[name];
                out.push_str(&format!("# TYPE {new} {kind}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

type Labels = Vec<(String, String)>;

fn new_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 10))
}

/// The server's HTTP metrics.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(new_histogram),
        }
    }
}

impl HttpMetrics {
    /// Registers `nomos_http_requests_total` and `nomos_http_request_duration_seconds`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "nomos_http_requests",
            "HTTP requests served, by route, method and status code",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "nomos_http_request_duration",
            "Time to produce the response head, by route and method",
            prometheus_client::registry::Unit::Seconds,
            self.duration.clone(),
        );
    }
}

/// Middleware recording every request.
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    st.http_metrics
        .requests
        .get_or_create(&vec![
            ("route".to_string(), route.clone()),
            ("method".to_string(), method.clone()),
            ("code".to_string(), status),
        ])
        .inc();
    st.http_metrics
        .duration
        .get_or_create(&vec![
            ("route".to_string(), route),
            ("method".to_string(), method),
        ])
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`: OpenMetrics for clients that ask for it (Prometheus does), the classic
/// Prometheus text format (0.0.4) otherwise, which `promtool check metrics` and older tools read.
pub async fn render(State(st): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let mut out = String::new();
    let result = {
        let reg = st.registry.lock().unwrap_or_else(|e| e.into_inner());
        encode(&mut out, &reg)
    };
    // The cluster's figures come from the store; while it is away the process's own still
    // answer.
    match crate::usage_metrics::collect(&st).await {
        Ok(cluster) if out.ends_with("# EOF\n") => {
            out.truncate(out.len() - "# EOF\n".len());
            out.push_str(&cluster);
            out.push_str("# EOF\n");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cluster metrics left out of /metrics"),
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    match result {
        Ok(()) if openmetrics => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            to_prometheus_text(&out),
        )
            .into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_becomes_prometheus_text() {
        let cases = [
            (
                "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total 1\n# EOF\n",
                "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total 1\n",
            ),
            (
                "# HELP t Time.\n# TYPE t_seconds histogram\n# UNIT t_seconds seconds\nt_seconds_count 0\n",
                "# HELP t Time.\n# TYPE t_seconds histogram\nt_seconds_count 0\n",
            ),
            (
                "# HELP b Build.\n# TYPE b info\nb_info{v=\"1\"} 1\n",
                "# HELP b_info Build.\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n",
            ),
            ("# HELP g G.\n# TYPE g gauge\ng 2\n", "# HELP g G.\n# TYPE g gauge\ng 2\n"),
        ];
        for (input, want) in cases {
            assert_eq!(to_prometheus_text(input), want, "{input}");
        }
    }
}
