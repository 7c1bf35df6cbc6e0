//! Mounting the extensions' routes, where the host serves them.

use axum::routing::MethodRouter;

use super::route::Access;
use crate::coordinator::Coordinator;

/// Every enabled extension's routes, each extension's under its mount
/// ([`Coordinator::mount_of`](crate::Coordinator::mount_of)), with a [`Context`] (sending as
/// that extension, with its state) available to every handler. `protect` wraps every route
/// but the [`Access::Public`] ones with the authentication its access level requires (the
/// server passes its authentication layer, which puts the [`Caller`](super::Caller) in the
/// request; tests may pass the identity).
pub fn extension_routes(
    coordinator: &Coordinator,
    protect: impl Fn(Access, MethodRouter) -> MethodRouter,
) -> axum::Router {
    let mut app = axum::Router::new();
    for (extension, routes) in coordinator.routes() {
        let mut router = axum::Router::new();
        for route in routes {
            let method_router = match route.access {
                Access::Public => route.router,
                access => protect(access, route.router),
            };
            router = router.route(route.path, method_router);
        }
        app = app.nest(
            &coordinator.mount_of(extension),
            router.layer(axum::Extension(coordinator.context(extension))),
        );
    }
    app
}
