//! The browser guard: refuses requests that a web page in the user's browser could send to the
//! server, or read the answers of, before any handler runs.
//!
//! `nctl dev` listens on `127.0.0.1:4747` and its agent runs tasks as root. Any page the user
//! visits may send it "simple" requests, which need no CORS preflight (a `text/plain` or form
//! POST), and a page whose name is rebound to 127.0.0.1 (DNS rebinding) may read the answers
//! too. One middleware, [`check`], runs three checks on every route (`/v1`, `/ui`, `/metrics`
//! and unknown paths), in this order:
//!
//! 1. **Host**, when the check is on ([`HostCheck`]; by default when the server listens on a
//!    loopback address): the `Host` header (or HTTP/2 authority) must name loopback
//!    (`localhost`, `127.x.x.x`, `[::1]`, any port) or an allowed name, else 403. A rebound
//!    page's requests carry the attacker's name.
//! 2. **Site**: `Sec-Fetch-Site: cross-site` (on writes `same-site` too) is refused unless the
//!    `Origin` is the server's own or allowed; an `Origin` header that is neither is refused
//!    whatever the method: 403. The server's own origin is the `Host` the request was sent to,
//!    over `http` or `https`. One exception: a top-level navigation (`GET` with
//!    `Sec-Fetch-Mode: navigate` and `Sec-Fetch-Dest: document`, a link to the UI followed
//!    from another site) passes: the page that holds the link can neither read the answer nor
//!    change anything with a `GET`.
//! 3. **Content type**: a write (any method but `GET`, `HEAD`, `OPTIONS`, `TRACE`) that has a
//!    body or names a `Content-Type` must name `application/json` (parameters allowed), else
//!    415. A page may send JSON to another origin only after a preflight, which this server
//!    never answers with a permission. A body with no `Content-Type` at all passes only from
//!    a client that is not a browser (no `Origin`, no `Sec-Fetch-*`): Nomad's Go API client
//!    (the `nomad` CLI, Terraform) sends its JSON that way, while a browser page can send an
//!    untyped body (a `Blob`) but always marks it with `Origin`.
//!
//! Requests without `Origin` and `Sec-Fetch-*` headers (curl, `nctl`, scripts, Prometheus)
//! pass check 2 unchanged. The decisions are pure: [`Guard::decide`] (request parts in, a
//! [`Denial`] with its reason out) over [`check_host`], [`check_site`] and
//! [`check_content_type`]; [`check`] only applies them.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ServerError;

/// When the `Host` header is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostCheck {
    /// When the server listens on a loopback address (`nctl dev`'s default).
    #[default]
    Auto,
    On,
    Off,
}

impl FromStr for HostCheck {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(HostCheck::Auto),
            "on" => Ok(HostCheck::On),
            "off" => Ok(HostCheck::Off),
            other => Err(format!("expected auto, on or off, found {other:?}")),
        }
    }
}

/// A host name or address with an optional port, as a `Host` header or an allow-list entry
/// names it: lower case, IPv6 addresses in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: Option<u16>,
}

impl FromStr for HostPort {
    type Err = String;

    /// `name`, `name:port`, `1.2.3.4:port`, `[::1]:port`; no user, path or scheme.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let authority: Authority = s
            .parse()
            .map_err(|e| format!("expected HOST or HOST:PORT, found {s:?}: {e}"))?;
        if s.contains('@') || authority.host().is_empty() {
            return Err(format!("expected HOST or HOST:PORT, found {s:?}"));
        }
        Ok(HostPort::of(&authority))
    }
}

impl HostPort {
    fn of(authority: &Authority) -> Self {
        HostPort {
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16(),
        }
    }

    /// `localhost`, an address in 127.0.0.0/8, or `[::1]`.
    pub fn is_loopback(&self) -> bool {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        self.host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Whether this allow-list entry admits `other`: the same host, and the same port unless
    /// the entry names none.
    fn admits(&self, other: &HostPort) -> bool {
        self.host == other.host && (self.port.is_none() || self.port == other.port)
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// A web origin, `scheme://host[:port]`, as browsers send it in the `Origin` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    /// The port, or the scheme's default one (none for schemes without one).
    pub port: Option<u16>,
}

impl FromStr for Origin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected = || format!("expected an origin such as https://host[:port], found {s:?}");
        let uri: Uri = s.parse().map_err(|_| expected())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(expected());
        };
        let bare = matches!(uri.path(), "" | "/") && uri.query().is_none();
        if !bare || authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(expected());
        }
        let scheme = scheme.to_ascii_lowercase();
        let port = authority.port_u16().or(default_port(&scheme));
        Ok(Origin {
            scheme,
            host: authority.host().to_ascii_lowercase(),
            port,
        })
    }
}

impl Origin {
    /// Whether this is the origin of a page served from `host` (the `Host` a request was
    /// sent to): the same host and port, over `http` or `https` (behind a TLS proxy).
    pub fn is_served_from(&self, host: &HostPort) -> bool {
        matches!(self.scheme.as_str(), "http" | "https")
            && self.host == host.host
            && self.port == host.port.or(default_port(&self.scheme))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) if Some(port) != default_port(&self.scheme) => write!(f, ":{port}"),
            _ => Ok(()),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// What the guard lets through besides same-origin and non-browser requests.
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    /// Origins whose pages may call the API from a browser besides the server's own (the name
    /// of a reverse proxy that rewrites `Host`).
    pub allowed_origins: Vec<Origin>,
    /// Names accepted in the `Host` header besides loopback ones while the Host check is on.
    /// An entry without a port accepts any port.
    pub allowed_hosts: Vec<HostPort>,
    /// When the `Host` header is checked.
    pub host_check: HostCheck,
}

/// A request the guard refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The Host check is on and `Host` names neither loopback nor an allowed name.
    HostNotAllowed { host: String },
    /// `Sec-Fetch-Site` says another site sent it, and its `Origin` is not allowed.
    CrossSite {
        site: String,
        origin: Option<String>,
    },
    /// An `Origin` that is neither the server's own nor allowed.
    ForeignOrigin { origin: String },
    /// A write whose body is not declared as JSON.
    NotJson {
        method: Method,
        content_type: Option<String>,
    },
}

impl Denial {
    pub fn status(&self) -> StatusCode {
        match self {
            Denial::NotJson { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::HostNotAllowed { host } => write!(
                f,
                "Host {host:?} refused: expected localhost, 127.0.0.1, [::1] or an allowed name \
                 (a guard against DNS rebinding; see docs/security.md)"
            ),
            Denial::CrossSite { site, origin } => {
                write!(
                    f,
                    "cross-site request refused: Sec-Fetch-Site is {site:?} and "
                )?;
                match origin {
                    Some(o) => write!(f, "Origin {o:?} is neither this server's own nor allowed")?,
                    None => write!(f, "the request names no Origin")?,
                }
                write!(f, " (see docs/security.md)")
            }
            Denial::ForeignOrigin { origin } => write!(
                f,
                "request from Origin {origin:?} refused: it is neither this server's own origin \
                 nor an allowed one (see docs/security.md)"
            ),
            Denial::NotJson {
                method,
                content_type,
            } => write!(
                f,
                "{method} needs a JSON body: expected Content-Type application/json, found {}",
                content_type
                    .as_deref()
                    .map_or("none".into(), |c| format!("{c:?}"))
            ),
        }
    }
}

impl From<Denial> for ServerError {
    fn from(d: Denial) -> Self {
        match d.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ServerError::UnsupportedMediaType(d.to_string()),
            _ => ServerError::Forbidden(d.to_string()),
        }
    }
}

/// The guard of one server: its [`GuardConfig`] with the Host check resolved for the address
/// it listens on.
#[derive(Debug, Clone)]
pub struct Guard {
    config: GuardConfig,
    check_host: bool,
}

impl Guard {
    pub fn new(config: GuardConfig, listen: SocketAddr) -> Self {
        let check_host = match config.host_check {
            HostCheck::Auto => listen.ip().is_loopback(),
            HostCheck::On => true,
            HostCheck::Off => false,
        };
        Guard { config, check_host }
    }

    /// Whether a request passes (see the module's doc); `has_body` says whether it carries
    /// body bytes.
    pub fn decide(&self, parts: &Parts, has_body: bool) -> Result<(), Denial> {
        let host = request_host(parts);
        if self.check_host {
            check_host(host.as_ref(), &self.config.allowed_hosts)?;
        }
        let host = host.and_then(Result::ok);
        check_site(
            &parts.method,
            &parts.headers,
            host.as_ref(),
            &self.config.allowed_origins,
        )?;
        check_content_type(
            &parts.method,
            parts.headers.get(header::CONTENT_TYPE),
            has_body,
            from_browser(&parts.headers),
        )
    }
}

/// The host a request was sent to: its `Host` header, else the URI's authority (HTTP/2);
/// `None` when it names none (HTTP/1.0), `Err` with the raw text when it does not parse.
pub fn request_host(parts: &Parts) -> Option<Result<HostPort, String>> {
    match parts.headers.get(header::HOST) {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| String::from_utf8_lossy(value.as_bytes()).into_owned()),
        ),
        None => parts.uri.authority().map(|a| Ok(HostPort::of(a))),
    }
}

/// Check 1: the host a request was sent to names loopback or an allowed name. A request that
/// names no host passes (browsers always send one).
pub fn check_host(
    host: Option<&Result<HostPort, String>>,
    allowed: &[HostPort],
) -> Result<(), Denial> {
    match host {
        None => Ok(()),
        Some(Ok(h)) if h.is_loopback() || allowed.iter().any(|a| a.admits(h)) => Ok(()),
        Some(Ok(h)) => Err(Denial::HostNotAllowed {
            host: h.to_string(),
        }),
        Some(Err(raw)) => Err(Denial::HostNotAllowed { host: raw.clone() }),
    }
}

/// Check 2: what `Sec-Fetch-Site` and `Origin` say about who sent the request. `host` is the
/// host it was sent to (the server's own origin), `allowed` the configured origins.
pub fn check_site(
    method: &Method,
    headers: &HeaderMap,
    host: Option<&HostPort>,
    allowed: &[Origin],
) -> Result<(), Denial> {
    let text = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
    };
    let origin = text(header::ORIGIN.as_str());
    let origin_ok = origin.as_deref().map(|o| {
        o.parse::<Origin>()
            .is_ok_and(|o| host.is_some_and(|h| o.is_served_from(h)) || allowed.contains(&o))
    });
    let site = text("sec-fetch-site").map(|s| s.to_ascii_lowercase());
    let navigation = *method == Method::GET
        && text("sec-fetch-mode").is_some_and(|m| m.eq_ignore_ascii_case("navigate"))
        && text("sec-fetch-dest").is_some_and(|d| d.eq_ignore_ascii_case("document"));
    let other_site = match site.as_deref() {
        Some("cross-site") => !navigation,
        Some("same-site") => is_write(method),
        _ => false,
    };
    if other_site && origin_ok != Some(true) {
        return Err(Denial::CrossSite {
            site: site.unwrap_or_default(),
            origin,
        });
    }
    match (origin, origin_ok) {
        (Some(origin), Some(false)) => Err(Denial::ForeignOrigin { origin }),
        _ => Ok(()),
    }
}

/// Whether a request carries what browsers add to every request a page makes.
fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers.keys().any(|k| k.as_str().starts_with("sec-fetch-"))
}

/// Check 3: a write that has a body or names a content type names JSON; an untyped body
/// passes from a client that is not a browser.
pub fn check_content_type(
    method: &Method,
    content_type: Option<&HeaderValue>,
    has_body: bool,
    from_browser: bool,
) -> Result<(), Denial> {
    if !is_write(method) {
        return Ok(());
    }
    let declared_json = |v: &HeaderValue| {
        v.to_str().is_ok_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
    };
    let ok = match content_type {
        Some(v) => declared_json(v),
        None => !has_body || !from_browser,
    };
    if ok {
        return Ok(());
    }
    Err(Denial::NotJson {
        method: method.clone(),
        content_type: content_type.map(|v| String::from_utf8_lossy(v.as_bytes()).into()),
    })
}

/// Any method but the safe ones.
fn is_write(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The middleware: answers a refused request with its [`Denial`] as the API's JSON error.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let has_body = !req.body().is_end_stream();
    let (parts, body) = req.into_parts();
    match guard.decide(&parts, has_body) {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(denial) => {
            tracing::warn!(method = %parts.method, path = %parts.uri.path(), reason = %denial,
                "refused a browser request");
            ServerError::from(denial).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut req = Request::builder().method(method).uri("/v1/jobs");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.body(()).unwrap().into_parts().0
    }

    fn loopback_guard(config: GuardConfig) -> Guard {
        Guard::new(config, "127.0.0.1:4747".parse().unwrap())
    }

    const OWN: (&str, &str) = ("host", "127.0.0.1:4747");

    #[test]
    fn hosts_must_name_loopback_or_an_allowed_name() {
        let allowed: Vec<HostPort> = vec![
            "nomos.example.com".parse().unwrap(),
            "ops.example.com:8080".parse().unwrap(),
        ];
        // (Host header, passes)
        let cases = [
            ("127.0.0.1:4747", true),
            ("127.0.0.2", true),
            ("localhost:4747", true),
            ("LOCALHOST", true),
            ("[::1]:4747", true),
            ("nomos.example.com:4747", true),
            ("ops.example.com:8080", true),
            ("ops.example.com:4747", false),
            ("evil.example:4747", false),
            ("localhost.evil.example", false),
            ("10.0.0.5:4747", false),
            ("u@localhost", false),
            ("a b", false),
        ];
        for (host, passes) in cases {
            let p = parts("GET", &[("host", host)]);
            let got = check_host(request_host(&p).as_ref(), &allowed);
            assert_eq!(got.is_ok(), passes, "{host}: {got:?}");
        }
        assert_eq!(check_host(None, &allowed), Ok(()), "no Host (HTTP/1.0)");
    }

    #[test]
    fn other_sites_are_refused_unless_their_origin_is_allowed() {
        let own: HostPort = "127.0.0.1:4747".parse().unwrap();
        let allowed: Vec<Origin> = vec!["https://dash.example.com".parse().unwrap()];
        let evil = Some("https://evil.example");
        let dash = Some("https://dash.example.com");
        let home = Some("http://127.0.0.1:4747");
        let other_port = Some("http://127.0.0.1:3000");
        // (method, Origin, Sec-Fetch-Site, Sec-Fetch-Dest of a navigation, passes)
        let cases = [
            ("GET", None, None, None, true),                     // curl, nctl
            ("POST", None, None, None, true),                    // curl, nctl
            ("GET", None, Some("same-origin"), None, true),      // htmx fragment
            ("POST", home, Some("same-origin"), None, true),     // own page writes
            ("GET", None, Some("none"), Some("document"), true), // typed URL
            ("GET", None, Some("cross-site"), Some("document"), true), // link followed
            ("GET", None, Some("cross-site"), Some("iframe"), false), // framed
            ("GET", None, Some("cross-site"), None, false),      // <script src>
            ("GET", evil, Some("cross-site"), None, false),      // fetch()
            ("POST", evil, Some("cross-site"), None, false),     // text/plain POST
            ("POST", evil, Some("cross-site"), Some("document"), false), // form
            ("POST", evil, None, None, false),                   // older browser
            ("GET", evil, None, None, false),
            ("POST", Some("null"), None, None, false), // sandboxed frame
            ("POST", other_port, Some("same-site"), None, false), // dev server next door
            ("GET", None, Some("same-site"), None, true), // <img src>
            ("POST", dash, Some("cross-site"), None, true), // allowed dashboard
            ("GET", dash, Some("cross-site"), None, true),
        ];
        for (method, origin, site, dest, passes) in cases {
            let mut headers = vec![];
            headers.extend(origin.map(|o| ("origin", o)));
            headers.extend(site.map(|s| ("sec-fetch-site", s)));
            if let Some(dest) = dest {
                headers.extend([("sec-fetch-mode", "navigate"), ("sec-fetch-dest", dest)]);
            }
            let p = parts(method, &headers);
            let got = check_site(&p.method, &p.headers, Some(&own), &allowed);
            assert_eq!(got.is_ok(), passes, "{method} {headers:?}: {got:?}");
        }
    }

    #[test]
    fn writes_with_a_body_or_a_type_must_be_json() {
        // (method, Content-Type, has a body, from a browser, passes)
        let cases = [
            ("POST", Some("application/json"), true, true, true),
            (
                "POST",
                Some("Application/JSON; charset=utf-8"),
                true,
                true,
                true,
            ),
            ("POST", None, false, false, true), // curl -X POST .../stop
            ("DELETE", None, false, true, true),
            ("GET", Some("text/plain"), true, true, true),
            ("POST", Some("text/plain;charset=UTF-8"), true, true, false),
            ("POST", Some("text/plain;charset=UTF-8"), true, false, false),
            (
                "POST",
                Some("application/x-www-form-urlencoded"),
                true,
                true,
                false,
            ),
            (
                "PUT",
                Some("multipart/form-data; boundary=x"),
                true,
                true,
                false,
            ),
            ("POST", Some("application/jsonx"), true, false, false),
            ("POST", Some("text/plain"), false, false, false),
            ("PATCH", None, true, true, false), // a page's Blob body has no type
            ("PUT", None, true, false, true),   // Nomad's Go client types nothing
        ];
        for (method, content_type, has_body, browser, passes) in cases {
            let value = content_type.map(HeaderValue::from_static);
            let got =
                check_content_type(&method.parse().unwrap(), value.as_ref(), has_body, browser);
            assert_eq!(
                got.is_ok(),
                passes,
                "{method} {content_type:?} {has_body} {browser}"
            );
        }
    }

    #[test]
    fn checks_run_host_then_site_then_content_type() {
        let guard = loopback_guard(GuardConfig::default());
        let text = ("content-type", "text/plain");
        let evil = ("origin", "https://evil.example");
        type Headers<'a> = &'a [(&'a str, &'a str)];
        // (headers of a POST with a body, status it is refused with)
        let cases: [(Headers, Option<u16>); 5] = [
            (&[OWN, ("content-type", "application/json")], None),
            (&[("host", "evil.example:4747"), evil, text], Some(403)),
            (&[OWN, evil, text], Some(403)),
            (&[OWN, text], Some(415)),
            (&[text], Some(415)),
        ];
        for (headers, want) in cases {
            let got = guard.decide(&parts("POST", headers), true);
            assert_eq!(got.err().map(|d| d.status().as_u16()), want, "{headers:?}");
        }
    }

    #[test]
    fn host_check_auto_is_on_only_for_loopback_listeners() {
        let evil = parts("GET", &[("host", "evil.example:4747")]);
        // (listen address, host_check, refused)
        let cases = [
            ("127.0.0.1:4747", HostCheck::Auto, true),
            ("[::1]:4747", HostCheck::Auto, true),
            ("0.0.0.0:4747", HostCheck::Auto, false),
            ("10.0.0.5:4747", HostCheck::Auto, false),
            ("10.0.0.5:4747", HostCheck::On, true),
            ("127.0.0.1:4747", HostCheck::Off, false),
        ];
        for (listen, host_check, refused) in cases {
            let config = GuardConfig {
                host_check,
                ..Default::default()
            };
            let guard = Guard::new(config, listen.parse().unwrap());
            assert_eq!(
                guard.decide(&evil, false).is_err(),
                refused,
                "{listen} {host_check:?}"
            );
        }
    }

    #[test]
    fn origins_parse_and_match_the_host_they_were_served_from() {
        let host = |s: &str| s.parse::<HostPort>().unwrap();
        // (origin, Host, same)
        let cases = [
            ("http://127.0.0.1:4747", "127.0.0.1:4747", true),
            ("http://LocalHost:4747", "localhost:4747", true),
            ("http://[::1]:4747", "[::1]:4747", true),
            ("http://nomos.example", "nomos.example", true),
            ("http://nomos.example:80", "nomos.example", true),
            ("https://nomos.example", "nomos.example", true),
            ("https://nomos.example", "nomos.example:443", true),
            ("https://nomos.example", "nomos.example:80", false),
            ("http://127.0.0.1:3000", "127.0.0.1:4747", false),
            ("http://evil.example:4747", "127.0.0.1:4747", false),
            ("ftp://127.0.0.1:4747", "127.0.0.1:4747", false),
        ];
        for (origin, h, same) in cases {
            let o: Origin = origin.parse().unwrap();
            assert_eq!(o.is_served_from(&host(h)), same, "{origin} from {h}");
        }
        for bad in [
            "null",
            "127.0.0.1:4747",
            "http://",
            "http://a/b",
            "http://u@a",
            "*",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
        let o: Origin = "HTTPS://Dash.Example.com:443/".parse().unwrap();
        assert_eq!(o.to_string(), "https://dash.example.com");
    }

    #[test]
    fn denials_say_what_was_expected_and_found() {
        let guard = loopback_guard(GuardConfig::default());
        let refused = |headers: &[(&str, &str)], has_body| {
            guard
                .decide(&parts("POST", headers), has_body)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&[("host", "evil.example:4747")], false)
            .starts_with("Host \"evil.example:4747\" refused"));
        assert!(refused(
            &[
                OWN,
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site")
            ],
            false
        )
        .contains("Sec-Fetch-Site is \"cross-site\" and Origin \"https://evil.example\""));
        assert_eq!(
            refused(&[OWN, ("content-type", "text/plain")], true),
            "POST needs a JSON body: expected Content-Type application/json, found \"text/plain\""
        );
    }
}
