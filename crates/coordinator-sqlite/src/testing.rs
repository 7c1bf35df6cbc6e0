//! A SQLite store for tests of extensions: a file in a temporary folder, migrated, removed when
//! the harness is dropped.
//!
//! ```
//! use coordinator::testing::TestCoordinator;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let t = TestCoordinator::builder()
//!     .with_store(coordinator_sqlite::testing::temporary())
//!     .build();
//! assert_eq!(t.store().backend(), "sqlite");
//! # });
//! ```

use std::path::PathBuf;

use coordinator::migration::Migration;
use coordinator::store::Store;
use coordinator::testing::{TestStore, TestStoreData};

/// A temporary SQLite store for [`TestBuilder::with_store`](coordinator::testing::TestBuilder::with_store).
#[derive(Debug, Default)]
pub struct Temporary {
    _private: (),
}

/// A temporary SQLite store for a test harness.
pub fn temporary() -> Temporary {
    Temporary::default()
}

impl TestStore for Temporary {
    fn open(self: Box<Self>) -> Result<(Store, Box<dyn TestStoreData>), String> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(
                "build the harness within a Tokio runtime (in a #[tokio::test], or \
                        inside Runtime::block_on)"
                    .to_owned(),
            );
        }
        let folder = std::env::temp_dir().join(format!(
            "coordinator-test-{}",
            coordinator::id::new_uuid().simple()
        ));
        let url = format!("sqlite://{}/coordinator.db", folder.display());
        // The harness's store opens its connections when first used, on the test's runtime.
        let store = crate::connect_lazy(&url, 4).map_err(|e| e.to_string())?;
        Ok((store, Box::new(Data { folder, url })))
    }
}

/// The temporary folder of a test store: migrated on the side, removed when dropped.
struct Data {
    folder: PathBuf,
    url: String,
}

impl TestStoreData for Data {
    fn migrate(&self, migrations: Vec<Migration>) -> Result<(), String> {
        // On a thread with a runtime of its own: the harness is built in synchronous code,
        // maybe inside a runtime, which cannot be blocked on.
        let url = self.url.clone();
        std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let store = crate::connect(&url, 1).await.map_err(|e| e.to_string())?;
                let result = store.migrate(&migrations).await.map_err(|e| e.to_string());
                store.close().await;
                result.map(drop)
            })
        })
        .join()
        .map_err(|_| "migrating the test store panicked".to_owned())?
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
