//! The examples under `examples/`, run as their comments say against a
//! development server: they must exit 0.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Gateway, repo};

/// Runs an example the way its comment says, with a time limit, and
/// returns its stdout; a failure shows both streams.
fn run_example(program: &str, args: &[&str], envs: &[(&str, &str)], dir: &Path) -> String {
    let mut child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run `{program}`: {error}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`{program} {}` ran for more than 30 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Panics with what to install when a tool the examples need is missing:
/// CI installs them (see `.ci/run`), so a missing one is a broken machine,
/// not a reason to skip.
fn require_tool(program: &str, args: &[&str], install: &str) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("`{program}` is needed by the examples test ({error}); {install}")
        });
    assert!(
        output.status.success(),
        "`{program} {}` failed; {install}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[tokio::test]
async fn the_examples_run_against_the_development_server() {
    require_tool(
        "curl",
        &["--version"],
        "install curl (`apt-get install curl`)",
    );
    let node = require_tool("node", &["--version"], "install Node 18 or later");
    let major: u32 = node
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 18,
        "examples/publish.mjs needs Node 18 or later (fetch), found {node}"
    );
    require_tool(
        "python3",
        &["-c", "import requests"],
        "install Python 3 and requests (`pip install requests`)",
    );

    let gateway = Gateway::start("examples", "").await;
    let examples = repo().join("examples");
    let script = |name: &str| examples.join(name).to_string_lossy().to_string();
    let ca = gateway.ca.to_string_lossy().to_string();
    let env = |plugin: &str| {
        vec![
            ("PHIGATE_URL", gateway.url.clone()),
            ("PHIGATE_CA", ca.clone()),
            ("PHIGATE_TOKEN", gateway.token(plugin).to_string()),
            ("NODE_EXTRA_CA_CERTS", ca.clone()),
        ]
    };
    let run = |program: &str, args: &[&str], plugin: &str| {
        let env = env(plugin);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_example(program, args, &env, &gateway.dir)
    };

    let curl = run("sh", &[&script("publish.sh")], "ehr");
    let curl: Value = serde_json::from_str(curl.trim()).unwrap();
    assert_eq!(curl["topic"], "patients.admitted");
    let python = run("python3", &[&script("publish.py")], "ehr");
    let node = run("node", &[&script("publish.mjs")], "chat");
    let pulled = run(
        "python3",
        &[&script("pull.py"), "scheduler", "--once"],
        "scheduler",
    );
    assert!(pulled.contains("acknowledged 1"), "{pulled}");

    // Each publish was stored under the id it printed.
    let records = gateway.audit().await;
    for id in [curl["id"].as_str().unwrap(), python.trim(), node.trim()] {
        assert!(
            records
                .iter()
                .any(|r| r["kind"] == "ingress" && r["message_id"] == id),
            "no ingress record for {id}"
        );
    }
}
