//! The command line: what `coordinator` accepts, as clap types. Running the commands is
//! [`crate::commands`]' business.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use coordinator::catalog::GraphFormat;
use coordinator::task::TaskState;
use uuid::Uuid;

const AFTER_HELP: &str = "\
Configuration:
  Read from the file given by --config or COORDINATOR_CONFIG; with neither, the embedded default
  (config/default.toml in the source tree) is used. Any key can be overridden by an environment
  variable COORDINATOR__<SECTION>__<KEY>, e.g. COORDINATOR__TIMEOUTS__HANDLER=2s or
  COORDINATOR__SIGNALS__DEMO__ORDER_PLACED='[\"demo.enroll_learner\"]'.

Exit status:
  0  success (`serve`, `worker`: stopped by SIGTERM or SIGINT after a graceful shutdown)
  1  the configuration cannot be read or is invalid (every problem is printed on stderr), or the
     command could not do its job (an unknown signal name or task id, a task whose state does not
     allow the operation, an output file that cannot be written, a database that cannot be
     reached)
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
    /// [server] bind, run an embedded task worker ([worker] embedded), and on SIGTERM or SIGINT
    /// finish the requests and tasks in flight and stop
    Serve,
    /// Run tasks only: claim tasks from the queues of [worker] queues and run them, [worker]
    /// concurrency at a time; on SIGTERM or SIGINT let running tasks finish within [worker]
    /// shutdown_grace and give the rest back. With [worker] bind, serve /health, /ready and
    /// /metrics there. Run many against PostgreSQL to scale out
    Worker,
    /// Inspect and operate the durable task queue: list, show, retry, cancel
    Tasks(TasksArgs),
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

/// `coordinator tasks`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: TasksCommand,
}

/// `coordinator tasks <command>`.
#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks, newest first: id, task, queue, state, attempts, when, last error
    List(TasksListArgs),
    /// Show one task: its payload (personal data redacted) and every attempt with its error chain
    Show {
        /// The task's id (a UUID, as `tasks list` shows it)
        #[arg(value_parser = task_id)]
        id: Uuid,
        /// Print the task as JSON (the same document as GET /api/v1/tasks/{id})
        #[arg(long)]
        json: bool,
    },
    /// Queue a dead or cancelled task again, to run now with its attempts reset (its history is
    /// kept)
    Retry {
        /// The task's id
        #[arg(value_parser = task_id)]
        id: Uuid,
    },
    /// Cancel a queued, retrying or running task: it will not run again (a running attempt
    /// finishes, but its outcome is not recorded on the task)
    Cancel {
        /// The task's id
        #[arg(value_parser = task_id)]
        id: Uuid,
    },
}

/// `coordinator tasks list`.
#[derive(Debug, Args)]
pub struct TasksListArgs {
    /// Only tasks in this state
    #[arg(long, value_name = "STATE", value_parser = task_state())]
    pub state: Option<TaskState>,
    /// Only tasks on this queue
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Only tasks of this name, e.g. demo.enroll_in_course
    #[arg(long, value_name = "NAME")]
    pub task: Option<String>,
    /// Only tasks older than this task id (the last id of the previous page)
    #[arg(long, value_name = "ID", value_parser = task_id)]
    pub before: Option<Uuid>,
    /// The most tasks listed, 1 to 500
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// Print the page as JSON (`items` without attempt history, and `next_before`)
    #[arg(long)]
    pub json: bool,
}

/// Parses a task id, saying what one looks like.
fn task_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text).map_err(|_| {
        format!(
            "\"{text}\" is not a task id; ids are UUIDs such as \
             0190b5c4-8f5e-7cc0-a2b4-3f1e0d6c9a10 (`coordinator tasks list` shows them)"
        )
    })
}

/// Parses a [`TaskState`], listing the possible values in help and errors.
fn task_state() -> impl TypedValueParser<Value = TaskState> {
    PossibleValuesParser::new(TaskState::ALL.map(TaskState::as_str))
        .try_map(|s| s.parse::<TaskState>())
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
    fn tasks_commands_parse_ids_and_states() {
        let id = "0190b5c4-8f5e-7cc0-a2b4-3f1e0d6c9a10";
        match Cli::try_parse_from([
            "coordinator",
            "tasks",
            "list",
            "--state",
            "dead",
            "--limit",
            "5",
        ])
        .unwrap()
        .command
        {
            Command::Tasks(TasksArgs {
                command: TasksCommand::List(args),
            }) => {
                assert_eq!(args.state, Some(TaskState::Dead));
                assert_eq!(args.limit, 5);
                assert!(!args.json);
            }
            other => panic!("parsed as {other:?}"),
        }
        match Cli::try_parse_from(["coordinator", "tasks", "retry", id])
            .unwrap()
            .command
        {
            Command::Tasks(TasksArgs {
                command: TasksCommand::Retry { id: parsed },
            }) => assert_eq!(parsed.to_string(), id),
            other => panic!("parsed as {other:?}"),
        }
        for bad in [
            &["coordinator", "tasks", "list", "--state", "zombie"][..],
            &["coordinator", "tasks", "list", "--limit", "0"],
            &["coordinator", "tasks", "show", "42"],
            &["coordinator", "tasks", "cancel"],
        ] {
            let e = Cli::try_parse_from(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
        }
        let e = Cli::try_parse_from(["coordinator", "tasks", "show", "42"]).unwrap_err();
        assert!(e.to_string().contains("\"42\" is not a task id"), "{e}");
        let e =
            Cli::try_parse_from(["coordinator", "tasks", "list", "--state", "zombie"]).unwrap_err();
        assert!(e.to_string().contains("retrying"), "{e}");
        assert!(matches!(
            Cli::try_parse_from(["coordinator", "worker"])
                .unwrap()
                .command,
            Command::Worker
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
