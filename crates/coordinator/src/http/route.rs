//! Extension routes: declared through the extension builder, mounted by the host.

use std::fmt;

use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Serialize;

use crate::payload::schema_of;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Requires the API credentials (`Authorization: Bearer <JWT or API token>`). The default.
    Api,
    /// Requires an administrator: a JWT whose `administrator` claim is true (the original's
    /// `IsAdminUser`), or a static API token (a trusted service). Others are refused with 403.
    Administrator,
    /// Requires a learner: a JWT naming an LMS user, in the `Authorization` header or in edX's
    /// split cookie (`edx-jwt-cookie-header-payload` and `edx-jwt-cookie-signature`). Static API
    /// tokens are refused with 403: they name no learner.
    Learner,
    /// No framework authentication: the route authenticates callers itself (a webhook checks its
    /// signature) or is deliberately public.
    Public,
}

impl Access {
    /// `api`, `administrator`, `learner` or `public`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Api => "api",
            Access::Administrator => "administrator",
            Access::Learner => "learner",
            Access::Public => "public",
        }
    }
}

/// One HTTP route of an extension: method, path (relative to `/api/<extension>`), handler,
/// access, and what the OpenAPI document says about it.
#[derive(Clone)]
pub struct Route {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) access: Access,
    pub(crate) doc: &'static str,
    pub(crate) request_schema: Option<fn() -> serde_json::Value>,
    pub(crate) response_schema: Option<fn() -> serde_json::Value>,
    pub(crate) problems: Vec<(StatusCode, &'static str)>,
    pub(crate) router: MethodRouter,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

macro_rules! route_constructor {
    ($name:ident, $method:ident, $filter:ident) => {
        #[doc = concat!("A `", stringify!($method), "` route at `path` (relative to `/api/<extension>`).")]
        pub fn $name<H, T>(path: &'static str, handler: H) -> Self
        where
            H: Handler<T, ()>,
            T: 'static,
        {
            Self::new(Method::$method, MethodFilter::$filter, path, handler)
        }
    };
}

impl Route {
    fn new<H, T>(method: Method, filter: MethodFilter, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        Self {
            method,
            path,
            access: Access::Api,
            doc: "",
            request_schema: None,
            response_schema: None,
            problems: Vec::new(),
            router: on(filter, handler),
        }
    }

    route_constructor!(get, GET, GET);
    route_constructor!(post, POST, POST);
    route_constructor!(put, PUT, PUT);
    route_constructor!(patch, PATCH, PATCH);
    route_constructor!(delete, DELETE, DELETE);

    /// What the route does, for the OpenAPI document and the catalog.
    pub fn doc(mut self, doc: &'static str) -> Self {
        self.doc = doc;
        self
    }

    /// Makes the route public: the framework does not authenticate callers (a webhook route
    /// checks its own signature instead).
    pub fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }

    /// Requires an administrator ([`Access::Administrator`]); the handler may take the
    /// [`Caller`](super::Caller).
    pub fn administrator(mut self) -> Self {
        self.access = Access::Administrator;
        self
    }

    /// Requires a learner ([`Access::Learner`]); the handler takes the
    /// [`Caller`](super::Caller) to know which.
    pub fn learner(mut self) -> Self {
        self.access = Access::Learner;
        self
    }

    /// Documents the JSON request body.
    pub fn request<T: schemars::JsonSchema>(mut self) -> Self {
        self.request_schema = Some(schema_of::<T>);
        self
    }

    /// Documents the JSON response body.
    pub fn response<T: schemars::JsonSchema>(mut self) -> Self {
        self.response_schema = Some(schema_of::<T>);
        self
    }

    /// Documents an error the route itself answers with (a [`Problem`](super::Problem) of
    /// `status`), and when. The OpenAPI document lists it beside the errors the host answers
    /// with for every route: a body that is not JSON or not of the request's shape (400, 415,
    /// 422), too large (413), missing or refused credentials (401, 403), a database that did not
    /// answer or a request that took too long (503).
    ///
    /// ```
    /// use coordinator::http::{Route, StatusCode};
    ///
    /// async fn pay() {}
    /// let route = Route::post("/pay", pay)
    ///     .problem(StatusCode::FORBIDDEN, "Payments from the learner's country are refused");
    /// assert_eq!(route.problems()[0].0, StatusCode::FORBIDDEN);
    /// ```
    pub fn problem(mut self, status: StatusCode, when: &'static str) -> Self {
        self.problems.push((status, when));
        self
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, relative to `/api/<extension>`.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// Who may call it.
    pub fn access(&self) -> Access {
        self.access
    }

    /// What it does.
    pub fn description(&self) -> &'static str {
        self.doc
    }

    /// The JSON schema of the request body, if documented.
    pub fn request_schema(&self) -> Option<serde_json::Value> {
        self.request_schema.map(|f| f())
    }

    /// The JSON schema of the response body, if documented.
    pub fn response_schema(&self) -> Option<serde_json::Value> {
        self.response_schema.map(|f| f())
    }

    /// The errors the route documents itself answering with ([`Route::problem`]).
    pub fn problems(&self) -> &[(StatusCode, &'static str)] {
        &self.problems
    }

    /// The axum method router that serves it.
    pub fn method_router(&self) -> MethodRouter {
        self.router.clone()
    }
}

/// Where the host serves each extension's routes, and the paths it keeps for itself.
///
/// By default an extension's routes are served under `/api/<extension>`; the host may mount
/// an extension elsewhere (to keep the URLs an existing client calls). Validation refuses
/// mounts that overlap each other or a reserved path.
///
/// ```
/// use coordinator::http::Mounts;
///
/// let mounts = Mounts {
///     custom: [("lms".to_owned(), "/lms".to_owned())].into(),
///     ..Mounts::default()
/// };
/// assert_eq!(mounts.mount_of("lms"), "/lms");
/// assert_eq!(mounts.mount_of("stripe"), "/api/stripe");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mounts {
    /// Mount paths by extension name, instead of `/api/<extension>`.
    pub custom: std::collections::BTreeMap<String, String>,
    /// Where the host configures `custom`, as messages name it (a configuration key).
    pub configured_at: &'static str,
    /// Paths the host serves itself: no extension may be mounted on or under them.
    pub reserved: Vec<&'static str>,
}

impl Mounts {
    /// Where `extension`'s routes are served: its custom mount, or `/api/<extension>`.
    pub fn mount_of(&self, extension: &str) -> String {
        self.custom
            .get(extension)
            .cloned()
            .unwrap_or_else(|| format!("/api/{extension}"))
    }

    /// How messages name where mounts are configured.
    pub(crate) fn at(&self) -> &'static str {
        if self.configured_at.is_empty() {
            "the mounts"
        } else {
            self.configured_at
        }
    }
}
