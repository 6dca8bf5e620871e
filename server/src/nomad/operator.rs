//! The scheduler's configuration, in Nomad's `SchedulerConfiguration` shape:
//! - `GET /v1/operator/scheduler/configuration`: the one stored at `/nomos/config/scheduler`
//!   with its key's revisions as `CreateIndex` / `ModifyIndex`; before anyone wrote one, the
//!   servers' configured default (`scheduler_algorithm`) with indexes 0;
//! - `PUT|POST /v1/operator/scheduler/configuration[?cas=INDEX]`: stores one (strict body;
//!   with `cas`, only while the stored one's `ModifyIndex` is `INDEX`, 0 for none). Answers
//!   `{Updated, Index}`: `Updated` false when the `cas` did not hold (Nomad's answer, not an
//!   error). The jobs controller places with the stored algorithm from then on
//!   (`nomos_controllers::scheduler::stored`).
//!
//! Nomos has no preemption, no memory oversubscription, no evaluation broker to pause and no
//! switch that refuses registrations: those read as off, and a write that turns one on is a
//! 400 naming it rather than a setting stored and ignored. The exception is Nomad's own
//! default, `PreemptionConfig.SystemSchedulerEnabled: true`, which Nomad's tools send back
//! unchanged: it is stored as written, and both answers say in Nomos's `Warnings` that it has
//! no effect ([`SchedulerConfiguration::notes`]).

use axum::extract::State;
use nomos_api::settings::{refuse_any, PreemptionConfig, SchedulerConfiguration};
use nomos_controllers::scheduler::Algorithm;
use nomos_store::keys;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::blocking::{read_index, wait_for_change};
use super::query::QueryOptions;
use super::respond::Answer;
use crate::body::JsonBody;
use crate::error::ServerError;
use crate::kv;
use crate::AppState;

/// `GET /v1/operator/scheduler/configuration`.
pub async fn scheduler_configuration(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    wait_for_change(&st, &q, &[keys::SCHEDULER_CONFIG]).await?;
    let index = read_index(&st).await?;
    let stored =
        kv::get_json::<SchedulerConfiguration>(st.store.as_ref(), keys::SCHEDULER_CONFIG).await?;
    let (config, create_index, modify_index) = match stored {
        Some(e) => (e.value, e.create_revision, e.mod_revision),
        None => {
            let algorithm = match st.scheduler.algorithm {
                Algorithm::Binpack => "binpack",
                Algorithm::Spread => "spread",
            };
            (SchedulerConfiguration::with_algorithm(algorithm), 0, 0)
        }
    };
    let mut shown =
        serde_json::to_value(&config).map_err(|e| ServerError::Internal(e.to_string()))?;
    shown["CreateIndex"] = json!(create_index);
    shown["ModifyIndex"] = json!(modify_index);
    let body = json!({
        "SchedulerConfig": shown,
        "Index": index,
        "LastContact": 0,
        "KnownLeader": true,
        "Warnings": config.notes().join("\n"),
    });
    Ok(Answer::new(body, index, &q))
}

/// The body of a write: Nomad's `SchedulerConfiguration` (the indexes a client read with it
/// are taken and ignored; `cas` is the compare).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SchedulerConfigRequest {
    /// `binpack` (also when empty) or `spread`.
    pub scheduler_algorithm: String,
    pub preemption_config: PreemptionConfig,
    pub memory_oversubscription_enabled: bool,
    pub reject_job_registration: bool,
    pub pause_eval_broker: bool,
    pub create_index: i64,
    pub modify_index: i64,
    pub region: String,
    pub namespace: String,
    #[serde(rename = "SecretID")]
    pub secret_id: String,
}

/// What a request asks to store; 400 with every reason Nomos cannot honour it.
fn to_store(req: SchedulerConfigRequest) -> Result<SchedulerConfiguration, ServerError> {
    let config = SchedulerConfiguration {
        scheduler_algorithm: if req.scheduler_algorithm.is_empty() {
            "binpack".into()
        } else {
            req.scheduler_algorithm
        },
        preemption_config: req.preemption_config,
        memory_oversubscription_enabled: req.memory_oversubscription_enabled,
        reject_job_registration: req.reject_job_registration,
        pause_eval_broker: req.pause_eval_broker,
    };
    refuse_any(
        "the scheduler configuration cannot be honoured",
        config.problems(),
    )
    .map_err(ServerError::BadRequest)?;
    Ok(config)
}

/// `PUT|POST /v1/operator/scheduler/configuration[?cas=INDEX]`.
pub async fn set_scheduler_configuration(
    State(st): State<AppState>,
    q: QueryOptions,
    JsonBody(req): JsonBody<SchedulerConfigRequest>,
) -> Result<Answer<Value>, ServerError> {
    let cas = match q.param("cas") {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|c| *c >= 0)
                .ok_or_else(|| {
                    ServerError::BadRequest(format!(
                        "cas: expected an index (0 or more), found {text:?}"
                    ))
                })?,
        ),
    };
    let config = to_store(req)?;
    let warnings = config.notes().join("\n");
    let store = st.store.as_ref();
    let (updated, index) = match cas {
        Some(expected) => {
            match kv::put_if(store, keys::SCHEDULER_CONFIG, &config, expected).await {
                Ok(index) => (true, index),
                Err(ServerError::Conflict(_)) => (false, read_index(&st).await?),
                Err(e) => return Err(e),
            }
        }
        None => (
            true,
            kv::put_json(store, keys::SCHEDULER_CONFIG, &config).await?,
        ),
    };
    Ok(Answer::new(
        json!({"Updated": updated, "Index": index, "Warnings": warnings}),
        index,
        &q,
    ))
}
