//! The agent configuration's `client { host_volume "NAME" { path read_only } }` blocks: the
//! directories this node publishes to jobs' `volume` blocks. Whether each path exists is
//! checked when the agent starts, not here (the file may be read on another machine).

use indexmap::IndexMap;
use nomos_api::HostVolume;

use super::{Entry, Reader, Section};

const HOST_VOLUME: Section = Section {
    name: "client.host_volume",
    known: &["path", "read_only"],
    ignored: &[],
};

/// One `host_volume` setting: each label it holds becomes a volume; a name given twice, a
/// missing or relative `path` are errors at the block.
pub(super) fn read_host_volume(
    r: &mut Reader<'_>,
    e: &Entry,
    out: &mut IndexMap<String, HostVolume>,
) {
    for labelled in r.section("client.host_volume", &e.value) {
        let name = &labelled.key;
        let section = format!("client.host_volume.{name}");
        let mut volume = HostVolume::default();
        for setting in r.section(&section, &labelled.value) {
            let full = format!("{section}.{}", setting.key);
            match setting.key.as_str() {
                "path" => volume.path = r.string(&full, &setting.value).unwrap_or_default(),
                "read_only" => volume.read_only = r.boolean(&full, &setting.value),
                _ => r.unknown(&HOST_VOLUME, setting),
            }
        }
        if name.is_empty() {
            r.error(
                labelled.at,
                "client.host_volume: the block needs a name label".into(),
            );
        } else if !volume.path.starts_with('/') {
            let found = match volume.path.as_str() {
                "" => "none".to_string(),
                p => format!("{p:?}"),
            };
            r.error(
                labelled.at,
                format!("{section}.path: expected an absolute path, found {found}"),
            );
        } else if out.contains_key(name) {
            r.error(
                labelled.at,
                format!("{section}: host volume {name:?} is defined twice"),
            );
        } else {
            out.insert(name.clone(), volume);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;

    fn errors(text: &str) -> Vec<String> {
        match parse("cfg.hcl", text) {
            Ok((cfg, _)) => panic!("accepted: {cfg:?}"),
            Err(diags) => diags.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn host_volumes_are_read_by_name_in_either_syntax() {
        let hcl = r#"client {
  host_volume "pg-data" {
    path = "/srv/pg"
  }
  host_volume "certs" {
    path      = "/etc/ssl/certs"
    read_only = true
  }
}
"#;
        let yaml = "client:\n  host_volume:\n    pg-data:\n      path: /srv/pg\n    certs:\n      path: /etc/ssl/certs\n      read_only: true\n";
        for (file, text) in [("cfg.hcl", hcl), ("cfg.yaml", yaml)] {
            let (cfg, warnings) = parse(file, text).expect("valid");
            assert!(warnings.is_empty(), "{warnings:?}");
            let got: Vec<(&str, &str, bool)> = cfg
                .client
                .host_volumes
                .iter()
                .map(|(name, v)| (name.as_str(), v.path.as_str(), v.read_only))
                .collect();
            assert_eq!(
                got,
                [
                    ("pg-data", "/srv/pg", false),
                    ("certs", "/etc/ssl/certs", true)
                ],
                "{file}"
            );
        }
    }

    #[test]
    fn a_bad_host_volume_is_an_error_at_its_line() {
        let cases = [
            (
                "client {\n  host_volume \"data\" {\n    path = \"srv/data\"\n  }\n}\n",
                "cfg.hcl:2:15: client.host_volume.data.path: expected an absolute path, found \"srv/data\"",
            ),
            (
                "client {\n  host_volume \"data\" {\n    read_only = true\n  }\n}\n",
                "cfg.hcl:2:15: client.host_volume.data.path: expected an absolute path, found none",
            ),
            (
                "client {\n  host_volume \"data\" {\n    path = \"/a\"\n    mode = \"rw\"\n  }\n}\n",
                "cfg.hcl:4:5: unknown setting \"client.host_volume.mode\"",
            ),
            (
                "client {\n  host_volume \"data\" {\n    path = \"/a\"\n  }\n  host_volume \"data\" {\n    path = \"/b\"\n  }\n}\n",
                "cfg.hcl:5:15: client.host_volume.data: host volume \"data\" is defined twice",
            ),
            (
                "client {\n  host_volume \"data\" {\n    path = \"/a\"\n    read_only = \"yes\"\n  }\n}\n",
                "cfg.hcl:4:17: client.host_volume.data.read_only: expected true or false",
            ),
        ];
        for (text, expected) in cases {
            let errs = errors(text);
            assert!(
                errs.iter().any(|e| e.starts_with(expected)),
                "{expected}\n got {errs:?}"
            );
        }
    }
}
