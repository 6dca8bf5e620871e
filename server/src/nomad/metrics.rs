//! `GET /v1/metrics`: the server's metrics in Nomad's JSON (`Gauges`, `Counters`, `Samples`),
//! or, with `format=prometheus`, as the Prometheus text `/metrics` serves. The JSON is made
//! from the same registry's text: metric names with `.` for `_` (Nomad's style) and without
//! the `_total` of counters; labels as a map; a histogram becomes a sample with its count,
//! sum and mean.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::query::QueryOptions;
use super::respond::Answer;
use crate::error::ServerError;
use crate::AppState;

/// One sample line: `name{labels} value`.
struct Line {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_line(line: &str) -> Option<Line> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)),
        None => (head, BTreeMap::new()),
    };
    Some(Line {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `a="x",b="y"` (values as the text encoder escapes them: `\"`, `\\`, `\n`).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_string(), value);
        rest = &after[end.min(after.len())..];
    }
    out
}

/// A histogram's count and sum, for one set of labels.
#[derive(Default)]
struct Histogram {
    count: f64,
    sum: f64,
    labels: BTreeMap<String, String>,
}

fn nomad_name(name: &str) -> String {
    name.replace('_', ".")
}

/// Nomad's metrics JSON from OpenMetrics text, stamped `timestamp`.
pub fn metrics_json(openmetrics: &str, timestamp: &str) -> Value {
    let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
    let (mut gauges, mut counters) = (Vec::new(), Vec::new());
    let mut histograms: BTreeMap<(String, String), Histogram> = BTreeMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                kinds.insert(name, kind);
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some(l) = parse_line(line) else { continue };
        let family = kinds
            .keys()
            .filter(|f| l.name.starts_with(*f))
            .max_by_key(|f| f.len())
            .copied()
            .unwrap_or(l.name.as_str());
        match kinds.get(family).copied().unwrap_or("gauge") {
            "counter" => counters.push(json!({
                "Name": nomad_name(family), "Count": l.value as i64, "Sum": l.value,
                "Min": l.value, "Max": l.value, "Mean": l.value, "Rate": 0.0,
                "Stddev": 0.0, "Labels": l.labels,
            })),
            "histogram" if l.name.ends_with("_bucket") => {}
            "histogram" => {
                let labels_key = format!("{:?}", l.labels);
                let entry = histograms
                    .entry((family.to_string(), labels_key))
                    .or_default();
                if l.name.ends_with("_count") {
                    entry.count = l.value;
                    entry.labels = l.labels;
                } else if l.name.ends_with("_sum") {
                    entry.sum = l.value;
                }
            }
            _ => gauges.push(json!({
                "Name": nomad_name(&l.name), "Value": l.value, "Labels": l.labels,
            })),
        }
    }
    let samples: Vec<Value> = histograms
        .into_iter()
        .map(|((family, _), h)| {
            let mean = if h.count > 0.0 { h.sum / h.count } else { 0.0 };
            json!({
                "Name": nomad_name(&family), "Count": h.count as i64, "Sum": h.sum,
                "Mean": mean, "Min": 0.0, "Max": 0.0, "Rate": 0.0, "Stddev": 0.0,
                "Labels": h.labels,
            })
        })
        .collect();
    json!({
        "Timestamp": timestamp,
        "Gauges": gauges,
        "Counters": counters,
        "Samples": samples,
        "Points": [],
    })
}

/// `GET /v1/metrics` (`format=prometheus`: the text `/metrics` serves).
pub async fn render(
    State(st): State<AppState>,
    q: QueryOptions,
    headers: HeaderMap,
) -> Result<Response, ServerError> {
    if q.param("format") == Some("prometheus") {
        return Ok(crate::metrics::render(State(st), headers).await);
    }
    let mut text = String::new();
    {
        let reg = st.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut text, &reg)
            .map_err(|e| ServerError::Internal(format!("encoding metrics: {e}")))?;
    }
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
        .to_string();
    Ok(Answer::new(metrics_json(&text, &now), 0, &q).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_families_become_nomads_gauges_counters_and_samples() {
        let text = "# HELP nomos_http_requests Requests.\n# TYPE nomos_http_requests counter\n\
nomos_http_requests_total{code=\"200\",path=\"/v1/nodes\"} 7\n\
# TYPE nomos_jobs gauge\nnomos_jobs 3\n\
# TYPE nomos_pass_seconds histogram\n\
nomos_pass_seconds_sum{loop=\"jobs\"} 1.5\nnomos_pass_seconds_count{loop=\"jobs\"} 3\n\
nomos_pass_seconds_bucket{le=\"+Inf\",loop=\"jobs\"} 3\n# EOF\n";
        let v = metrics_json(text, "now");
        assert_eq!(
            v["Counters"],
            json!([{"Name": "nomos.http.requests", "Count": 7, "Sum": 7.0, "Min": 7.0,
                    "Max": 7.0, "Mean": 7.0, "Rate": 0.0, "Stddev": 0.0,
                    "Labels": {"code": "200", "path": "/v1/nodes"}}])
        );
        assert_eq!(
            v["Gauges"],
            json!([{"Name": "nomos.jobs", "Value": 3.0, "Labels": {}}])
        );
        assert_eq!(v["Samples"][0]["Name"], "nomos.pass.seconds");
        assert_eq!(v["Samples"][0]["Count"], 3);
        assert_eq!(v["Samples"][0]["Mean"], 0.5);
        assert_eq!(v["Samples"][0]["Labels"], json!({"loop": "jobs"}));
        assert_eq!(v["Timestamp"], "now");
    }

    #[test]
    fn escaped_label_values_are_read_back() {
        let l = parse_line(r#"m{a="x\"y",b="p\\q",c="l\n2"} 1"#).unwrap();
        assert_eq!(l.labels["a"], "x\"y");
        assert_eq!(l.labels["b"], "p\\q");
        assert_eq!(l.labels["c"], "l\n2");
        assert!(parse_line("garbage").is_none());
    }
}
