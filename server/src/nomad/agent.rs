//! Nomad's agent and status endpoints, for the tools that ask who they talk to before anything
//! else: `/v1/agent/self|members|servers|health`, `/v1/status/leader|peers` and `/v1/regions`.
//!
//! Nomos servers are not a gossip pool: each advertises its API at `/nomos/servers/<id>`
//! ([`crate::advertise`]), so the members and peers are the servers advertised there (this one
//! included, advertised or not), and the leader is the server whose identity holds the jobs
//! loop's election key (`/nomos/election/jobs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nomos_store::{keys, KeySelector, RangeOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::blocking::read_index;
use super::query::{QueryOptions, REGION};
use super::respond::Answer;
use crate::error::ServerError;
use crate::AppState;

/// The Nomad version whose API Nomos answers as (what `Tags.build` and `Version` report to
/// tools that check it).
pub const NOMAD_API_VERSION: &str = "1.9.0";
/// The election whose holder is reported as the leader.
const LEADING_LOOP: &str = "jobs";

/// Who this server is, as its agent endpoints report it.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    /// The server's identity (`nctl server --identity`, the host name by default).
    pub name: String,
    pub datacenter: String,
    /// The API's address; set by [`crate::serve`] from its listener.
    pub http_addr: Option<SocketAddr>,
    /// Whether this process also runs a client (an agent: `nctl dev`).
    pub client: bool,
    pub acl_enabled: bool,
}

impl Default for AgentInfo {
    fn default() -> Self {
        AgentInfo {
            name: "nomos".into(),
            datacenter: "dc1".into(),
            http_addr: None,
            client: false,
            acl_enabled: false,
        }
    }
}

/// A server as `/v1/agent/members` lists it (Nomad's `AgentMember`).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub port: u16,
    pub tags: BTreeMap<String, String>,
    pub status: String,
    pub protocol_min: u8,
    pub protocol_max: u8,
    pub protocol_cur: u8,
    pub delegate_min: u8,
    pub delegate_max: u8,
    pub delegate_cur: u8,
}

#[derive(Deserialize)]
struct Advertisement {
    http_addr: String,
}

/// Every advertised server's `host:port`, by identity; this one's own address included.
async fn servers(st: &AppState) -> Result<BTreeMap<String, String>, ServerError> {
    let resp = st
        .store
        .range(
            KeySelector::prefix(keys::SERVERS_PREFIX.as_bytes().to_vec()),
            RangeOptions::default(),
        )
        .await?;
    let mut out = BTreeMap::new();
    for kv in resp.kvs {
        let Ok(key) = std::str::from_utf8(&kv.key) else {
            continue;
        };
        let id = key.trim_start_matches(keys::SERVERS_PREFIX).to_string();
        match serde_json::from_slice::<Advertisement>(&kv.value) {
            Ok(ad) => {
                out.insert(id, host_port(&ad.http_addr));
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "skipping a server advertisement that does not decode")
            }
        }
    }
    if let Some(addr) = st.agent.http_addr {
        out.entry(st.agent.name.clone())
            .or_insert_with(|| addr.to_string());
    }
    Ok(out)
}

/// `https://10.0.0.1:4747` → `10.0.0.1:4747`.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/').to_string()
}

/// The identity holding the leading loop's election, if any.
async fn leader_identity(st: &AppState) -> Result<Option<String>, ServerError> {
    let key = format!("/nomos/election/{LEADING_LOOP}");
    let resp = st
        .store
        .range(KeySelector::key(key.into_bytes()), RangeOptions::default())
        .await?;
    Ok(resp
        .kvs
        .first()
        .and_then(|kv| String::from_utf8(kv.value.clone()).ok()))
}

fn member(name: &str, addr: &str, datacenter: &str, leader: bool) -> Member {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    let tags = [
        ("role", "nomad"),
        ("region", REGION),
        ("dc", datacenter),
        ("build", NOMAD_API_VERSION),
        ("port", port),
        ("bootstrap", if leader { "1" } else { "0" }),
        ("vsn", "1"),
        ("mvn", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Member {
        name: format!("{name}.{REGION}"),
        addr: host.trim_matches(['[', ']']).to_string(),
        port: port.parse().unwrap_or(0),
        tags,
        status: "alive".into(),
        protocol_min: 1,
        protocol_max: 5,
        protocol_cur: 2,
        delegate_min: 2,
        delegate_max: 5,
        delegate_cur: 4,
    }
}

/// `GET /v1/status/leader`: the leading server's `host:port` (empty without a leader).
pub async fn leader(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<String>, ServerError> {
    let index = read_index(&st).await?;
    let servers = servers(&st).await?;
    let addr = match leader_identity(&st).await? {
        Some(id) => servers.get(&id).cloned().unwrap_or_default(),
        None => String::new(),
    };
    Ok(Answer::new(addr, index, &q))
}

/// `GET /v1/status/peers` and `GET /v1/agent/servers`: every server's `host:port`.
pub async fn peers(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<Vec<String>>, ServerError> {
    let index = read_index(&st).await?;
    let servers = servers(&st).await?;
    Ok(Answer::new(servers.into_values().collect(), index, &q))
}

/// `GET /v1/regions`: the one region.
pub async fn regions(q: QueryOptions) -> Answer<Vec<&'static str>> {
    Answer::new(vec![REGION], 1, &q)
}

/// `GET /v1/agent/members`: the servers as members of one pool.
pub async fn members(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<serde_json::Value>, ServerError> {
    let index = read_index(&st).await?;
    let leader = leader_identity(&st).await?;
    let members: Vec<Member> = servers(&st)
        .await?
        .iter()
        .map(|(id, addr)| member(id, addr, &st.agent.datacenter, leader.as_ref() == Some(id)))
        .collect();
    let body = json!({
        "ServerName": st.agent.name,
        "ServerRegion": REGION,
        "ServerDC": st.agent.datacenter,
        "Members": members,
    });
    Ok(Answer::new(body, index, &q))
}

/// `GET /v1/agent/self`: this agent's configuration, membership and a few stats.
pub async fn agent_self(
    State(st): State<AppState>,
    q: QueryOptions,
) -> Result<Answer<serde_json::Value>, ServerError> {
    let index = read_index(&st).await?;
    let leader = leader_identity(&st).await?;
    let is_leader = leader.as_deref() == Some(st.agent.name.as_str());
    let addr = st
        .agent
        .http_addr
        .map(|a| a.to_string())
        .unwrap_or_default();
    let body = json!({
        "config": {
            "Region": REGION,
            "Datacenter": st.agent.datacenter,
            "NodeName": st.agent.name,
            "Version": {
                "Version": NOMAD_API_VERSION,
                "VersionPrerelease": "",
                "VersionMetadata": "",
                "Revision": "",
            },
            "NomosVersion": env!("CARGO_PKG_VERSION"),
            "Server": { "Enabled": true },
            "Client": { "Enabled": st.agent.client },
            "ACL": { "Enabled": st.agent.acl_enabled },
        },
        "member": member(&st.agent.name, &addr, &st.agent.datacenter, is_leader),
        "stats": {
            "nomad": {
                "server": "true",
                "leader": is_leader.to_string(),
                "known_regions": "1",
            },
        },
    });
    Ok(Answer::new(body, index, &q))
}

/// `GET /v1/agent/health`: `200` while this server reads the store, `500` with the reason
/// otherwise, in Nomad's shape.
pub async fn health(State(st): State<AppState>) -> Response {
    let mut body = serde_json::Map::new();
    let server = match st.store.status().await {
        Ok(_) => json!({ "ok": true, "message": "ok" }),
        Err(e) => json!({ "ok": false, "message": format!("store unavailable: {e}") }),
    };
    let ok = server["ok"] == json!(true);
    body.insert("server".into(), server);
    if st.agent.client {
        body.insert("client".into(), json!({ "ok": true, "message": "ok" }));
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, Json(serde_json::Value::Object(body))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_urls_become_host_and_port() {
        assert_eq!(host_port("https://10.0.0.1:4747"), "10.0.0.1:4747");
        assert_eq!(host_port("http://[::1]:4747/"), "[::1]:4747");
        assert_eq!(host_port("127.0.0.1:1"), "127.0.0.1:1");
    }

    #[test]
    fn a_member_carries_nomads_tags() {
        let m = member("s1", "[::1]:4747", "dc2", true);
        assert_eq!(m.name, "s1.global");
        assert_eq!(m.addr, "::1");
        assert_eq!(m.port, 4747);
        assert_eq!(m.tags["dc"], "dc2");
        assert_eq!(m.tags["region"], "global");
        assert_eq!(m.tags["bootstrap"], "1");
        assert_eq!(m.status, "alive");
    }
}
