//! `GET /v1/operator/scheduler/configuration`: the placement settings this server's controllers
//! run with, in Nomad's `SchedulerConfiguration` shape. Nomos sets them in the server's
//! configuration (`scheduler_algorithm`), not through the API: Nomos has no preemption, no
//! memory oversubscription and no evaluation broker to pause, so those read as off.

use axum::extract::State;
use nomos_controllers::scheduler::Algorithm;
use serde_json::{json, Value};

use super::blocking::read_index;
use super::query::QueryOptions;
use super::respond::Answer;
use crate::error::ServerError;
use crate::AppState;

/// `GET /v1/operator/scheduler/configuration`.
pub async fn scheduler_configuration(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<Value>, ServerError> {
    let index = read_index(&st).await?;
    let algorithm = match st.scheduler.algorithm {
        Algorithm::Binpack => "binpack",
        Algorithm::Spread => "spread",
    };
    let body = json!({
        "SchedulerConfig": {
            "SchedulerAlgorithm": algorithm,
            "PreemptionConfig": {
                "SystemSchedulerEnabled": false,
                "SysBatchSchedulerEnabled": false,
                "BatchSchedulerEnabled": false,
                "ServiceSchedulerEnabled": false,
            },
            "MemoryOversubscriptionEnabled": false,
            "RejectJobRegistration": false,
            "PauseEvalBroker": false,
            "CreateIndex": 0,
            "ModifyIndex": 0,
        },
        "Index": index,
        "LastContact": 0,
        "KnownLeader": true,
    });
    Ok(Answer::new(body, index, &q))
}
