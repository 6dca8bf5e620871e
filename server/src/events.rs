//! `GET /v1/events?topic=jobs&index=N`: server-sent events fed by a store watch on `/nomos/`
//! (or one topic's prefix), one event per change, with the store revision as the event id so a
//! client can resume with `index`. A compacted start revision ends the stream with an `error`
//! event telling the client to re-list.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use nomos_store::{EventKind, KeySelector, WatchOptions, WatchResponse};
use serde::Deserialize;

use crate::error::ServerError;
use crate::views::EventView;
use crate::AppState;

#[derive(Debug, Deserialize, Default)]
pub struct EventsQuery {
    /// `jobs`, `allocs`, `allocstatus`, `nodes`, `deployments`, ... (the key's second segment).
    pub topic: Option<String>,
    /// Deliver changes after this revision (0 or absent: from now on).
    #[serde(default)]
    pub index: i64,
}

/// The prefix a topic watches.
pub fn topic_prefix(topic: Option<&str>) -> Result<String, ServerError> {
    match topic {
        None | Some("") => Ok(nomos_store::keys::ROOT.to_string()),
        Some(t)
            if t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(format!("{}{t}/", nomos_store::keys::ROOT))
        }
        Some(t) => Err(ServerError::BadRequest(format!("invalid topic {t:?}"))),
    }
}

/// The events of one watch response.
pub fn to_views(resp: &WatchResponse) -> Vec<EventView> {
    resp.events
        .iter()
        .map(|ev| {
            let key = ev.kv.key_str().into_owned();
            let topic = key
                .strip_prefix(nomos_store::keys::ROOT)
                .and_then(|r| r.split('/').next())
                .unwrap_or("")
                .to_string();
            EventView {
                revision: ev.kv.mod_revision,
                kind: match ev.kind {
                    EventKind::Put => "put".into(),
                    EventKind::Delete => "delete".into(),
                },
                topic,
                key,
                value: serde_json::from_slice(&ev.kv.value).unwrap_or(serde_json::Value::Null),
            }
        })
        .collect()
}

/// `GET /v1/events`.
pub async fn stream(
    State(st): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ServerError> {
    let prefix = topic_prefix(q.topic.as_deref())?;
    let options = WatchOptions {
        start_revision: if q.index > 0 { q.index + 1 } else { 0 },
        ..WatchOptions::default()
    };
    let watch = st.store.watch(KeySelector::prefix(prefix), options).await?;
    let events = watch
        .map(|item| match item {
            Ok(resp) => to_views(&resp)
                .into_iter()
                .map(|v| {
                    let data = serde_json::to_string(&v).unwrap_or_default();
                    Ok(Event::default()
                        .id(v.revision.to_string())
                        .event(v.topic.clone())
                        .data(data))
                })
                .collect::<Vec<_>>(),
            Err(e) => vec![Ok(Event::default().event("error").data(e.to_string()))],
        })
        .flat_map(futures::stream::iter)
        .take_until(st.closed());
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
