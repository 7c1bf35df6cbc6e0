//! End-to-end tests of the `coordinator` command line: the real binary, real configuration files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary with no configuration from the test's environment: no `COORDINATOR_CONFIG`, no
/// `COORDINATOR__*` override, no `RUST_LOG`.
fn coordinator(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("COORDINATOR") {
            command.env_remove(key);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

/// Runs and captures; `(exit code, stdout, stderr)`.
fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run the coordinator binary");
    (
        status.code().expect("exited, not killed by a signal"),
        String::from_utf8(stdout).expect("stdout is UTF-8"),
        String::from_utf8(stderr).expect("stderr is UTF-8"),
    )
}

/// A configuration file in a directory of its own, removed when dropped.
struct TempConfig {
    dir: PathBuf,
    path: PathBuf,
}

impl TempConfig {
    fn new(test: &str, toml: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("coordinator-cli-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        let path = dir.join("coordinator.toml");
        std::fs::write(&path, toml).expect("write the configuration");
        Self { dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().expect("temporary paths are UTF-8")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The demo wiring of the default configuration, without the `[signals]` entries.
const DEMO_FILTERS: &str = r#"
[extensions]
enabled = ["demo"]

[filters."demo.payment_page_redirect_requested"]
pipeline = ["demo.block_embargoed_country", "demo.choose_processor", "demo.build_redirect_url"]
"#;

fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "missing {needle:?} in:\n{haystack}"
        );
    }
}

#[test]
fn check_accepts_the_embedded_default() {
    let (code, stdout, stderr) = run(&mut coordinator(&["check"]));
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert_contains(
        &stdout,
        &[
            "configuration OK (embedded default (config/default.toml))",
            "4 extensions enabled (commercetools, demo, lms, sandbox)",
            "8 signals",
            "9 handlers connected",
            "1 filter",
        ],
    );
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn check_reports_every_problem_at_once() {
    let config = TempConfig::new(
        "every-problem",
        &format!(
            r#"{DEMO_FILTERS}
[signals]
"demo.order_plcaed" = ["demo.enroll_learner"]
"demo.order_placed" = ["demo.notify_unreachable_crm", "demo.no_such_handler"]
"demo.payment_refunded" = ["demo.revoke_seat", "demo.welcome_learner"]
"demo.learner_enrolled" = []
"#
        ),
    );
    let (code, stdout, stderr) = run(&mut coordinator(&["--config", config.path(), "check"]));
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let origin = config.path();
    assert_contains(
        &stderr,
        &[
            &format!(
                "error: {origin}: [signals] \"demo.order_plcaed\": unknown signal \"demo.order_plcaed\"; did you mean \"demo.order_placed\"?"
            ),
            "[signals] \"demo.order_placed\" item 2: unknown handler \"demo.no_such_handler\"",
            "[signals] \"demo.payment_refunded\" item 2: handler \"demo.welcome_learner\" takes `coordinator_demo::signals::LearnerEnrolled` but signal \"demo.payment_refunded\" carries `coordinator_demo::signals::PaymentRefunded`; connect it to a signal that carries `coordinator_demo::signals::LearnerEnrolled` (such as \"demo.learner_enrolled\")",
            "[signals] \"demo.learner_enrolled\": the handler list is empty; list at least one handler",
            "4 errors",
            "the coordinator cannot start until every error is fixed",
        ],
    );
}

#[test]
fn deny_warnings_fails_on_an_unwired_signal_that_plain_check_accepts() {
    let config = TempConfig::new(
        "unwired",
        &format!(
            r#"{DEMO_FILTERS}
[signals]
"demo.order_placed" = ["demo.enroll_learner", "demo.record_order", "demo.notify_unreachable_crm", "demo.audit_with_bug"]
"demo.payment_refunded" = ["demo.revoke_seat"]
"#
        ),
    );
    let warning =
        "signal \"demo.learner_enrolled\" (declared by extension \"demo\") has no [signals] entry";

    let (code, stdout, stderr) = run(&mut coordinator(&["--config", config.path(), "check"]));
    assert_eq!(code, 0, "{stderr}");
    assert_contains(&stderr, &["warning: ", warning]);
    assert_contains(&stdout, &["configuration OK", "2 warnings (see above)"]);

    let (code, stdout, stderr) = run(&mut coordinator(&[
        "--config",
        config.path(),
        "check",
        "--deny-warnings",
    ]));
    assert_eq!(code, 1, "{stdout}");
    assert_contains(&stderr, &[warning, "denied by --deny-warnings"]);
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn environment_overrides_apply_to_the_embedded_default() {
    let (code, _, stderr) =
        run(coordinator(&["check"]).env("COORDINATOR__TIMEOUTS__HANDLER", "0s"));
    assert_eq!(code, 1, "{stderr}");
    assert_contains(
        &stderr,
        &[
            "with overrides from COORDINATOR__TIMEOUTS__HANDLER",
            "[timeouts] handler: a timeout of zero would fail every run",
        ],
    );
}

#[test]
fn the_config_file_can_come_from_coordinator_config() {
    let config = TempConfig::new("from-env", "[extensions]\nenabled = [\"demo\"]\n");
    let (code, stdout, stderr) =
        run(coordinator(&["check", "--deny-warnings"]).env("COORDINATOR_CONFIG", config.path()));
    assert_eq!(code, 1, "{stdout}");
    assert_contains(&stderr, &[config.path(), "has no [signals] entry"]);
}

#[test]
fn an_unreadable_config_file_is_named_in_the_error() {
    let missing = std::env::temp_dir().join("coordinator-cli-no-such-dir/missing.toml");
    let missing = missing.to_str().unwrap();
    let (code, stdout, stderr) = run(&mut coordinator(&["--config", missing, "check"]));
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "{stdout}");
    assert_contains(
        &stderr,
        &["cannot read the configuration file", missing, "--config"],
    );
}

#[test]
fn invalid_toml_is_reported_with_its_location() {
    let config = TempConfig::new("bad-toml", "[server]\nbnid = \"x\"\n");
    let (code, _, stderr) = run(&mut coordinator(&["--config", config.path(), "signals"]));
    assert_eq!(code, 1, "{stderr}");
    assert_contains(&stderr, &[config.path(), "unknown field `bnid`", "line 2"]);
}

#[test]
fn documenting_commands_refuse_an_invalid_configuration() {
    let config = TempConfig::new(
        "invalid-docs",
        "[signals]\n\"demo.order_plcaed\" = [\"demo.enroll_learner\"]\n",
    );
    for command in [&["signals"][..], &["graph"], &["docs"]] {
        let mut args = vec!["--config", config.path()];
        args.extend_from_slice(command);
        let (code, stdout, stderr) = run(&mut coordinator(&args));
        assert_eq!(code, 1, "{command:?}: {stdout}");
        assert!(stdout.is_empty(), "{command:?}: {stdout}");
        assert_contains(
            &stderr,
            &[
                "problem(s) in the configuration",
                "did you mean \"demo.order_placed\"",
            ],
        );
    }
}

#[test]
fn signals_lists_the_demo_signals_in_a_table() {
    let (code, stdout, stderr) = run(&mut coordinator(&["signals"]));
    assert_eq!(code, 0, "{stderr}");
    let header = stdout.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "EXTENSION", "PAYLOAD", "HANDLERS"]
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("demo.order_placed "))
        .unwrap_or_else(|| panic!("no demo.order_placed row in:\n{stdout}"));
    assert_contains(
        row,
        &[
            "demo",
            "OrderPlaced",
            "demo.enroll_learner, demo.record_order, demo.notify_unreachable_crm",
        ],
    );
}

#[test]
fn signals_json_is_the_whole_catalog() {
    let (code, stdout, stderr) = run(&mut coordinator(&["signals", "--json"]));
    assert_eq!(code, 0, "{stderr}");
    let catalog: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    let signals = catalog["signals"].as_array().expect("a signals array");
    let order_placed = signals
        .iter()
        .find(|s| s["name"] == "demo.order_placed")
        .expect("demo.order_placed is listed");
    assert_eq!(
        order_placed["handlers"],
        serde_json::json!([
            "demo.enroll_learner",
            "demo.record_order",
            "demo.notify_unreachable_crm",
            "demo.audit_with_bug"
        ])
    );
    assert_eq!(
        order_placed["payload_schema"]["properties"]["email"]["x-personal-data"],
        true
    );
    for section in ["extensions", "handlers", "filters", "steps"] {
        assert!(catalog[section].is_array(), "no {section} in {catalog:#}");
    }
}

#[test]
fn signals_show_marks_personal_data() {
    let (code, stdout, stderr) = run(&mut coordinator(&["signals", "show", "demo.order_placed"]));
    assert_eq!(code, 0, "{stderr}");
    assert_contains(
        &stdout,
        &[
            "signal     demo.order_placed",
            "demo.enroll_learner  (task deliver:demo.enroll_learner, queue default, 5 attempts, timeout 2s)",
            "durable: each delivery is stored",
            "\"x-personal-data\": true",
            "personal data (handlers can read it; logs and reports show \"[redacted]\"): email",
        ],
    );
    // FIELD TYPE REQUIRED PERSONAL-DATA DESCRIPTION
    let email: Vec<&str> = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("email "))
        .unwrap_or_else(|| panic!("no email row in:\n{stdout}"))
        .split_whitespace()
        .collect();
    assert_eq!(email[..4], ["email", "string", "yes", "yes"]);
}

#[test]
fn signals_show_json_is_one_catalog_entry() {
    let (code, stdout, stderr) = run(&mut coordinator(&[
        "signals",
        "show",
        "demo.payment_refunded",
        "--json",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let entry: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert_eq!(entry["name"], "demo.payment_refunded");
    assert_eq!(entry["handlers"], serde_json::json!(["demo.revoke_seat"]));
}

#[test]
fn signals_show_suggests_a_name_for_an_unknown_signal() {
    let (code, stdout, stderr) = run(&mut coordinator(&["signals", "show", "demo.nope"]));
    assert_eq!(code, 1, "{stdout}");
    assert_contains(
        &stderr,
        &[
            "unknown signal \"demo.nope\"",
            "did you mean one of the signals of extension \"demo\"",
            "\"demo.order_placed\"",
            "run `coordinator signals`",
        ],
    );

    let (code, _, stderr) = run(&mut coordinator(&["signals", "show", "demo.order_plcaed"]));
    assert_eq!(code, 1);
    assert_contains(&stderr, &["did you mean \"demo.order_placed\"?"]);
}

#[test]
fn graph_writes_mermaid_by_default_and_dot_on_request() {
    let (code, stdout, stderr) = run(&mut coordinator(&["graph", "--format", "mermaid"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("flowchart LR\n"), "{stdout}");
    assert_contains(
        &stdout,
        &["signal_demo__order_placed --> handler_demo__enroll_learner"],
    );
    let (_, default, _) = run(&mut coordinator(&["graph"]));
    assert_eq!(default, stdout);

    let (code, stdout, stderr) = run(&mut coordinator(&["graph", "--format", "dot"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("digraph coordinator {"), "{stdout}");
    assert!(stdout.ends_with("}\n"), "{stdout}");
}

#[test]
fn graph_refuses_an_unknown_format_as_a_usage_error() {
    let (code, stdout, stderr) = run(&mut coordinator(&["graph", "--format", "svg"]));
    assert_eq!(code, 2, "{stdout}");
    assert_contains(&stderr, &["svg", "mermaid", "dot"]);
}

#[test]
fn docs_writes_the_markdown_to_a_file() {
    let dir = TempConfig::new("docs-output", "");
    let output = Path::new(&dir.dir).join("signals.md");
    let output = output.to_str().unwrap();
    let (code, stdout, stderr) = run(&mut coordinator(&["docs", "--output", output]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_contains(&stderr, &["wrote", output]);
    let written = std::fs::read_to_string(output).unwrap();
    let (_, printed, _) = run(&mut coordinator(&["docs"]));
    assert_eq!(written, printed);
    assert!(written.contains("```mermaid\nflowchart LR\n"), "{written}");

    let unwritable = Path::new(&dir.dir).join("no-such-dir/signals.md");
    let (code, _, stderr) = run(&mut coordinator(&[
        "docs",
        "--output",
        unwritable.to_str().unwrap(),
    ]));
    assert_eq!(code, 1);
    assert_contains(
        &stderr,
        &["cannot write the documentation to", "no-such-dir"],
    );
}

#[test]
fn help_documents_the_exit_status() {
    let (code, stdout, _) = run(&mut coordinator(&["--help"]));
    assert_eq!(code, 0);
    assert_contains(
        &stdout,
        &[
            "Exit status:",
            "COORDINATOR_CONFIG",
            "COORDINATOR__<SECTION>__<KEY>",
        ],
    );
}
