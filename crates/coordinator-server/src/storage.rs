//! Choosing the storage backend: `[storage] url`'s scheme names it, and each backend the
//! binary was built with (Cargo features `sqlite` and `postgres`, both on by default) opens
//! its own kind of URL.

use coordinator::config::StorageConfig;
use coordinator::store::{Store, StoreError};

/// The backend that opens URLs of `scheme`, among those this binary was built with.
fn backend_of(scheme: &str) -> Option<&'static str> {
    match scheme {
        #[cfg(feature = "sqlite")]
        "sqlite" => Some(coordinator_sqlite::NAME),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Some(coordinator_postgres::NAME),
        _ => None,
    }
}

/// The URL forms this binary opens, for messages.
pub fn supported() -> String {
    let forms: &[&str] = &[
        #[cfg(feature = "sqlite")]
        "sqlite://<path> (a local file, created on start)",
        #[cfg(feature = "postgres")]
        "postgres://<user>@<host>:<port>/<database>",
    ];
    forms.join(" or ")
}

/// Opens the database `config.url` names with the backend of its scheme. Errors never show
/// the URL's credentials.
pub async fn connect(config: &StorageConfig) -> Result<Store, StoreError> {
    let url = config.url.expose();
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    let max_connections = config.max_connections.max(1);
    let Some(backend) = backend_of(scheme) else {
        return Err(StoreError::UnsupportedUrl {
            scheme: if url.contains(':') {
                scheme.to_owned()
            } else {
                "(none)".to_owned()
            },
            supported: supported(),
        });
    };
    match backend {
        #[cfg(feature = "sqlite")]
        coordinator_sqlite::NAME => coordinator_sqlite::connect(url, max_connections).await,
        #[cfg(feature = "postgres")]
        _ => coordinator_postgres::connect(url, max_connections).await,
        #[cfg(not(feature = "postgres"))]
        _ => unreachable!("backend_of knows only the compiled backends"),
    }
}

/// Whether this binary has a backend for `scheme`.
pub fn supports(scheme: &str) -> bool {
    backend_of(scheme).is_some()
}

#[cfg(test)]
mod tests {
    use coordinator::config::Secret;

    use super::*;

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_without_printing_the_url() {
        let config = StorageConfig {
            url: Secret::new("mysql://root:hunter2@localhost/cc"),
            max_connections: 1,
        };
        let e = connect(&config).await.unwrap_err().to_string();
        assert!(e.contains("\"mysql\""), "{e}");
        assert!(e.contains("sqlite://") && e.contains("postgres://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");

        let config = StorageConfig {
            url: Secret::new("just-a-path.db"),
            max_connections: 1,
        };
        let e = connect(&config).await.unwrap_err().to_string();
        assert!(e.contains("(none)"), "{e}");
    }
}
