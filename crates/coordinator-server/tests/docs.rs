//! `docs/signals.md` is what `coordinator docs` prints for the embedded default configuration.
//!
//! After changing an extension or `config/default.toml`, regenerate it with
//! `cargo run -q -p coordinator-server -- docs --output docs/signals.md`, or run this test with
//! `UPDATE_DOCS=1`.

use std::path::PathBuf;
use std::process::Command;

const REGENERATE: &str = "cargo run -q -p coordinator-server -- docs --output docs/signals.md";

#[test]
fn signals_md_is_what_coordinator_docs_prints_for_the_default_configuration() {
    // Only PATH survives: no COORDINATOR_CONFIG, no COORDINATOR__* override, no RUST_LOG.
    let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    command.arg("docs").env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let output = command.output().expect("run coordinator docs");
    assert!(
        output.status.success(),
        "coordinator docs failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).expect("the docs are UTF-8");

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/signals.md");
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\ngenerate it with: {REGENERATE}",
            path.display()
        )
    });
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "docs/signals.md is out of date (first difference at line {line}).\n\
             Regenerate it with:\n    {REGENERATE}\n\
             or:\n    UPDATE_DOCS=1 cargo nextest run -p coordinator-server --test docs\n\
             and commit the result.\n\
             committed line: {:?}\n\
             generated line: {:?}",
            committed.lines().nth(line - 1).unwrap_or("<end of file>"),
            generated.lines().nth(line - 1).unwrap_or("<end of file>"),
        );
    }
}
