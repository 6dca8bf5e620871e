//! The agent configuration's `limits` block, as in Nomad: how long a new connection may take
//! to finish its handshake and how many connections one client address may hold, for the HTTP
//! API (`https_handshake_timeout`, `http_max_conns_per_client`) and for the store endpoint,
//! Nomos's RPC listener (`rpc_handshake_timeout`, `rpc_max_conns_per_client`). Defaults are
//! Nomad's: 5s and 100; 0 disables either.

use std::time::Duration;

use nomos_tls::limits::ConnLimits;

use super::{Entry, Kind, Node, Reader, Section};

/// `limits { ... }`; `None` where the file leaves the default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LimitsSection {
    pub https_handshake_timeout: Option<Duration>,
    pub http_max_conns_per_client: Option<usize>,
    pub rpc_handshake_timeout: Option<Duration>,
    pub rpc_max_conns_per_client: Option<usize>,
}

const LIMITS: Section = Section {
    name: "limits",
    known: &[
        "https_handshake_timeout",
        "http_max_conns_per_client",
        "rpc_handshake_timeout",
        "rpc_max_conns_per_client",
    ],
    ignored: &[],
};

/// Reads the entries of a `limits` block.
pub(super) fn read(r: &mut Reader<'_>, settings: &[Entry], out: &mut LimitsSection) {
    for e in settings {
        let name = format!("limits.{}", e.key);
        let v = &e.value;
        match e.key.as_str() {
            "https_handshake_timeout" => out.https_handshake_timeout = duration(r, &name, v),
            "http_max_conns_per_client" => out.http_max_conns_per_client = count(r, &name, v),
            "rpc_handshake_timeout" => out.rpc_handshake_timeout = duration(r, &name, v),
            "rpc_max_conns_per_client" => out.rpc_max_conns_per_client = count(r, &name, v),
            _ => r.unknown(&LIMITS, e),
        }
    }
}

/// A Nomad duration (`"5s"`, `"500ms"`; a bare number is seconds); `"0"` disables.
fn duration(r: &mut Reader<'_>, name: &str, v: &Node) -> Option<Duration> {
    match &v.kind {
        Kind::Str(s) => match nomos_api::duration::parse_duration(s) {
            Ok(ns) => Some(Duration::from_nanos(ns)),
            Err(why) => {
                r.error(v.at, format!("{name}: {why}"));
                None
            }
        },
        _ => r.seconds(name, v).map(Duration::from_secs),
    }
}

fn count(r: &mut Reader<'_>, name: &str, v: &Node) -> Option<usize> {
    r.whole(name, v, 0).map(|n| n as usize)
}

impl LimitsSection {
    /// The HTTP API's limits.
    pub fn http(&self) -> ConnLimits {
        let d = ConnLimits::default();
        ConnLimits {
            handshake_timeout: self.https_handshake_timeout.unwrap_or(d.handshake_timeout),
            max_conns_per_client: self
                .http_max_conns_per_client
                .unwrap_or(d.max_conns_per_client),
        }
    }

    /// The store endpoint's limits.
    pub fn rpc(&self) -> ConnLimits {
        let d = ConnLimits::default();
        ConnLimits {
            handshake_timeout: self.rpc_handshake_timeout.unwrap_or(d.handshake_timeout),
            max_conns_per_client: self
                .rpc_max_conns_per_client
                .unwrap_or(d.max_conns_per_client),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn the_limits_block_sets_the_api_and_store_endpoint_limits() {
        let text = "limits {\n  https_handshake_timeout   = \"500ms\"\n  http_max_conns_per_client = 20\n  rpc_handshake_timeout     = \"0\"\n  rpc_max_conns_per_client  = 0\n}\n";
        let (cfg, warnings) = parse("cfg.hcl", text).expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        let http = cfg.limits.http();
        assert_eq!(http.handshake_timeout, Duration::from_millis(500));
        assert_eq!(http.max_conns_per_client, 20);
        let rpc = cfg.limits.rpc();
        assert_eq!(
            (rpc.handshake_timeout, rpc.max_conns_per_client),
            (Duration::ZERO, 0)
        );
    }

    #[test]
    fn limits_left_out_are_nomads_defaults() {
        let (cfg, _) = parse("cfg.hcl", "limits {}\n").expect("valid");
        assert_eq!(cfg.limits.http(), ConnLimits::default());
        assert_eq!(cfg.limits.rpc().handshake_timeout, Duration::from_secs(5));
        assert_eq!(cfg.limits.rpc().max_conns_per_client, 100);
    }

    #[test]
    fn bad_limits_are_errors_naming_the_setting_and_line() {
        for (text, want) in [
            (
                "limits {\n  http_max_conns_per_client = -1\n}\n",
                "cfg.hcl:2:",
            ),
            (
                "limits {\n  rpc_handshake_timeout = \"soon\"\n}\n",
                "limits.rpc_handshake_timeout",
            ),
            (
                "limits {\n  rpc_max_conns = 5\n}\n",
                "unknown setting \"limits.rpc_max_conns\"",
            ),
        ] {
            let err = parse("cfg.hcl", text).expect_err(text);
            let shown: Vec<String> = err.iter().map(|d| d.to_string()).collect();
            let shown = shown.join("\n");
            assert!(shown.contains(want), "{text}: {shown}");
        }
    }
}
