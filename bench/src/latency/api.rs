//! The calls the bench makes to `nctl dev`'s HTTP API, the same ones `nctl` makes:
//! `POST /v1/jobs` with the job file parsed into Nomad's JSON job and its text as the
//! submission (`nctl apply`), `DELETE /v1/job/ID?purge=true` (`nctl stop --purge`),
//! `GET /v1/nodes`, and the watch: `GET /v1/event/stream?topic=Allocation` (Nomad's event
//! stream, newline-delimited JSON fed by a store watch), read into a [`Tracker`].

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::error::LatencyError;
use crate::lines::LineParser;
use crate::tracker::Tracker;

/// How long one plain request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The API of one `nctl dev`.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

fn http_err(what: &str) -> impl FnOnce(reqwest::Error) -> LatencyError + '_ {
    move |source| LatencyError::Http {
        what: what.to_string(),
        source,
    }
}

impl Api {
    /// The API at `base` (`http://127.0.0.1:PORT`), never through a proxy.
    pub fn new(base: &str) -> Result<Api, LatencyError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(http_err("building the HTTP client"))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    /// Sends `req` and returns its JSON body; a non-2xx answer is [`LatencyError::Api`].
    async fn call(&self, what: &str, req: reqwest::RequestBuilder) -> Result<Value, LatencyError> {
        let resp = req
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(http_err(what))?;
        let status = resp.status();
        let body = resp.text().await.map_err(http_err(what))?;
        if !status.is_success() {
            return Err(LatencyError::Api {
                what: what.to_string(),
                status: status.as_u16(),
                body,
            });
        }
        Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Submits a job file, as `nctl apply -f FILE` does: parsed here, each job registered as
    /// Nomad's JSON job.
    pub async fn apply(&self, filename: &str, source: &str) -> Result<(), LatencyError> {
        let parsed =
            nomos_api::parse_source(filename, source, &Default::default()).map_err(|diags| {
                let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
                LatencyError::Args(lines.join("\n"))
            })?;
        let meta = nomos_api::nomad_out::JobMeta::default();
        for job in &parsed.jobs {
            let body = json!({
                "Job": nomos_api::nomad_out::job_to_nomad(job, &meta),
                "Submission": {"Source": source, "Format": "hcl2"},
            });
            let req = self.http.post(format!("{}/v1/jobs", self.base)).json(&body);
            self.call(&format!("applying {filename}"), req).await?;
        }
        Ok(())
    }

    /// Stops and purges a job.
    pub async fn purge(&self, job: &str) -> Result<(), LatencyError> {
        let req = self
            .http
            .delete(format!("{}/v1/job/{job}?purge=true", self.base));
        self.call(&format!("purging job {job}"), req).await?;
        Ok(())
    }

    /// The status (`ready`, `disconnected`, `down`) of node `name`, `None` while it is not
    /// registered.
    pub async fn node_status(&self, name: &str) -> Result<Option<String>, LatencyError> {
        let req = self.http.get(format!("{}/v1/nodes", self.base));
        let nodes = self.call("listing nodes", req).await?;
        Ok(nodes.as_array().and_then(|all| {
            all.iter()
                .find(|n| n["Name"] == name)
                .and_then(|n| n["Status"].as_str().map(str::to_string))
        }))
    }

    /// What the API says about a job (for error messages; empty if it cannot tell).
    pub async fn job_summary(&self, job: &str) -> String {
        let req = self.http.get(format!("{}/v1/job/{job}", self.base));
        match self.call("", req).await {
            Ok(v) => v
                .get("NomosStatus")
                .map(Value::to_string)
                .unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    }

    /// Opens the watch: every change from now on.
    pub async fn events(&self) -> Result<Events, LatencyError> {
        let what = "opening GET /v1/event/stream";
        let resp = self
            .http
            .get(format!("{}/v1/event/stream?topic=Allocation", self.base))
            .send()
            .await
            .map_err(http_err(what))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            return Err(LatencyError::Api {
                what: what.to_string(),
                status,
                body,
            });
        }
        Ok(Events {
            resp,
            parser: LineParser::default(),
            tracker: Tracker::default(),
        })
    }
}

/// The open event stream and what it said so far.
pub struct Events {
    resp: reqwest::Response,
    parser: LineParser,
    pub tracker: Tracker,
}

impl Events {
    /// Reads events until `done` says so (`Ok(true)`) or `deadline` passes (`Ok(false)`).
    /// `done` is asked first, then after every chunk that arrives.
    pub async fn until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Tracker) -> Result<bool, LatencyError>,
    ) -> Result<bool, LatencyError> {
        loop {
            if done(&self.tracker)? {
                return Ok(true);
            }
            let chunk = match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Err(_) => return Ok(false),
                Ok(chunk) => chunk.map_err(http_err("reading GET /v1/event/stream"))?,
            };
            let chunk = chunk.ok_or_else(|| LatencyError::Stream("the server closed it".into()))?;
            let events = self
                .parser
                .feed(&chunk)
                .map_err(|e| LatencyError::Stream(e.to_string()))?;
            for data in events {
                self.tracker.apply(&data).map_err(LatencyError::Stream)?;
            }
        }
    }
}
