//! The routes pass: each enabled extension's routes can be served, under a mount that
//! overlaps no other mount and no path the host keeps for itself.

use rustc_hash::FxHashSet;

use super::WiringError;
use crate::extension::{Declarations, ExtensionDecl};
use crate::http::route::{Mounts, Route};
use crate::names;

/// Checks the mounts, then each enabled extension's routes.
pub(super) fn check(
    decls: &Declarations,
    mounts: &Mounts,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    check_mounts(decls, mounts, enabled, errors);
    for ext in decls.extensions.iter().filter(|e| enabled.contains(e.name)) {
        check_routes(ext, mounts, errors);
    }
}

/// Whether `a` and `b` overlap as URL prefixes (one equals the other or contains it at a `/`).
fn paths_overlap(a: &str, b: &str) -> bool {
    let nested = |outer: &str, inner: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    nested(a, b) || nested(b, a)
}

/// The mounts: each names an enabled extension with routes, and no two mounts (nor a mount and
/// a reserved path) overlap.
fn check_mounts(
    decls: &Declarations,
    mounts: &Mounts,
    enabled: &FxHashSet<&'static str>,
    errors: &mut Vec<WiringError>,
) {
    let mut push = |name: &str, problem: String| {
        errors.push(WiringError::Setting {
            at: format!("{} {name}", mounts.at()),
            message: problem,
        });
    };
    for (name, mount) in &mounts.custom {
        match decls.extensions.iter().find(|e| e.name == name) {
            None => push(
                name,
                format!(
                    "there is no extension \"{name}\"{}",
                    names::hint(name, decls.extensions.iter().map(|e| e.name))
                ),
            ),
            Some(e) if !enabled.contains(e.name) => {
                push(name, format!("extension \"{name}\" is not enabled"));
            }
            Some(e) if e.routes.is_empty() => {
                push(name, format!("extension \"{name}\" has no routes to mount"));
            }
            Some(_) => {}
        }
        if !mount.starts_with('/')
            || mount.ends_with('/')
            || mount.contains("//")
            || mount.contains(['{', '}', '*'])
        {
            push(
                name,
                format!(
                    "\"{mount}\" is not a mount path; write it like \"/lms\" (a leading slash, no trailing slash, no parameters)"
                ),
            );
        }
    }
    let mounted: Vec<(&str, String)> = decls
        .extensions
        .iter()
        .filter(|e| enabled.contains(e.name) && !e.routes.is_empty())
        .map(|e| (e.name, mounts.mount_of(e.name)))
        .collect();
    for (i, (name, mount)) in mounted.iter().enumerate() {
        if let Some(core) = mounts
            .reserved
            .iter()
            .find(|core| paths_overlap(core, mount))
        {
            errors.push(WiringError::RouteCollision {
                extension: (*name).to_owned(),
                route: format!("prefix {mount}"),
                problem: format!("it overlaps {core}, which the server serves; mount the extension elsewhere with {} (or rename it)", mounts.at()),
            });
        }
        for (other, other_mount) in &mounted[..i] {
            if paths_overlap(mount, other_mount) {
                errors.push(WiringError::RouteCollision {
                    extension: (*name).to_owned(),
                    route: format!("prefix {mount}"),
                    problem: format!("it overlaps the mount {other_mount} of extension \"{other}\"; give one of them another path in {}", mounts.at()),
                });
            }
        }
    }
}

/// One extension's routes: paths that start with `/`, declared once, that axum can serve
/// together.
fn check_routes(ext: &ExtensionDecl, mounts: &Mounts, errors: &mut Vec<WiringError>) {
    if ext.routes.is_empty() {
        return;
    }
    let mount = mounts.mount_of(ext.name);
    let mut push = |route: &Route, problem: String| {
        errors.push(WiringError::RouteCollision {
            extension: ext.name.to_owned(),
            route: format!("{} {mount}{}", route.method, route.path),
            problem,
        });
    };
    let mut seen: FxHashSet<(&axum::http::Method, &str)> = FxHashSet::default();
    let mut mountable = true;
    for route in &ext.routes {
        if !route.path.starts_with('/') {
            push(
                route,
                format!("the path must start with \"/\"; write \"/{}\"", route.path),
            );
            mountable = false;
        } else if !seen.insert((&route.method, route.path)) {
            push(route, "it is declared twice; remove one".to_owned());
            mountable = false;
        }
    }
    if !mountable {
        return;
    }
    // axum refuses (by panicking) paths that conflict in other ways, such as `/orders/{id}`
    // beside `/orders/{number}`; build the extension's router here to report that too. One
    // build when all is well; route by route only to find the culprit when it is not.
    let build = |routes: &[Route]| {
        crate::guard::catch_quietly(|| {
            routes.iter().fold(axum::Router::new(), |r, route| {
                r.route(route.path, route.router.clone())
            })
        })
    };
    if build(&ext.routes).is_ok() {
        return;
    }
    for (i, route) in ext.routes.iter().enumerate() {
        if let Err(message) = build(&ext.routes[..=i]) {
            push(route, format!("{message}; change one of the paths"));
            return;
        }
    }
}
