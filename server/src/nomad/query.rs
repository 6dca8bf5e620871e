//! The query parameters every read of Nomad's API takes, parsed once with a clear 400 for a bad
//! value: `region`, `namespace` (`*` for all), `prefix`, `filter`, `per_page` / `next_token`,
//! `index` / `wait` (blocking queries), `stale`, `pretty` and `reverse`. The others are kept
//! for the endpoints that take them ([`QueryOptions::flag`], [`QueryOptions::param`]);
//! parameters an endpoint does not use are accepted and ignored, as Nomad does.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use nomos_api::filter::Expr;

use crate::error::ServerError;

/// The region Nomos answers for (one cluster, one region, as a Nomad cluster by default).
pub const REGION: &str = "global";
/// Longest (and default) wait of a blocking query.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// Longest filter expression taken.
const MAX_FILTER_BYTES: usize = 4096;
/// Largest page a list answers.
pub const MAX_PER_PAGE: usize = 10_000;

/// Which namespaces a request covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    One(String),
    /// `namespace=*`: every namespace the caller may read.
    All,
}

impl Namespaces {
    /// Whether `ns` is covered.
    pub fn covers(&self, ns: &str) -> bool {
        match self {
            Namespaces::One(one) => one == ns,
            Namespaces::All => true,
        }
    }

    /// The one namespace named (`default` when the request covers all).
    pub fn single(&self) -> &str {
        match self {
            Namespaces::One(one) => one,
            Namespaces::All => "default",
        }
    }
}

/// A read's parsed query parameters.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    pub namespace: Namespaces,
    pub prefix: Option<String>,
    pub filter: Option<Expr>,
    pub per_page: Option<usize>,
    pub next_token: Option<String>,
    /// Wait until the answer's index passes this (a blocking query).
    pub index: Option<i64>,
    /// How long a blocking query waits at most, jitter included.
    pub wait: Duration,
    pub stale: bool,
    pub pretty: bool,
    pub reverse: bool,
    /// The parameters not above, in order (an endpoint's own: `resources`, `job`, ...).
    pub others: Vec<(String, String)>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            namespace: Namespaces::One("default".into()),
            prefix: None,
            filter: None,
            per_page: None,
            next_token: None,
            index: None,
            wait: MAX_WAIT,
            stale: false,
            pretty: false,
            reverse: false,
            others: Vec::new(),
        }
    }
}

impl QueryOptions {
    /// Parses a query string (without the `?`).
    pub fn parse(query: &str) -> Result<QueryOptions, ServerError> {
        let mut q = QueryOptions::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.as_ref();
            match name.as_ref() {
                "region" => check_region(value)?,
                "namespace" => q.namespace = namespace_of(value),
                "prefix" => q.prefix = Some(value.to_string()).filter(|p| !p.is_empty()),
                "filter" => q.filter = filter_of(value)?,
                "per_page" => q.per_page = per_page_of(value)?,
                "next_token" => q.next_token = Some(value.to_string()).filter(|t| !t.is_empty()),
                "index" => q.index = index_of(value)?,
                "wait" => q.wait = wait_of(value)?,
                "stale" => q.stale = flag(value),
                "pretty" => q.pretty = flag(value),
                "reverse" => q.reverse = flag(value),
                other => q.others.push((other.to_string(), value.to_string())),
            }
        }
        Ok(q)
    }

    /// An endpoint's own parameter, the first time it is given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.others
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An endpoint's own on/off parameter (`?resources`, `=true`, `=false`, `=0`); `default`
    /// when absent.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        self.param(name).map_or(default, flag)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryOptions {
    type Rejection = ServerError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        QueryOptions::parse(parts.uri.query().unwrap_or(""))
    }
}

/// `?stale`, `?stale=`, `?stale=true` are on; what Go's `strconv.ParseBool` reads as false
/// (`false`, `False`, `FALSE`, `f`, `F`, `0`) is off. Python's `requests` sends `False`.
fn flag(value: &str) -> bool {
    !matches!(value, "false" | "False" | "FALSE" | "f" | "F" | "0")
}

/// One cluster answers for one region; another region cannot be forwarded to.
pub fn check_region(value: &str) -> Result<(), ServerError> {
    if value.is_empty() || value == REGION {
        return Ok(());
    }
    Err(ServerError::BadRequest(format!(
        "no path to region {value:?}: this cluster is region {REGION:?}"
    )))
}

fn namespace_of(value: &str) -> Namespaces {
    match value {
        "*" => Namespaces::All,
        "" => Namespaces::One("default".into()),
        ns => Namespaces::One(ns.to_string()),
    }
}

fn filter_of(value: &str) -> Result<Option<Expr>, ServerError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_FILTER_BYTES {
        return Err(ServerError::BadRequest(format!(
            "filter: longer than {MAX_FILTER_BYTES} bytes"
        )));
    }
    nomos_api::filter::parse(value)
        .map(Some)
        .map_err(|e| ServerError::BadRequest(format!("failed to read filter expression: {e}")))
}

fn per_page_of(value: &str) -> Result<Option<usize>, ServerError> {
    match value.parse::<i64>() {
        Ok(0) => Ok(None),
        Ok(n) if n > 0 => Ok(Some((n as usize).min(MAX_PER_PAGE))),
        _ => Err(ServerError::BadRequest(format!(
            "per_page: {value:?} is not a positive number"
        ))),
    }
}

fn index_of(value: &str) -> Result<Option<i64>, ServerError> {
    let index: u64 = value
        .parse()
        .map_err(|_| ServerError::BadRequest(format!("index: {value:?} is not a number")))?;
    Ok((index > 0).then(|| i64::try_from(index).unwrap_or(i64::MAX - 1)))
}

/// `wait` as Nomad takes it (a Go duration, or plain seconds), at most [`MAX_WAIT`], plus up
/// to a sixteenth of jitter so clients woken together do not come back together.
pub fn wait_of(value: &str) -> Result<Duration, ServerError> {
    let wait = if value.is_empty() {
        MAX_WAIT
    } else {
        let nanos = match value.parse::<u64>() {
            Ok(seconds) => seconds.saturating_mul(1_000_000_000),
            Err(_) => nomos_api::duration::parse_duration(value)
                .map_err(|e| ServerError::BadRequest(format!("wait: {e}")))?,
        };
        Duration::from_nanos(nanos).min(MAX_WAIT)
    };
    Ok(wait + jitter(wait))
}

fn jitter(wait: Duration) -> Duration {
    let range_ms = (wait.as_millis() as u64 / 16).max(1);
    let mut b = [0u8; 2];
    // A missing random source only loses the jitter.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    Duration::from_millis(u64::from(u16::from_le_bytes(b)) % range_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_as_nomad_documents_them() {
        let q = QueryOptions::parse(
            "namespace=*&prefix=web&per_page=2&next_token=x&index=7&wait=10s&stale&pretty=true&reverse=false&unknown=1",
        )
        .unwrap();
        assert_eq!(q.namespace, Namespaces::All);
        assert_eq!(q.prefix.as_deref(), Some("web"));
        assert_eq!(q.per_page, Some(2));
        assert_eq!(q.next_token.as_deref(), Some("x"));
        assert_eq!(q.index, Some(7));
        assert!(q.wait >= Duration::from_secs(10) && q.wait <= Duration::from_millis(10_625));
        assert!(q.stale && q.pretty && !q.reverse);
        assert_eq!(q.param("unknown"), Some("1"));
        assert_eq!(
            q.param("namespace"),
            None,
            "known parameters are not repeated"
        );
    }

    #[test]
    fn an_endpoints_own_flags_read_as_nomads_booleans() {
        let q = QueryOptions::parse("a&b=true&c=false&d=0&e=1&a=false").unwrap();
        assert!(q.flag("a", false), "the first occurrence counts");
        assert!(q.flag("b", false) && q.flag("e", false));
        assert!(!q.flag("c", true) && !q.flag("d", true));
        assert!(q.flag("absent", true) && !q.flag("absent", false));
        // Python's requests writes booleans capitalised; Go's ParseBool reads them.
        let q = QueryOptions::parse("p=False&q=True&r=FALSE&s=f&stale=False").unwrap();
        assert!(!q.flag("p", true) && q.flag("q", false));
        assert!(!q.flag("r", true) && !q.flag("s", true) && !q.stale);
    }

    #[test]
    fn defaults_are_the_default_namespace_and_five_minutes() {
        let q = QueryOptions::parse("").unwrap();
        assert_eq!(q.namespace, Namespaces::One("default".into()));
        assert_eq!(q.index, None);
        assert!(q.wait >= MAX_WAIT && q.wait <= MAX_WAIT + MAX_WAIT / 16);
        assert_eq!(QueryOptions::parse("index=0").unwrap().index, None);
    }

    #[test]
    fn bad_values_are_client_errors_naming_the_parameter() {
        for (query, names) in [
            ("index=-1", "index"),
            ("index=abc", "index"),
            ("wait=forever", "wait"),
            ("per_page=-3", "per_page"),
            ("per_page=x", "per_page"),
            ("filter=Name%20%3D%3D", "filter"),
            ("region=mars", "region"),
        ] {
            let e = QueryOptions::parse(query).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{query}");
            assert!(e.to_string().contains(names), "{query}: {e}");
        }
    }

    #[test]
    fn waits_are_capped_and_plain_numbers_are_seconds() {
        let long = QueryOptions::parse("wait=1h").unwrap().wait;
        assert!(long <= MAX_WAIT + MAX_WAIT / 16);
        let secs = QueryOptions::parse("wait=3").unwrap().wait;
        assert!(secs >= Duration::from_secs(3) && secs < Duration::from_secs(4));
        assert!(QueryOptions::parse("region=global").is_ok());
        let huge = format!("filter={}", "a".repeat(MAX_FILTER_BYTES + 1));
        assert!(QueryOptions::parse(&huge).is_err());
    }
}
