//! The example's own binary: the coordinator's command line over the bundled extensions and
//! loyalty, with its own embedded configuration.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loyalty-coordinator"))
        .args(args)
        .env_remove("COORDINATOR_CONFIG")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn its_embedded_configuration_checks_and_lists_both_extensions() {
    let (code, out, err) = run(&["check", "--deny-warnings"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("configuration OK (embedded default (examples/loyalty/loyalty.toml)): 1 extension enabled (loyalty)"),
        "{out}"
    );
    let (code, out, err) = run(&["signals", "--json"]);
    assert_eq!(code, 0, "{err}");
    let catalog: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = catalog["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"demo") && names.contains(&"loyalty"),
        "{names:?}"
    );
}
