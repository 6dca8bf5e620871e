//! What a caller of `GET /v1/event/stream` subscribes to: topics and keys from repeated
//! `topic=Topic:Key` parameters (`*` for every topic or every key, as Nomad), and the
//! namespaces of `namespace`; and the event shape those choose from.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::query::{Namespaces, QueryOptions};
use crate::error::ServerError;

/// The topics Nomos publishes.
pub const TOPICS: [&str; 6] = [
    "Job",
    "Allocation",
    "Deployment",
    "Evaluation",
    "Node",
    "Service",
];

/// Most `topic` parameters one stream takes.
pub const MAX_TOPIC_FILTERS: usize = 64;
/// Longest key one `topic` parameter names.
const MAX_KEY_BYTES: usize = 256;

/// One event, as Nomad writes it in a stream's batch.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub topic: &'static str,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub key: String,
    pub namespace: String,
    pub filter_keys: Option<Vec<String>>,
    pub index: i64,
    /// `{"Job": ...}`, `{"Allocation": ...}`, ... (one field named after the object).
    pub payload: Value,
}

/// The topics and keys a stream delivers, and its namespaces.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Topic (`*` for all) to the keys wanted (`*` for all).
    topics: BTreeMap<String, Vec<String>>,
    namespace: Namespaces,
}

impl Subscription {
    /// Reads the `topic` parameters (none: every topic) and `namespace` of a request.
    pub fn parse(q: &QueryOptions) -> Result<Subscription, ServerError> {
        let mut topics: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let given: Vec<&str> = q
            .others
            .iter()
            .filter(|(name, _)| name == "topic")
            .map(|(_, v)| v.as_str())
            .collect();
        if given.len() > MAX_TOPIC_FILTERS {
            return Err(ServerError::BadRequest(format!(
                "at most {MAX_TOPIC_FILTERS} topic parameters are taken, found {}",
                given.len()
            )));
        }
        for value in given {
            let (topic, key) = parse_one(value)?;
            topics.entry(topic).or_default().push(key);
        }
        if topics.is_empty() {
            topics.insert("*".into(), vec!["*".into()]);
        }
        Ok(Subscription {
            topics,
            namespace: q.namespace.clone(),
        })
    }

    /// Whether `ev` is wanted: its topic (or `*`) is subscribed with its key, one of its
    /// filter keys, or `*`; and it is in a namespace asked for (events of no namespace,
    /// nodes', go to every stream).
    pub fn wants(&self, ev: &Event) -> bool {
        if !ev.namespace.is_empty() && !self.namespace.covers(&ev.namespace) {
            return false;
        }
        let key_matches = |keys: &Vec<String>| {
            keys.iter().any(|k| {
                k == "*"
                    || *k == ev.key
                    || ev
                        .filter_keys
                        .as_ref()
                        .is_some_and(|fk| fk.iter().any(|f| f == k))
            })
        };
        [ev.topic, "*"]
            .iter()
            .filter_map(|t| self.topics.get(*t))
            .any(key_matches)
    }
}

/// `Topic`, `Topic:Key` or `*:*` → (topic, key).
fn parse_one(value: &str) -> Result<(String, String), ServerError> {
    let (topic, key) = value.split_once(':').unwrap_or((value, "*"));
    if topic != "*" && !TOPICS.contains(&topic) {
        return Err(ServerError::BadRequest(format!(
            "unknown topic {topic:?} in topic={value:?}: expected one of {} or *",
            TOPICS.join(", ")
        )));
    }
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ServerError::BadRequest(format!(
            "topic={value:?}: the key after ':' must be 1 to {MAX_KEY_BYTES} bytes (or *)"
        )));
    }
    Ok((topic.to_string(), key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(query: &str) -> Subscription {
        Subscription::parse(&QueryOptions::parse(query).unwrap()).unwrap()
    }

    fn event(topic: &'static str, key: &str, ns: &str, filter: &[&str]) -> Event {
        Event {
            topic,
            kind: "X",
            key: key.into(),
            namespace: ns.into(),
            filter_keys: Some(filter.iter().map(|s| s.to_string()).collect()),
            index: 1,
            payload: Value::Null,
        }
    }

    #[test]
    fn topics_and_keys_choose_events_as_in_nomad() {
        let web = event("Job", "web", "default", &[]);
        let alloc = event("Allocation", "a1", "default", &["web", "dep-1"]);
        let node = event("Node", "n1-id", "", &[]);
        let other_ns = event("Job", "web", "other", &[]);
        for (query, ev, want) in [
            ("", &web, true),
            ("", &node, true),
            ("", &other_ns, false),
            ("namespace=*", &other_ns, true),
            ("namespace=other", &node, true),
            ("topic=Job", &web, true),
            ("topic=Job", &alloc, false),
            ("topic=Job:web", &web, true),
            ("topic=Job:api", &web, false),
            ("topic=Job:api&topic=Job:web", &web, true),
            ("topic=Allocation:web", &alloc, true),
            ("topic=Allocation:dep-1", &alloc, true),
            ("topic=Allocation:a1", &alloc, true),
            ("topic=Allocation:a2", &alloc, false),
            ("topic=*:web", &alloc, true),
            ("topic=*:*", &node, true),
            ("topic=Node:*", &node, true),
        ] {
            assert_eq!(sub(query).wants(ev), want, "{query} {ev:?}");
        }
    }

    #[test]
    fn an_unknown_topic_or_an_empty_key_is_a_client_error() {
        for query in ["topic=Jobs", "topic=ACLToken", "topic=Job:", "topic=:x"] {
            let q = QueryOptions::parse(query).unwrap();
            let err = Subscription::parse(&q).expect_err(query);
            assert!(matches!(err, ServerError::BadRequest(_)), "{query}: {err}");
        }
        let many = vec!["topic=Job"; MAX_TOPIC_FILTERS + 1].join("&");
        assert!(Subscription::parse(&QueryOptions::parse(&many).unwrap()).is_err());
    }
}
