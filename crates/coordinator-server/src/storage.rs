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

/// Opens the database `config.url` names with the backend of its scheme (creating a SQLite
/// file that is missing), within `[storage] connect_timeout`. Errors never show the URL's
/// credentials.
pub async fn connect(config: &StorageConfig) -> Result<Store, StoreError> {
    open(config, Mode::Create).await
}

/// Like [`connect`], for a database that must exist already (`coordinator tasks`): a missing
/// SQLite file is an error, not an empty database created.
pub async fn connect_existing(config: &StorageConfig) -> Result<Store, StoreError> {
    open(config, Mode::Existing).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Existing,
}

async fn open(config: &StorageConfig, mode: Mode) -> Result<Store, StoreError> {
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
    let connecting = async {
        match (backend, mode) {
            #[cfg(feature = "sqlite")]
            (coordinator_sqlite::NAME, Mode::Create) => {
                coordinator_sqlite::connect(url, max_connections).await
            }
            #[cfg(feature = "sqlite")]
            (coordinator_sqlite::NAME, Mode::Existing) => {
                coordinator_sqlite::connect_existing(url, max_connections).await
            }
            #[cfg(feature = "postgres")]
            _ => coordinator_postgres::connect(url, max_connections).await,
            #[cfg(not(feature = "postgres"))]
            _ => unreachable!("the scheme was matched above"),
        }
    };
    let timeout = config.connect_timeout.0;
    tokio::time::timeout(timeout, connecting)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Connect {
                backend,
                url: coordinator::store::redact_url(url),
                source: format!(
                    "no answer within {} ([storage] connect_timeout): something accepts \
                     connections there but does not answer as the database would",
                    coordinator::config::ConfigDuration(timeout)
                )
                .into(),
            })
        })
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
    async fn a_server_that_accepts_but_never_answers_times_out_with_a_clear_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accept and hold every connection, answering nothing.
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let config = StorageConfig {
            url: Secret::new(format!("postgres://app:hunter2@127.0.0.1:{port}/cc")),
            connect_timeout: coordinator::config::ConfigDuration(std::time::Duration::from_millis(
                300,
            )),
            ..StorageConfig::default()
        };
        let started = std::time::Instant::now();
        let e = connect(&config).await.unwrap_err().to_string();
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{e}");
        assert!(e.contains("no answer within 300ms"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        held.abort();
    }

    #[tokio::test]
    async fn a_missing_sqlite_file_is_not_created_for_a_command_that_only_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing-here.db");
        let config = StorageConfig {
            url: Secret::new(format!("sqlite://{}", path.display())),
            ..StorageConfig::default()
        };
        let e = connect_existing(&config).await.unwrap_err().to_string();
        assert!(e.contains("there is no database file there"), "{e}");
        assert!(!path.exists(), "no empty database was created");
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_refused_without_printing_the_url() {
        let config = StorageConfig {
            url: Secret::new("mysql://root:hunter2@localhost/cc"),
            ..StorageConfig::default()
        };
        let e = connect(&config).await.unwrap_err().to_string();
        assert!(e.contains("\"mysql\""), "{e}");
        assert!(e.contains("sqlite://") && e.contains("postgres://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");

        let config = StorageConfig {
            url: Secret::new("just-a-path.db"),
            ..StorageConfig::default()
        };
        let e = connect(&config).await.unwrap_err().to_string();
        assert!(e.contains("(none)"), "{e}");
    }
}
