//! The NVIDIA device fingerprinter: when `nvidia-smi` is on the agent's PATH, each GPU it lists
//! becomes a device instance named by its UUID, grouped by model as Nomad's nvidia plugin
//! groups them (vendor `nvidia`, type `gpu`), with the attributes `memory` (MiB),
//! `driver_version` and `pci_bus_id`. [`parse_gpus`] and [`group_gpus`] are pure and
//! table-tested; [`fingerprint`] runs the tool. A failing tool or output it cannot read gives
//! no devices and a warning, never a failed agent.

use std::time::Duration;

use indexmap::IndexMap;
use nomos_api::{DeviceInstance, NodeDeviceGroup};

use crate::error::AgentError;

/// The tool asked, and the columns asked of it (in this order).
pub const NVIDIA_SMI: &str = "nvidia-smi";
pub const QUERY: &str = "--query-gpu=index,uuid,name,memory.total,driver_version,pci.bus_id";
const COLUMNS: usize = 6;

/// How long `nvidia-smi` may take before the node registers without GPUs.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One GPU as `nvidia-smi` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub uuid: String,
    pub model: String,
    pub memory_mib: u64,
    pub driver_version: String,
    pub pci_bus_id: String,
}

/// Reads `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` output: one GPU a line,
/// the [`QUERY`] columns comma-separated. Any line that is not such a GPU (too few or many
/// columns, no UUID, memory not a number) refuses the whole output, since the tool then did not
/// say what was asked.
pub fn parse_gpus(text: &str) -> Result<Vec<Gpu>, AgentError> {
    let mut gpus = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| {
            AgentError::DeviceFingerprint(format!("{NVIDIA_SMI} line {}: {why}: {line:?}", n + 1))
        };
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.len() != COLUMNS {
            return Err(bad(&format!(
                "expected {COLUMNS} columns, found {}",
                cols.len()
            )));
        }
        let uuid = cols[1];
        if uuid.is_empty() || uuid.contains(char::is_whitespace) {
            return Err(bad("expected a GPU UUID"));
        }
        let memory_mib = cols[3]
            .parse::<u64>()
            .map_err(|_| bad("expected the memory in MiB"))?;
        if gpus.iter().any(|g: &Gpu| g.uuid == uuid) {
            return Err(bad("the UUID is listed twice"));
        }
        gpus.push(Gpu {
            uuid: uuid.to_string(),
            model: cols[2].to_string(),
            memory_mib,
            driver_version: cols[4].to_string(),
            pci_bus_id: cols[5].to_string(),
        });
    }
    Ok(gpus)
}

/// The GPUs as device groups, one per model, in the order models first appear.
pub fn group_gpus(gpus: &[Gpu]) -> Vec<NodeDeviceGroup> {
    let mut groups: Vec<NodeDeviceGroup> = Vec::new();
    for gpu in gpus {
        let at = match groups.iter().position(|g| g.name == gpu.model) {
            Some(at) => at,
            None => {
                let mut attributes = IndexMap::new();
                attributes.insert("memory".to_string(), format!("{} MiB", gpu.memory_mib));
                attributes.insert("driver_version".to_string(), gpu.driver_version.clone());
                groups.push(NodeDeviceGroup {
                    vendor: "nvidia".into(),
                    device_type: "gpu".into(),
                    name: gpu.model.clone(),
                    instances: Vec::new(),
                    attributes,
                });
                groups.len() - 1
            }
        };
        groups[at].instances.push(DeviceInstance {
            id: gpu.uuid.clone(),
            healthy: true,
            pci_bus_id: gpu.pci_bus_id.clone(),
        });
    }
    groups
}

/// The node attributes devices add: `device.<vendor>.<type>.count` (instances) and
/// `device.<vendor>.<type>.models` (comma-separated), and `device.<vendor>.driver_version`
/// where the groups report one.
pub fn device_attributes(groups: &[NodeDeviceGroup]) -> IndexMap<String, String> {
    let mut attrs: IndexMap<String, String> = IndexMap::new();
    for g in groups {
        let prefix = format!("device.{}.{}", g.vendor, g.device_type);
        let count = attrs
            .get(&format!("{prefix}.count"))
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(0);
        attrs.insert(
            format!("{prefix}.count"),
            (count + g.instances.len()).to_string(),
        );
        let models = attrs.entry(format!("{prefix}.models")).or_default();
        if !models.is_empty() {
            models.push(',');
        }
        models.push_str(&g.name);
        if let Some(v) = g.attributes.get("driver_version") {
            attrs.insert(format!("device.{}.driver_version", g.vendor), v.clone());
        }
    }
    attrs
}

/// Runs `program` (`nvidia-smi`) and reads its GPUs. `Ok(None)` when it does not exist (a
/// machine without NVIDIA GPUs); an error when it fails, hangs past `timeout` or says
/// something unreadable.
pub async fn query(
    program: &std::ffi::OsStr,
    timeout: Duration,
) -> Result<Option<Vec<Gpu>>, AgentError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args([QUERY, "--format=csv,noheader,nounits"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(timeout, cmd.output()).await {
        Err(_) => {
            return Err(AgentError::DeviceFingerprint(format!(
                "{NVIDIA_SMI} did not answer within {timeout:?}"
            )))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Ok(Err(e)) => {
            return Err(AgentError::DeviceFingerprint(format!(
                "running {NVIDIA_SMI}: {e}"
            )))
        }
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(AgentError::DeviceFingerprint(format!(
            "{NVIDIA_SMI} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_gpus(&String::from_utf8_lossy(&output.stdout)).map(Some)
}

/// The node's NVIDIA device groups: none (with a warning) when `nvidia-smi` fails or lists
/// nothing, none quietly when it is not installed.
pub async fn fingerprint() -> Vec<NodeDeviceGroup> {
    match query(NVIDIA_SMI.as_ref(), TIMEOUT).await {
        Ok(None) => Vec::new(),
        Ok(Some(gpus)) if gpus.is_empty() => {
            tracing::warn!("{NVIDIA_SMI} listed no GPUs; the node registers none");
            Vec::new()
        }
        Ok(Some(gpus)) => {
            tracing::info!(gpus = gpus.len(), "NVIDIA GPUs found");
            group_gpus(&gpus)
        }
        Err(e) => {
            tracing::warn!("{e}; the node registers no NVIDIA GPUs");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_T4S_AND_AN_A100: &str = "\
0, GPU-11111111-2222-3333-4444-555555555555, Tesla T4, 15360, 550.54.15, 00000000:3B:00.0
1, GPU-66666666-7777-8888-9999-000000000000, Tesla T4, 15360, 550.54.15, 00000000:86:00.0
2, GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, NVIDIA A100-SXM4-40GB, 40960, 550.54.15, 00000000:AF:00.0
";

    #[test]
    fn nvidia_smi_output_parses_into_gpus_or_is_refused_whole() {
        let ok: &[(&str, usize)] = &[
            (TWO_T4S_AND_AN_A100, 3),
            ("", 0),
            ("\n  \n", 0),
            // Windows line ends and stray blanks around columns.
            ("0 ,GPU-1 , T4 , 16 , 1.0 , 0:1.0\r\n", 1),
        ];
        for (text, want) in ok {
            assert_eq!(parse_gpus(text).unwrap().len(), *want, "{text:?}");
        }
        let refused: &[(&str, &str)] = &[
            ("No devices were found", "expected 6 columns, found 1"),
            (
                "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
                "expected 6 columns",
            ),
            ("0, GPU-1, T4, 16, 1.0", "expected 6 columns, found 5"),
            ("0, GPU-1, T4, 16, 1.0, 0:1.0, extra", "found 7"),
            ("0, , T4, 16, 1.0, 0:1.0", "expected a GPU UUID"),
            ("0, GPU 1, T4, 16, 1.0, 0:1.0", "expected a GPU UUID"),
            (
                "0, GPU-1, T4, [N/A], 1.0, 0:1.0",
                "expected the memory in MiB",
            ),
            (
                "0, GPU-1, T4, 16, 1.0, 0:1.0\n1, GPU-1, T4, 16, 1.0, 0:2.0",
                "line 2: the UUID is listed twice",
            ),
        ];
        for (text, why) in refused {
            let err = parse_gpus(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn gpus_group_by_model_with_their_memory_and_driver() {
        let groups = group_gpus(&parse_gpus(TWO_T4S_AND_AN_A100).unwrap());
        assert_eq!(groups.len(), 2);
        let t4 = &groups[0];
        assert_eq!(t4.id(), "nvidia/gpu/Tesla T4");
        assert_eq!(t4.attributes["memory"], "15360 MiB");
        assert_eq!(t4.attributes["driver_version"], "550.54.15");
        let ids: Vec<&str> = t4.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "GPU-11111111-2222-3333-4444-555555555555",
                "GPU-66666666-7777-8888-9999-000000000000"
            ]
        );
        assert_eq!(t4.instances[1].pci_bus_id, "00000000:86:00.0");
        assert!(t4.instances.iter().all(|i| i.healthy));
        assert_eq!(groups[1].name, "NVIDIA A100-SXM4-40GB");
        assert_eq!(groups[1].attributes["memory"], "40960 MiB");

        let attrs = device_attributes(&groups);
        assert_eq!(attrs["device.nvidia.gpu.count"], "3");
        assert_eq!(
            attrs["device.nvidia.gpu.models"],
            "Tesla T4,NVIDIA A100-SXM4-40GB"
        );
        assert_eq!(attrs["device.nvidia.driver_version"], "550.54.15");
        assert!(device_attributes(&[]).is_empty());
    }

    /// A script standing in for `nvidia-smi`, in its own directory.
    fn fake_tool(body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NVIDIA_SMI);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    #[tokio::test]
    async fn a_missing_failing_hanging_or_babbling_tool_gives_no_gpus() {
        let short = Duration::from_secs(2);
        let missing = query("/nonexistent/nvidia-smi".as_ref(), short).await;
        assert!(matches!(missing, Ok(None)), "{missing:?}");

        let (_d, failing) = fake_tool("echo 'NVIDIA-SMI has failed' >&2; exit 9");
        let err = query(failing.as_os_str(), short).await.unwrap_err();
        assert!(err.to_string().contains("NVIDIA-SMI has failed"), "{err}");

        let (_d, babbling) = fake_tool("echo 'No devices were found'");
        let err = query(babbling.as_os_str(), short).await.unwrap_err();
        assert!(err.to_string().contains("expected 6 columns"), "{err}");

        let (_d, hanging) = fake_tool("exec sleep 30");
        let err = query(hanging.as_os_str(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("did not answer"), "{err}");

        let (_d, working) = fake_tool(&format!(
            "[ \"$1\" = '{QUERY}' ] || exit 3\nprintf '%s' '{TWO_T4S_AND_AN_A100}'"
        ));
        let gpus = query(working.as_os_str(), short).await.unwrap().unwrap();
        assert_eq!(gpus.len(), 3);
    }
}
