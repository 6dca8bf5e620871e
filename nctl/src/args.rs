//! Nomad-style single-dash long flags (`-var x=1`, `-var-file f`, `-config f`, `-address a`):
//! Nomad's CLI spells every long option with one dash, clap wants two. Before clap parses,
//! [`nomad_style`] rewrites the known ones to `--x` (also in the `-x=value` form).

use std::ffi::OsString;

/// Long options of `nctl` that Nomad users may type with one dash. Every entry is a real
/// `--x` option of some `nctl` verb (a test checks that against the clap definition).
pub const SINGLE_DASH_LONGS: &[&str] = &[
    "address",
    "namespace",
    "var",
    "var-file",
    "config",
    "check-index",
    "purge",
    "deadline",
    "ignore-system",
    "no-deadline",
    "keep-ineligible",
    "enable",
    "disable",
    "wait",
    "timeout",
    "output",
    "filename",
    "recursive",
    "check",
    "follow",
    "stderr",
    "job",
    "group",
    "node",
    "watch",
    "data-dir",
    "name",
    "datacenter",
    "node-class",
    "meta",
    "http-addr",
    "store-addr",
    "store-endpoints",
    "etcd-endpoints",
    "identity",
    "ca-cert",
    "client-cert",
    "client-key",
    "server",
    "client",
    "cli",
    "region",
    "domain",
    "days",
    "ca",
    "key",
    "additional-dnsname",
    "additional-ipaddress",
    "force",
    "yes",
    "detach",
    "monitor",
    "item",
    "out",
    "task",
    "description",
    "quota",
    "policy",
    "role-name",
    "role-id",
    "ttl",
    "type",
    "global",
    "by-name",
    "no-merge",
    "join-token",
    "server-addr",
];

/// Rewrites `-name` and `-name=value` to `--name` / `--name=value` for every `name` in
/// `longs`. The first argument (the program) and everything after a bare `--` are left alone.
pub fn nomad_style<I>(args: I, longs: &[&str]) -> Vec<OsString>
where
    I: IntoIterator<Item = OsString>,
{
    let mut out = Vec::new();
    let mut rest_literal = false;
    for (i, arg) in args.into_iter().enumerate() {
        if i == 0 || rest_literal {
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            if s == "--" {
                return None;
            }
            let body = s.strip_prefix('-').filter(|b| !b.starts_with('-'))?;
            let name = body.split_once('=').map_or(body, |(n, _)| n);
            longs
                .contains(&name)
                .then(|| OsString::from(format!("-{s}")))
        });
        if arg == "--" {
            rest_literal = true;
        }
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn run(args: &[&str]) -> Vec<String> {
        nomad_style(args.iter().map(OsString::from), SINGLE_DASH_LONGS)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["nctl", "validate", "-var", "n=1", "job.hcl"],
                &["nctl", "validate", "--var", "n=1", "job.hcl"],
            ),
            (
                &["nctl", "validate", "-var=n=1", "-var-file", "v.hcl"],
                &["nctl", "validate", "--var=n=1", "--var-file", "v.hcl"],
            ),
            (
                &["nctl", "server", "-config=/etc/n.hcl"],
                &["nctl", "server", "--config=/etc/n.hcl"],
            ),
            (
                &["nctl", "-address", "http://h:4747", "status"],
                &["nctl", "--address", "http://h:4747", "status"],
            ),
            (
                &["nctl", "apply", "-f", "j.hcl", "-check-index", "3"],
                &["nctl", "apply", "-f", "j.hcl", "--check-index", "3"],
            ),
            (
                &["nctl", "stop", "-purge", "web"],
                &["nctl", "stop", "--purge", "web"],
            ),
            // Already two dashes, short flags, unknown names, stdin and values stay as they are.
            (
                &["nctl", "validate", "--var", "a=1", "-o", "json", "-"],
                &["nctl", "validate", "--var", "a=1", "-o", "json", "-"],
            ),
            (
                &["nctl", "validate", "-json", "-varx", "-v"],
                &["nctl", "validate", "-json", "-varx", "-v"],
            ),
            // After `--` everything is literal; the program name is never touched.
            (
                &["-var", "logs", "--", "-var", "-config"],
                &["-var", "logs", "--", "-var", "-config"],
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(run(input), *expected, "{input:?}");
        }
    }

    #[test]
    fn every_rewritten_flag_is_a_real_long_option() {
        fn longs(cmd: &clap::Command, out: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if let Some(l) = a.get_long() {
                    out.push(l.to_string());
                }
            }
            for sub in cmd.get_subcommands() {
                longs(sub, out);
            }
        }
        let mut all = Vec::new();
        longs(&crate::cmd::Cli::command(), &mut all);
        for name in SINGLE_DASH_LONGS {
            assert!(
                all.iter().any(|l| l == name),
                "--{name} is not an nctl option"
            );
        }
    }
}
