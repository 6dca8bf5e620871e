//! The `java` driver: runs a jar (`jar_path`) or a class (`class`, `class_path`) on the host's
//! JVM, isolated exactly as an `exec` task is.
//!
//! It wraps [`ExecDriver`]: the config is read by [`parse_java_config`] (shared with job
//! validation), [`java_args`] turns it and the task's memory into a `java`
//! command line (pure), and the task is started through the exec driver's machinery under the
//! name `java`; every other [`Driver`] method is a one-line delegation to the exec driver. The
//! JVM is found by `java -version` on the agent's `PATH` ([`parse_java_version`] reads what it
//! prints) and must lie under a directory the exec chroot binds (`/usr`, `/etc`, ...), which the
//! Debian JVMs in `/usr/lib/jvm` with their `/etc/java-*` links do.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use indexmap::IndexMap;
use nomos_api::java_config::{parse_java_config, JavaConfig};
use nomos_api::{DriverInfo, Value};

use super::exec::ExecDriver;
use super::{
    Driver, ExecOutput, ExecRequest, ExecSession, ExitResult, SessionRequest, TaskHandle, TaskSpec,
    TaskStats,
};
use crate::error::AgentError;
use crate::logs::LogStream;

const NAME: &str = "java";

/// JVM options that set the heap's limit themselves; with one of them no `-Xmx` is added.
const HEAP_LIMIT_OPTIONS: &[&str] = &[
    "-Xmx",
    "-XX:MaxHeapSize=",
    "-XX:MaxRAM=",
    "-XX:MaxRAMPercentage=",
    "-XX:MaxRAMFraction=",
];

/// The arguments to `java`: `-Xmx<memory>m` (unless `jvm_options` limits the heap, or the task
/// has no memory set), the JVM options, `-cp`, then `-jar <jar>` or the class, then the args.
pub fn java_args(config: &JavaConfig, memory_mb: u32) -> Vec<String> {
    let sets_heap = config
        .jvm_options
        .iter()
        .any(|o| HEAP_LIMIT_OPTIONS.iter().any(|p| o.starts_with(p)));
    let mut args = Vec::new();
    if !sets_heap && memory_mb > 0 {
        args.push(format!("-Xmx{memory_mb}m"));
    }
    args.extend(config.jvm_options.iter().cloned());
    if let Some(cp) = &config.class_path {
        args.extend(["-cp".to_string(), cp.clone()]);
    }
    if let Some(jar) = &config.jar_path {
        args.extend(["-jar".to_string(), jar.clone()]);
    }
    args.extend(config.class.iter().cloned());
    args.extend(config.args.iter().cloned());
    args
}

/// Where `jar_path` lies on the host: relative to `task_dir`, or absolute under `alloc_root`
/// (the allocation's directory, which the task sees at its own path). Refuses paths that climb
/// out with `..` and absolute paths elsewhere.
pub fn jar_location(jar_path: &str, task_dir: &Path, alloc_root: &Path) -> Result<PathBuf, String> {
    let path = Path::new(jar_path);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "config.jar_path {jar_path:?} must not contain \"..\""
        ));
    }
    if !path.is_absolute() {
        return Ok(task_dir.join(path));
    }
    if path.starts_with(alloc_root) {
        return Ok(path.to_path_buf());
    }
    Err(format!(
        "config.jar_path {jar_path:?} must be relative to the task directory (or under the \
         allocation directory, e.g. ${{NOMAD_TASK_DIR}}/app.jar)"
    ))
}

/// What `java -version` says about the JVM (Nomad's `driver.java.*` attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaVersion {
    /// `17.0.15`, `1.8.0_392`.
    pub version: String,
    /// The runtime line: `OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)`.
    pub runtime: String,
    /// The VM line: `OpenJDK 64-Bit Server VM (build ..., mixed mode, sharing)`.
    pub vm: String,
}

/// Reads `java -version`'s output (it goes to stderr): a version line (`openjdk version
/// "17.0.15" 2025-04-15`, `java version "1.8.0_392"`, `openjdk 11.0.11 2021-04-20 LTS`), then
/// the runtime and VM lines. `Picked up ...` notes the JVM prints for `JAVA_TOOL_OPTIONS` and
/// `_JAVA_OPTIONS` come first and are skipped. `None` for anything else.
pub fn parse_java_version(output: &str) -> Option<JavaVersion> {
    let mut lines = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Picked up "));
    let first = lines.next()?;
    let (vendor, rest) = first.split_once(' ')?;
    if !matches!(vendor, "openjdk" | "java") {
        return None;
    }
    let rest = rest.strip_prefix("version ").unwrap_or(rest);
    let token = rest.split_whitespace().next()?.trim_matches('"');
    let version: String = token
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '_'))
        .collect();
    if !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let runtime = lines.next()?.to_string();
    let vm = lines.next()?.to_string();
    Some(JavaVersion {
        version,
        runtime,
        vm,
    })
}

/// The system directories the exec chroot binds; a JVM elsewhere is not there for the task.
const CHROOT_DIRS: &[&str] = &[
    "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc",
];

/// Whether `real_path` (links resolved) lies in a directory the exec chroot binds.
pub fn visible_in_chroot(real_path: &Path) -> bool {
    CHROOT_DIRS.iter().any(|d| real_path.starts_with(d))
}

/// The JVM this node runs java tasks with, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jvm {
    Found {
        binary: PathBuf,
        version: JavaVersion,
    },
    Missing(String),
}

/// Finds `java` on `path_var` (`None`: the agent's `PATH`) and asks it for its version.
pub fn detect_jvm(path_var: Option<&str>) -> Jvm {
    let cwd = Path::new("/");
    let Some(binary) = crate::procfs::resolve_command("java", path_var, cwd) else {
        return Jvm::Missing(format!(
            "no `java` executable on {}",
            path_var.map_or("the agent's PATH".to_string(), |p| format!("PATH {p}"))
        ));
    };
    let output = match std::process::Command::new(&binary)
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return Jvm::Missing(format!(
                "`{} -version` failed ({}): {}",
                binary.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return Jvm::Missing(format!("running `{} -version`: {e}", binary.display())),
    };
    let text = String::from_utf8_lossy(&output.stderr);
    match parse_java_version(&text) {
        Some(version) => Jvm::Found { binary, version },
        None => Jvm::Missing(format!(
            "could not read the version in `{} -version`'s output: {:?}",
            binary.display(),
            text.trim()
        )),
    }
}

/// Runs java tasks through the exec driver.
#[derive(Debug, Clone)]
pub struct JavaDriver {
    exec: ExecDriver,
    jvm: Jvm,
}

impl JavaDriver {
    /// Wraps `exec` (sharing what it probed) with the JVM on the agent's `PATH`.
    pub fn new(exec: ExecDriver) -> Self {
        JavaDriver::with_jvm(exec, detect_jvm(None))
    }

    /// Wraps `exec` with the JVM `jvm` ([`detect_jvm`]).
    pub fn with_jvm(exec: ExecDriver, jvm: Jvm) -> Self {
        JavaDriver { exec, jvm }
    }

    /// Why java tasks cannot run here, if they cannot.
    fn refusal(&self) -> Option<String> {
        let binary = match &self.jvm {
            Jvm::Missing(why) => return Some(why.clone()),
            Jvm::Found { binary, .. } => binary,
        };
        if let Some(why) = self.exec.support().refusal() {
            return Some(format!("this node cannot isolate tasks: {why}"));
        }
        let real = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.clone());
        if self.exec.support().chroot && !visible_in_chroot(&real) {
            return Some(format!(
                "the JVM at {} is outside the directories the exec chroot binds ({})",
                real.display(),
                CHROOT_DIRS.join(", ")
            ));
        }
        None
    }

    /// The exec task that runs `spec`'s java config: `config` becomes `command` and `args`.
    fn exec_spec(&self, spec: &TaskSpec) -> Result<TaskSpec, AgentError> {
        let failed = |message: String| AgentError::driver(NAME, message);
        let binary = match &self.jvm {
            Jvm::Found { binary, .. } => binary,
            Jvm::Missing(why) => return Err(failed(format!("no JVM on this node: {why}"))),
        };
        let config = parse_java_config(&spec.config).map_err(failed)?;
        if let Some(jar) = &config.jar_path {
            let alloc_root = spec.alloc_dir.parent().unwrap_or(&spec.alloc_dir);
            let path = jar_location(jar, &spec.task_dir, alloc_root).map_err(failed)?;
            if !path.is_file() {
                return Err(failed(format!(
                    "jar {jar:?} not found in the task directory ({}); fetch it with an \
                     `artifact` block",
                    path.display()
                )));
            }
        }
        let args = java_args(&config, spec.resources.memory_mb);
        let mut exec = spec.clone();
        exec.config = IndexMap::from([
            (
                "command".to_string(),
                Value::String(binary.display().to_string()),
            ),
            ("args".to_string(), Value::from(args)),
        ]);
        Ok(exec)
    }
}

#[async_trait]
impl Driver for JavaDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn fingerprint(&self) -> DriverInfo {
        let mut info = DriverInfo::default();
        match &self.jvm {
            Jvm::Found { version, .. } => {
                info.detected = true;
                info.version = version.version.clone();
                let attrs = [
                    ("driver.java.version", &version.version),
                    ("driver.java.runtime", &version.runtime),
                    ("driver.java.vm", &version.vm),
                ];
                for (k, v) in attrs {
                    info.attributes.insert(k.into(), v.clone());
                }
            }
            Jvm::Missing(_) => info.detected = false,
        }
        match self.refusal() {
            None => info.healthy = true,
            Some(why) => {
                info.healthy = false;
                info.attributes
                    .insert("driver.java.unavailable".into(), why);
            }
        }
        info
    }

    async fn start(&self, spec: &TaskSpec) -> Result<TaskHandle, AgentError> {
        if let Some(why) = self.refusal() {
            return Err(AgentError::driver(NAME, why));
        }
        self.exec.start_as(&self.exec_spec(spec)?, NAME).await
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<bool, AgentError> {
        self.exec.recover(handle).await
    }

    async fn wait(&self, handle: &TaskHandle) -> Result<ExitResult, AgentError> {
        self.exec.wait(handle).await
    }

    async fn signal(&self, handle: &TaskHandle, signal: &str) -> Result<(), AgentError> {
        self.exec.signal(handle, signal).await
    }

    async fn stop(
        &self,
        handle: &TaskHandle,
        signal: &str,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        self.exec.stop(handle, signal, timeout).await
    }

    async fn destroy(&self, handle: &TaskHandle) -> Result<(), AgentError> {
        self.exec.destroy(handle).await
    }

    async fn stats(&self, handle: &TaskHandle) -> Result<TaskStats, AgentError> {
        self.exec.stats(handle).await
    }

    async fn exec(&self, handle: &TaskHandle, req: &ExecRequest) -> Result<ExecOutput, AgentError> {
        self.exec.exec(handle, req).await
    }

    async fn exec_session(
        &self,
        handle: &TaskHandle,
        req: &SessionRequest,
    ) -> Result<ExecSession, AgentError> {
        self.exec.exec_session(handle, req).await
    }

    async fn ship_logs(&self, handle: &TaskHandle) -> Result<(), AgentError> {
        self.exec.ship_logs(handle).await
    }

    async fn logs(
        &self,
        handle: &TaskHandle,
        stream: LogStream,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<u8>, AgentError> {
        self.exec.logs(handle, stream, offset, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `CHROOT_DIRS` names what the exec chroot binds, which raw_exec's `ISOLATE` script
    /// decides: the two lists must stay one list.
    #[test]
    fn the_chroot_dirs_are_those_the_isolate_script_binds() {
        let binds = format!("for d in {}; do", CHROOT_DIRS.join(" "));
        assert!(
            super::super::raw_exec::ISOLATE.contains(&binds),
            "raw_exec's ISOLATE no longer binds exactly {CHROOT_DIRS:?}"
        );
    }

    fn config(value: serde_json::Value) -> IndexMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn command_lines_put_the_heap_options_jar_or_class_then_args() {
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let jar = JavaConfig {
            jar_path: Some("local/app.jar".into()),
            args: strs(&["one", "two words"]),
            ..Default::default()
        };
        let class = JavaConfig {
            class: Some("Hello".into()),
            class_path: Some("/a/local:/a/lib/x.jar".into()),
            jvm_options: strs(&["-Xms16m", "-Dgreeting=hi"]),
            ..Default::default()
        };
        let own_heap = |opt: &str| JavaConfig {
            jvm_options: strs(&[opt]),
            ..jar.clone()
        };
        // (config, task memory MB, java's arguments)
        let cases = [
            (
                jar.clone(),
                256,
                vec!["-Xmx256m", "-jar", "local/app.jar", "one", "two words"],
            ),
            (
                jar.clone(),
                0,
                vec!["-jar", "local/app.jar", "one", "two words"],
            ),
            (
                class,
                64,
                vec![
                    "-Xmx64m",
                    "-Xms16m",
                    "-Dgreeting=hi",
                    "-cp",
                    "/a/local:/a/lib/x.jar",
                    "Hello",
                ],
            ),
            (
                own_heap("-Xmx1g"),
                256,
                vec!["-Xmx1g", "-jar", "local/app.jar", "one", "two words"],
            ),
            (
                own_heap("-XX:MaxRAMPercentage=50"),
                256,
                vec![
                    "-XX:MaxRAMPercentage=50",
                    "-jar",
                    "local/app.jar",
                    "one",
                    "two words",
                ],
            ),
            (
                own_heap("-XX:MaxHeapSize=100m"),
                256,
                vec![
                    "-XX:MaxHeapSize=100m",
                    "-jar",
                    "local/app.jar",
                    "one",
                    "two words",
                ],
            ),
        ];
        for (cfg, memory, want) in cases {
            assert_eq!(java_args(&cfg, memory), strs(&want), "{cfg:?} {memory}");
        }
    }

    #[test]
    fn jar_paths_stay_in_the_task_or_allocation_directory() {
        let task = Path::new("/d/allocs/a1/web");
        let alloc = Path::new("/d/allocs/a1");
        // (jar_path, Ok(host path) or Err(part of the message))
        let cases: [(&str, Result<&str, &str>); 6] = [
            ("app.jar", Ok("/d/allocs/a1/web/app.jar")),
            (
                "local/sub/app.jar",
                Ok("/d/allocs/a1/web/local/sub/app.jar"),
            ),
            (
                "/d/allocs/a1/web/local/app.jar",
                Ok("/d/allocs/a1/web/local/app.jar"),
            ),
            (
                "/d/allocs/a1/alloc/data/app.jar",
                Ok("/d/allocs/a1/alloc/data/app.jar"),
            ),
            ("../../a2/web/app.jar", Err("must not contain \"..\"")),
            (
                "/usr/share/java/app.jar",
                Err("must be relative to the task directory"),
            ),
        ];
        for (jar, want) in cases {
            match (jar_location(jar, task, alloc), want) {
                (Ok(p), Ok(w)) => assert_eq!(p, Path::new(w), "{jar}"),
                (Err(e), Err(part)) => assert!(e.contains(part), "{jar}: {e}"),
                (got, want) => panic!("{jar}: got {got:?}, want {want:?}"),
            }
        }
        let hidden = "/d/allocs/a1/web/../../a2/web/app.jar";
        assert!(jar_location(hidden, task, alloc).is_err());
    }

    #[test]
    fn java_version_output_of_each_jvm_generation_is_read() {
        let openjdk17 = "openjdk version \"17.0.15\" 2025-04-15
OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)
OpenJDK 64-Bit Server VM (build 17.0.15+6-Debian-1deb12u1, mixed mode, sharing)
";
        let java8 = "java version \"1.8.0_392\"
Java(TM) SE Runtime Environment (build 1.8.0_392-b08)
Java HotSpot(TM) 64-Bit Server VM (build 25.392-b08, mixed mode)
";
        let picked_up = format!("Picked up JAVA_TOOL_OPTIONS: -Xss1m\n{openjdk17}");
        let no_version_word = "openjdk 11.0.11 2021-04-20 LTS
OpenJDK Runtime Environment 18.9 (build 11.0.11+9-LTS)
OpenJDK 64-Bit Server VM 18.9 (build 11.0.11+9-LTS, mixed mode, sharing)";
        // (output, Some((version, runtime, vm)) or None)
        type Read<'a> = Option<(&'a str, &'a str, &'a str)>;
        let cases: Vec<(&str, Read)> = vec![
            (
                openjdk17,
                Some((
                    "17.0.15",
                    "OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)",
                    "OpenJDK 64-Bit Server VM (build 17.0.15+6-Debian-1deb12u1, mixed mode, sharing)",
                )),
            ),
            (
                java8,
                Some((
                    "1.8.0_392",
                    "Java(TM) SE Runtime Environment (build 1.8.0_392-b08)",
                    "Java HotSpot(TM) 64-Bit Server VM (build 25.392-b08, mixed mode)",
                )),
            ),
            (
                &picked_up,
                Some((
                    "17.0.15",
                    "OpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)",
                    "OpenJDK 64-Bit Server VM (build 17.0.15+6-Debian-1deb12u1, mixed mode, sharing)",
                )),
            ),
            (
                no_version_word,
                Some((
                    "11.0.11",
                    "OpenJDK Runtime Environment 18.9 (build 11.0.11+9-LTS)",
                    "OpenJDK 64-Bit Server VM 18.9 (build 11.0.11+9-LTS, mixed mode, sharing)",
                )),
            ),
            ("bash: java: command not found", None),
            ("Error: could not open `/usr/lib/jvm/lib/jvm.cfg'", None),
            ("java version \"banana\"\nruntime\nvm", None),
            ("openjdk version \"17\"", None),
            ("", None),
            ("\u{0}\u{1}garbage \u{ff}", None),
        ];
        for (output, want) in cases {
            let got = parse_java_version(output);
            let want = want.map(|(version, runtime, vm)| JavaVersion {
                version: version.into(),
                runtime: runtime.into(),
                vm: vm.into(),
            });
            assert_eq!(got, want, "{output:?}");
        }
    }

    #[tokio::test]
    async fn a_node_without_java_does_not_offer_the_driver_and_refuses_its_tasks() {
        let jvm = detect_jvm(Some("/nonexistent-dir"));
        assert_eq!(
            jvm,
            Jvm::Missing("no `java` executable on PATH /nonexistent-dir".into())
        );
        let driver = JavaDriver::with_jvm(ExecDriver::new(0), jvm);
        let info = driver.fingerprint().await;
        assert!(!info.detected && !info.healthy, "{info:?}");
        assert!(!info.attributes.contains_key("driver.java.version"));
        let why = &info.attributes["driver.java.unavailable"];
        assert!(why.contains("no `java` executable"), "{why}");
        let spec = TaskSpec {
            task: "t".into(),
            config: config(json!({"jar_path": "app.jar"})),
            ..Default::default()
        };
        let err = driver.start(&spec).await.expect_err("no JVM").to_string();
        assert!(err.contains("no `java` executable"), "{err}");
    }

    #[test]
    fn a_task_becomes_an_exec_task_of_the_jvm_once_its_jar_is_there() {
        let jvm = Jvm::Found {
            binary: "/usr/bin/java".into(),
            version: JavaVersion {
                version: "17.0.15".into(),
                runtime: "runtime".into(),
                vm: "vm".into(),
            },
        };
        let driver = JavaDriver::with_jvm(ExecDriver::new(0), jvm);
        let alloc = tempfile::tempdir().unwrap();
        let task_dir = alloc.path().join("app");
        std::fs::create_dir_all(task_dir.join("local")).unwrap();
        let spec = |cfg: serde_json::Value| {
            let mut spec = TaskSpec {
                task: "app".into(),
                task_dir: task_dir.clone(),
                alloc_dir: alloc.path().join("alloc"),
                config: config(cfg),
                ..Default::default()
            };
            spec.resources.memory_mb = 128;
            spec
        };
        let jar = json!({"jar_path": "local/app.jar", "args": ["x"]});
        let err = driver
            .exec_spec(&spec(jar.clone()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("jar \"local/app.jar\" not found in the task directory"),
            "{err}"
        );
        let err = driver
            .exec_spec(&spec(json!({"jar_path": "local/app.jar", "port": 1})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key config.port"), "{err}");

        std::fs::write(task_dir.join("local/app.jar"), b"PK").unwrap();
        let exec = driver.exec_spec(&spec(jar)).unwrap();
        assert_eq!(
            serde_json::to_value(&exec.config).unwrap(),
            json!({"command": "/usr/bin/java", "args": ["-Xmx128m", "-jar", "local/app.jar", "x"]})
        );
    }

    #[test]
    fn the_jvm_must_lie_where_the_chroot_binds() {
        assert!(visible_in_chroot(Path::new(
            "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
        )));
        assert!(!visible_in_chroot(Path::new("/opt/jdk/bin/java")));
        assert!(!visible_in_chroot(Path::new("/usrx/bin/java")));
    }
}
