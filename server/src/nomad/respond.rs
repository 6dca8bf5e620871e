//! Answers in Nomad's conventions: JSON (indented with `pretty`) with the query headers
//! `X-Nomad-Index`, `X-Nomad-LastContact` and `X-Nomad-KnownLeader`, and for a page of a list
//! `X-Nomad-Nexttoken`; and the list helpers every list endpoint applies in the same order:
//! `prefix`, `filter`, then paging.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::query::QueryOptions;

/// The header reads carry their index in.
pub const INDEX_HEADER: &str = "x-nomad-index";
/// Milliseconds since the answering server last heard from the leader; always 0: every
/// Nomos server reads the store itself.
pub const LAST_CONTACT_HEADER: &str = "x-nomad-lastcontact";
/// Whether the answering server knows a leader; always `true` while the store answers.
pub const KNOWN_LEADER_HEADER: &str = "x-nomad-knownleader";
/// The token of the next page of a list.
pub const NEXT_TOKEN_HEADER: &str = "x-nomad-nexttoken";

/// A read's answer with its index.
pub struct Answer<T> {
    pub body: T,
    pub index: i64,
    pub pretty: bool,
    pub next_token: Option<String>,
}

impl<T: Serialize> Answer<T> {
    pub fn new(body: T, index: i64, q: &QueryOptions) -> Self {
        Answer {
            body,
            index,
            pretty: q.pretty,
            next_token: None,
        }
    }
}

impl<T: Serialize> Answer<Vec<T>> {
    /// A list's answer: `items` after `prefix`, `filter` and paging ([`list`]), carrying the
    /// next page's token (`X-Nomad-Nexttoken`) when there is one. Every list endpoint answers
    /// through it.
    pub fn paged(
        items: Vec<T>,
        index: i64,
        q: &QueryOptions,
        token_of: impl Fn(&T) -> String,
    ) -> Self {
        let (page, next_token) = list(items, q, token_of);
        Answer {
            next_token,
            ..Answer::new(page, index, q)
        }
    }
}

impl<T: Serialize> IntoResponse for Answer<T> {
    fn into_response(self) -> Response {
        let encoded = if self.pretty {
            serde_json::to_vec_pretty(&self.body)
        } else {
            serde_json::to_vec(&self.body)
        };
        let body = match encoded {
            Ok(body) => body,
            Err(e) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("encoding the answer failed: {e}"),
                )
                    .into_response()
            }
        };
        let mut resp = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        let headers = resp.headers_mut();
        headers.insert(INDEX_HEADER, HeaderValue::from(self.index.max(1)));
        headers.insert(LAST_CONTACT_HEADER, HeaderValue::from_static("0"));
        headers.insert(KNOWN_LEADER_HEADER, HeaderValue::from_static("true"));
        if let Some(token) = self.next_token.and_then(|t| HeaderValue::from_str(&t).ok()) {
            headers.insert(NEXT_TOKEN_HEADER, token);
        }
        resp
    }
}

/// A list, sorted by `token_of` (the item's ID or other unique key), after `prefix` (on the
/// same key), `filter` (on each item's JSON) and paging (`reverse`, `next_token`,
/// `per_page`); with the next page's token when there is one.
pub fn list<T: Serialize>(
    mut items: Vec<T>,
    q: &QueryOptions,
    token_of: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    if let Some(prefix) = &q.prefix {
        items.retain(|item| token_of(item).starts_with(prefix.as_str()));
    }
    if let Some(filter) = &q.filter {
        items.retain(|item| serde_json::to_value(item).is_ok_and(|v| filter.matches(&v)));
    }
    let mut keyed: Vec<(String, T)> = items.into_iter().map(|i| (token_of(&i), i)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    if q.reverse {
        keyed.reverse();
    }
    if let Some(token) = &q.next_token {
        let before = |key: &String| {
            if q.reverse {
                key > token
            } else {
                key < token
            }
        };
        keyed.retain(|(key, _)| !before(key));
    }
    let mut next = None;
    if let Some(per_page) = q.per_page {
        if keyed.len() > per_page {
            next = Some(keyed[per_page].0.clone());
            keyed.truncate(per_page);
        }
    }
    (keyed.into_iter().map(|(_, i)| i).collect(), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Item {
        #[serde(rename = "ID")]
        id: &'static str,
        #[serde(rename = "Type")]
        kind: &'static str,
    }

    fn items() -> Vec<Item> {
        ["web", "api", "worker", "batch1", "batch2"]
            .into_iter()
            .map(|id| Item {
                id,
                kind: if id.starts_with("batch") {
                    "batch"
                } else {
                    "service"
                },
            })
            .collect()
    }

    fn ids(q: &str) -> (Vec<&'static str>, Option<String>) {
        let q = QueryOptions::parse(q).unwrap();
        let (page, next) = list(items(), &q, |i| i.id.to_string());
        (page.into_iter().map(|i| i.id).collect(), next)
    }

    #[test]
    fn lists_sort_filter_and_page_as_nomad_documents() {
        let table: &[(&str, &[&str], Option<&str>)] = &[
            ("", &["api", "batch1", "batch2", "web", "worker"], None),
            ("prefix=b", &["batch1", "batch2"], None),
            ("per_page=2", &["api", "batch1"], Some("batch2")),
            (
                "per_page=2&next_token=batch2",
                &["batch2", "web"],
                Some("worker"),
            ),
            ("per_page=2&next_token=worker", &["worker"], None),
            (
                "per_page=2&reverse=true",
                &["worker", "web"],
                Some("batch2"),
            ),
            (
                "per_page=2&reverse=true&next_token=batch2",
                &["batch2", "batch1"],
                Some("api"),
            ),
            (
                "filter=Type%20%3D%3D%20%22batch%22",
                &["batch1", "batch2"],
                None,
            ),
            (
                "filter=Type%20%3D%3D%20%22batch%22&per_page=1",
                &["batch1"],
                Some("batch2"),
            ),
            ("next_token=zzz", &[], None),
        ];
        for (query, want, next) in table {
            let (got, got_next) = ids(query);
            assert_eq!(&got, want, "{query}");
            assert_eq!(got_next.as_deref(), *next, "{query}");
        }
    }

    #[test]
    fn following_tokens_visits_every_item_once() {
        for per_page in 1..=6 {
            let mut seen = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut q = format!("per_page={per_page}");
                if let Some(t) = &token {
                    q.push_str(&format!("&next_token={t}"));
                }
                let (page, next) = ids(&q);
                seen.extend(page);
                match next {
                    Some(n) => token = Some(n),
                    None => break,
                }
            }
            assert_eq!(
                seen,
                ["api", "batch1", "batch2", "web", "worker"],
                "{per_page}"
            );
        }
    }

    #[test]
    fn a_paged_answer_carries_its_page_and_the_next_token() {
        let table: &[(&str, &str, &[&str], Option<&str>)] = &[
            (
                "first page",
                "per_page=2",
                &["api", "batch1"],
                Some("batch2"),
            ),
            (
                "middle page",
                "per_page=2&next_token=batch2",
                &["batch2", "web"],
                Some("worker"),
            ),
            (
                "last page",
                "per_page=2&next_token=worker",
                &["worker"],
                None,
            ),
            ("token past the end", "per_page=2&next_token=zzz", &[], None),
            (
                "per_page 0 is no paging",
                "per_page=0",
                &["api", "batch1", "batch2", "web", "worker"],
                None,
            ),
            (
                "per_page absent",
                "next_token=web",
                &["web", "worker"],
                None,
            ),
        ];
        for (case, query, want, next) in table {
            let q = QueryOptions::parse(query).unwrap();
            let answer = Answer::paged(items(), 9, &q, |i| i.id.to_string());
            let got: Vec<&str> = answer.body.iter().map(|i| i.id).collect();
            assert_eq!(&got, want, "{case}");
            assert_eq!(answer.next_token.as_deref(), *next, "{case}");
            assert_eq!(answer.index, 9, "{case}");
            let resp = answer.into_response();
            let header = resp.headers().get(NEXT_TOKEN_HEADER);
            assert_eq!(
                header.and_then(|h| h.to_str().ok()),
                *next,
                "{case}: the header"
            );
        }
    }
}
