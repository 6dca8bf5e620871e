//! Whether a listener may face the network. `nctl server` and `nctl agent` refuse to serve
//! control without authentication on an address other hosts can reach: the API needs TLS and
//! ACLs, the agent's endpoint and the store endpoint need mutual TLS. `--insecure` overrides
//! (a lab behind a firewall); loopback is always fine; `nctl dev` binds loopback only.
//!
//! Chosen over "bind loopback unless configured" because a configured `bind_addr` is already
//! the usual way production setups go wrong: the address was chosen on purpose, the missing
//! authentication was not.

use std::net::SocketAddr;

/// Refuses `addr` for `what` unless it is loopback, `protected`, or `insecure` was given;
/// `protection` names what would protect it.
pub fn check(
    what: &str,
    addr: SocketAddr,
    protected: bool,
    protection: &str,
    insecure: bool,
) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || protected || insecure {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve {what} on {addr} without {protection}: anyone who reaches it could \
         control this cluster. Turn on {protection} (docs/security.md), listen on 127.0.0.1, or \
         pass --insecure to accept the risk"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unprotected_reachable_address_is_refused() {
        let lan: SocketAddr = "10.0.0.5:4747".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:4748".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:4747".parse().unwrap();
        let lo6: SocketAddr = "[::1]:4747".parse().unwrap();
        assert!(check("the API", lo, false, "TLS", false).is_ok());
        assert!(check("the API", lo6, false, "TLS", false).is_ok());
        assert!(check("the API", lan, true, "TLS", false).is_ok());
        assert!(check("the API", lan, false, "TLS", true).is_ok());
        let e = check("the store endpoint", any, false, "mutual TLS", false).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("0.0.0.0:4748") && e.contains("--insecure") && e.contains("mutual TLS"),
            "{e}"
        );
    }
}
