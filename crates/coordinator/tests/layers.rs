//! The architecture, checked: the layers of the core point one way, and the core names no
//! storage backend (`docs/architecture.md` draws the same picture).
//!
//! Each source file's `crate::` paths (code only: comments, doc examples and tests are skipped)
//! must stay within what its layer may use. A new file must be given a layer here.

use std::collections::BTreeMap;
use std::path::Path;

/// The layers, bottom first, and the files (by path under `src/`, without `.rs`) in each.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "id",
            "time",
            "names",
            "payload",
            "guard",
            "config/mod",
            "config/source",
        ],
    ),
    (
        "records",
        &[
            "signal",
            "migration",
            "dispatch/report",
            "task/record",
            "dispatch_log/record",
            "http/route",
        ],
    ),
    (
        "storage",
        &["store/mod", "store/backend", "store/error", "store/migrate"],
    ),
    (
        "declarations",
        &[
            "state",
            "handler",
            "filter/mod",
            "task/mod",
            "task/delivery",
            "extension",
            "http/json",
            "http/problem",
            "http/caller",
        ],
    ),
    (
        "wiring",
        &[
            "wiring/mod",
            "wiring/errors",
            "wiring/names",
            "wiring/extensions",
            "wiring/routes",
            "wiring/tasks",
            "wiring/relations",
            "wiring/signals",
            "wiring/filters",
        ],
    ),
    (
        "runtime",
        &[
            "context",
            "dispatch/mod",
            "dispatch/durable",
            "filter/run",
            "task/enqueue",
            "dispatch_log/mod",
        ],
    ),
    (
        "composition",
        &[
            "coordinator",
            "worker/mod",
            "worker/attempt",
            "worker/health",
            "worker/held",
            "catalog/mod",
            "catalog/render",
            "testing/mod",
            "testing/fake_service",
            "testing/jwt",
            "http/mod",
            "http/mount",
            "lib",
        ],
    ),
];

/// What a layer may use besides the layers below it. The one upward edge is by design: the
/// functions that handlers, steps and tasks are take a `Context`, and the runtime calls them.
const ALSO: &[(&str, &[&str])] = &[
    ("declarations", &["context"]),
    // A context hands out the coordinator it belongs to.
    ("runtime", &["coordinator"]),
];

/// What each layer may not use even though it is below: the storage layer sees only records.
const NEVER: &[(&str, &[&str])] = &[
    (
        "storage",
        &[
            "config",
            "names",
            "payload",
            "guard",
            "signal",
            "dispatch",
            "http",
            "task",
            "dispatch_log",
        ],
    ),
    ("wiring", &["store"]),
];

fn layer_of(file: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, files)| files.contains(&file))
}

/// `text` without its tests, and with the contents of its string literals removed (messages
/// may name modules and crates as advice).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut code = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for line in text.lines() {
        if !in_string && line.trim_start().starts_with("//") {
            code.push('\n');
            continue;
        }
        for c in line.chars() {
            if in_string {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => escaped = false,
                }
                continue;
            }
            if c == '"' {
                in_string = true;
            }
            code.push(c);
        }
        code.push('\n');
    }
    code
}

/// The `crate::a` or `crate::a::b` paths `text` (the file `file`) uses in code, and the
/// module its `super::` paths name.
fn crate_paths(file: &str, text: &str) -> Vec<String> {
    let code = code_of(text);
    let mut paths = Vec::new();
    // `a/b.rs` and `a/mod.rs`'s children reach `a` through `super::`, and `a/c.rs` through
    // `super::c::`.
    let parent = match file.rsplit_once('/') {
        Some((dir, "mod")) => dir.rsplit_once('/').map_or("lib", |(up, _)| up).to_owned(),
        Some((dir, _)) => dir.to_owned(),
        None => "lib".to_owned(),
    };
    let mut rest = code.as_str();
    while let Some(at) = rest.find("super::") {
        rest = &rest[at + "super::".len()..];
        let next: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let sibling = format!("{parent}/{next}");
        let named = rest[next.len()..].starts_with("::") && !next.is_empty();
        paths.push(if named { sibling } else { parent.clone() });
    }
    for line in code.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let path = path.trim_end_matches(':');
            if path.is_empty() || path.starts_with(|c: char| c.is_ascii_uppercase()) {
                // `crate::{...}` and `crate::Type`: re-exports of the crate root, used by
                // `lib.rs` itself; elsewhere, name the module.
                if !path.is_empty() {
                    paths.push(format!("(root) {path}"));
                }
                continue;
            }
            let parts: Vec<&str> = path.split("::").collect();
            // `crate::task::record::X` is the record module; `crate::task::X` the task module.
            let module = match parts.as_slice() {
                [first, second, ..]
                    if matches!(
                        *second,
                        "record"
                            | "report"
                            | "run"
                            | "enqueue"
                            | "route"
                            | "mount"
                            | "json"
                            | "problem"
                    ) =>
                {
                    format!("{first}/{second}")
                }
                [first, ..] => (*first).to_owned(),
                [] => continue,
            };
            paths.push(module);
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The file a module path names (`task` → `task/mod`, `id` → `id`).
fn file_of(module: &str, files: &BTreeMap<String, String>) -> String {
    if files.contains_key(module) || module == "lib" {
        module.to_owned()
    } else if files.contains_key(&format!("{module}/mod")) {
        format!("{module}/mod")
    } else {
        // `super::Item` where `super` is `a/b`: the item is in `a/b.rs`... or a module path
        // that is not a file: name it as it is.
        module.to_owned()
    }
}

fn sources() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path
                    .strip_prefix(&src)
                    .unwrap()
                    .with_extension("")
                    .to_string_lossy()
                    .into_owned();
                files.insert(name, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn every_file_of_the_core_has_a_layer_and_uses_only_what_its_layer_may() {
    let files = sources();
    let mut problems = Vec::new();
    for (file, text) in &files {
        let Some(layer) = layer_of(file) else {
            problems.push(format!(
                "{file}.rs has no layer: add it to LAYERS in tests/layers.rs"
            ));
            continue;
        };
        let (name, _) = LAYERS[layer];
        let also = ALSO
            .iter()
            .find(|(l, _)| *l == name)
            .map_or(&[][..], |(_, m)| m);
        let never = NEVER
            .iter()
            .find(|(l, _)| *l == name)
            .map_or(&[][..], |(_, m)| m);
        for module in crate_paths(file, text) {
            if module.starts_with("(root)") {
                problems.push(format!(
                    "{file}.rs uses {module}: name the module the item is in instead"
                ));
                continue;
            }
            let target = file_of(&module, &files);
            let top = module.split('/').next().unwrap_or_default();
            let allowed = match layer_of(&target) {
                Some(l) => l <= layer || also.contains(&top),
                None => false,
            };
            let forbidden = never.contains(&module.as_str());
            if !allowed || forbidden {
                problems.push(format!(
                    "{file}.rs ({name}) uses crate::{} ({})",
                    module.replace('/', "::"),
                    layer_of(&target).map_or("no layer", |l| LAYERS[l].0)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_core_names_no_storage_backend() {
    for (file, text) in sources() {
        // Code only: comments, tests and string literals (messages may name a backend crate
        // as advice) are skipped.
        let code = code_of(&text);
        for needle in [
            "sqlx",
            "coordinator_sqlite",
            "coordinator_postgres",
            "coordinator_sql",
        ] {
            assert!(!code.contains(needle), "src/{file}.rs names {needle}");
        }
    }
}

/// The `[dependencies]` table of a workspace crate's manifest.
fn dependencies(crate_dir: &str) -> toml::Table {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("Cargo.toml");
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    manifest
        .get("dependencies")
        .and_then(|d| d.as_table())
        .cloned()
        .unwrap_or_default()
}

#[test]
fn an_extension_depends_on_the_framework_only() {
    let demo = dependencies("../extensions/demo");
    assert!(demo.contains_key("coordinator"));
    for name in [
        "sqlx",
        "axum",
        "coordinator-sql",
        "coordinator-sqlite",
        "coordinator-postgres",
        "coordinator-server",
    ] {
        assert!(
            !demo.contains_key(name),
            "the demo extension depends on {name}"
        );
    }
}

#[test]
fn backends_depend_on_the_core_and_never_on_each_other() {
    let core = dependencies("coordinator");
    for name in [
        "sqlx",
        "coordinator-sql",
        "coordinator-sqlite",
        "coordinator-postgres",
    ] {
        assert!(!core.contains_key(name), "the core depends on {name}");
    }
    let sql = dependencies("coordinator-sql");
    assert!(sql.contains_key("coordinator"));
    let features = sql["sqlx"].get("features").and_then(|f| f.as_array());
    assert!(
        features.is_none(),
        "coordinator-sql compiles no sqlx driver: {sql:?}"
    );
    for (backend, other) in [
        ("coordinator-sqlite", "coordinator-postgres"),
        ("coordinator-postgres", "coordinator-sqlite"),
    ] {
        let deps = dependencies(backend);
        assert!(
            deps.contains_key("coordinator"),
            "{backend} depends on the core"
        );
        assert!(!deps.contains_key(other), "{backend} depends on {other}");
    }
}
