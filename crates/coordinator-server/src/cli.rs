//! The command line: what `coordinator` accepts, as clap types. Running the commands is
//! [`crate::commands`]' business.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use coordinator::catalog::GraphFormat;

const AFTER_HELP: &str = "\
Configuration:
  Read from the file given by --config or COORDINATOR_CONFIG; with neither, the embedded default
  (config/default.toml in the source tree) is used. Any key can be overridden by an environment
  variable COORDINATOR__<SECTION>__<KEY>, e.g. COORDINATOR__TIMEOUTS__HANDLER=2s or
  COORDINATOR__SIGNALS__DEMO__ORDER_PLACED='[\"demo.enroll_learner\"]'.

Exit status:
  0  success (`serve`: stopped by SIGTERM or SIGINT after a graceful shutdown)
  1  the configuration cannot be read or is invalid (every problem is printed on stderr), or the
     command could not do its job (an unknown signal name, an output file that cannot be written,
     a database that cannot be reached)
  2  usage error: an unknown command, option or value";

/// The Commerce Coordinator: serves its HTTP API, migrates its database, validates its
/// configuration and documents its signals, handlers and filters.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The configuration file (TOML) [default: the embedded default configuration]
    #[arg(long, global = true, env = "COORDINATOR_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server: validate the configuration, migrate the database, listen on
    /// [server] bind, and on SIGTERM or SIGINT finish the requests in flight and stop
    Serve,
    /// Apply the database migrations of the framework and every enabled extension
    Migrate(MigrateArgs),
    /// Validate the configuration against the compiled-in extensions and report every problem
    Check(CheckArgs),
    /// List the signals of the enabled extensions, or show one in full
    Signals(SignalsArgs),
    /// Draw the flow from signals to handlers and through filter pipelines
    Graph(GraphArgs),
    /// Write the Markdown reference of every extension, signal, handler and filter
    Docs(DocsArgs),
}

/// `coordinator migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// List the migrations that would be applied, without applying any
    #[arg(long)]
    pub dry_run: bool,
}

/// `coordinator check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Fail (exit status 1) on warnings too, such as a signal that no handler receives
    #[arg(long)]
    pub deny_warnings: bool,
}

/// `coordinator signals`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SignalsArgs {
    /// Print the whole catalog (extensions, signals with payload schemas, handlers, filters,
    /// steps) as JSON instead of a table
    #[arg(long)]
    pub json: bool,

    /// Show one signal instead of listing them.
    #[command(subcommand)]
    pub command: Option<SignalsCommand>,
}

/// `coordinator signals <command>`.
#[derive(Debug, Subcommand)]
pub enum SignalsCommand {
    /// Show one signal: its doc, payload fields and JSON schema, and every connected handler
    Show {
        /// The signal's name, e.g. demo.order_placed
        name: String,
        /// Print the signal's catalog entry as JSON
        #[arg(long)]
        json: bool,
    },
}

/// `coordinator graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The graph language: mermaid (GitHub renders it in Markdown) or dot (Graphviz)
    #[arg(long, short, value_name = "FORMAT", default_value = "mermaid", value_parser = graph_format())]
    pub format: GraphFormat,
}

/// `coordinator docs`.
#[derive(Debug, Args)]
pub struct DocsArgs {
    /// Write to this file (replacing it) instead of standard output, e.g. docs/signals.md
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

/// Parses a [`GraphFormat`], listing the possible values in help and errors.
fn graph_format() -> impl TypedValueParser<Value = GraphFormat> {
    PossibleValuesParser::new(GraphFormat::ALL.map(GraphFormat::as_str))
        .try_map(|s| s.parse::<GraphFormat>())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn graph_format_defaults_to_mermaid_and_accepts_dot() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Graph(g) => g.format,
            other => panic!("parsed as {other:?}"),
        };
        assert_eq!(parse(&["coordinator", "graph"]), GraphFormat::Mermaid);
        assert_eq!(
            parse(&["coordinator", "graph", "--format", "dot"]),
            GraphFormat::Dot
        );
        let e = Cli::try_parse_from(["coordinator", "graph", "--format", "svg"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("mermaid"), "{e}");
    }

    #[test]
    fn migrate_takes_dry_run() {
        match Cli::try_parse_from(["coordinator", "migrate", "--dry-run"])
            .unwrap()
            .command
        {
            Command::Migrate(MigrateArgs { dry_run }) => assert!(dry_run),
            other => panic!("parsed as {other:?}"),
        }
        assert!(matches!(
            Cli::try_parse_from(["coordinator", "serve"])
                .unwrap()
                .command,
            Command::Serve
        ));
    }

    #[test]
    fn signals_show_takes_a_name() {
        let cli =
            Cli::try_parse_from(["coordinator", "signals", "show", "demo.order_placed"]).unwrap();
        match cli.command {
            Command::Signals(SignalsArgs {
                json: false,
                command: Some(SignalsCommand::Show { name, json: false }),
            }) => assert_eq!(name, "demo.order_placed"),
            other => panic!("parsed as {other:?}"),
        }
    }
}
