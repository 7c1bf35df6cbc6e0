//! [`App`]: the `coordinator` command line over the extensions you choose, so that a binary of
//! your own is a `main` of three lines, the way a bevy app adds plugins.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use coordinator::Extension;

use crate::config::{BUNDLED, Embedded};
use crate::{cli, commands};

/// A coordinator binary: its extensions and its embedded default configuration. [`run`] is the
/// whole `main` (`serve`, `worker`, `migrate`, `check`, `tasks`, `signals`, `graph`, `docs`).
///
/// ```no_run
/// use std::process::ExitCode;
/// # struct ShopExtension;
/// # impl coordinator::Extension for ShopExtension {
/// #     fn name(&self) -> &'static str { "shop" }
/// #     fn build(&self, _: &mut coordinator::ExtensionBuilder<'_>) {}
/// # }
///
/// fn main() -> ExitCode {
///     coordinator_server::App::new()
///         .extensions(coordinator_server::bundled()) // the bundled set; leave it out to replace it
///         .extension(ShopExtension)
///         .run()
/// }
/// ```
///
/// [`run`]: App::run
#[derive(Clone)]
pub struct App {
    extensions: Vec<Arc<dyn Extension>>,
    default_config: Embedded,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field(
                "extensions",
                &self.extensions.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .field("default_config", &self.default_config.origin)
            .finish()
    }
}

impl App {
    /// A binary with no extension yet, and the bundled embedded default configuration
    /// (`config/default.toml`; replace it with [`App::default_config`] when your extensions
    /// differ from the bundled ones).
    pub fn new() -> Self {
        Self {
            extensions: Vec::new(),
            default_config: BUNDLED,
        }
    }

    /// Adds an extension.
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// Adds extensions, such as the bundled set ([`bundled`](crate::bundled)).
    pub fn extensions(mut self, extensions: impl IntoIterator<Item = Arc<dyn Extension>>) -> Self {
        self.extensions.extend(extensions);
        self
    }

    /// The configuration used when neither `--config` nor `COORDINATOR_CONFIG` names a file:
    /// `text`, named `origin` in messages (include it with `include_str!`).
    pub fn default_config(mut self, origin: &'static str, text: &'static str) -> Self {
        self.default_config = Embedded { origin, text };
        self
    }

    /// The extensions, in the order they were added.
    pub fn extension_list(&self) -> Vec<Arc<dyn Extension>> {
        self.extensions.clone()
    }

    /// The embedded default configuration.
    pub fn embedded_config(&self) -> Embedded {
        self.default_config
    }

    /// Runs the command line of this process (`std::env::args`) and returns the exit status:
    /// 0 success, 1 an invalid configuration or a failed command (every problem on stderr), 2
    /// a usage error.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Runs the command line `args` (the first is the program name).
    pub fn run_from(self, args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
        // Usage errors exit with status 2 here, from clap.
        let cli = cli::Cli::parse_from(args);
        match commands::run(cli, &self) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(commands::EXIT_FAILURE)
            }
        }
    }
}
