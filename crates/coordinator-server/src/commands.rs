//! Running the commands. Each returns the process exit status; anything that prevents a command
//! from running at all (an unreadable configuration) is an error that `main` prints.

use std::io::{self, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use std::sync::Arc;

use coordinator::catalog::{Catalog, GraphFormat};
use coordinator::{Coordinator, Extension};
use tracing::warn;

use crate::cli::{
    CheckArgs, Cli, Command, DocsArgs, MigrateArgs, SignalsArgs, SignalsCommand, TasksCommand,
    TasksListArgs,
};
use crate::config::{self, Loaded};
use crate::server::{self, MigrateOutcome, ServeError};
use crate::{App, checks, logging, queue};

/// Exit status: the configuration is unreadable or invalid, or the command failed.
pub const EXIT_FAILURE: u8 = 1;

/// Runs the command `cli` asks for, over the extensions of `app`.
pub fn run(cli: Cli, app: &App) -> anyhow::Result<ExitCode> {
    let loaded = config::load(cli.config.as_deref(), app.embedded_config())?;
    logging::init(&loaded.config.log, &loaded.origin)?;
    let extensions = app.extension_list();
    match cli.command {
        Command::Serve => serve(loaded, extensions),
        Command::Worker => worker(loaded, extensions),
        Command::Tasks(args) => tasks(loaded, extensions, args.command),
        Command::Migrate(args) => migrate(loaded, extensions, &args),
        Command::Check(args) => Ok(check(loaded, extensions, &args)),
        Command::Signals(args) => signals(loaded, extensions, args),
        Command::Graph(args) => graph(loaded, extensions, args.format),
        Command::Docs(args) => docs(loaded, extensions, &args),
    }
}

/// The extensions a command runs.
type Extensions = Vec<Arc<dyn Extension>>;

/// `coordinator check`: every error and warning on stderr, a one-line verdict.
fn check(loaded: Loaded, extensions: Extensions, args: &CheckArgs) -> ExitCode {
    let Loaded { config, origin } = loaded;
    let builder = server::builder(&config, extensions);
    let validation = checks::validate(&builder, &config);
    report_problems(&validation, &origin);
    let (errors, warnings) = (validation.errors.len(), validation.warnings.len());
    if errors > 0 {
        return ExitCode::from(EXIT_FAILURE);
    }
    if warnings > 0 && args.deny_warnings {
        eprintln!(
            "{origin}: {} denied by --deny-warnings; fix them, or run without --deny-warnings to accept them",
            plural(warnings, "warning")
        );
        return ExitCode::from(EXIT_FAILURE);
    }
    let catalog = match builder.build() {
        Ok(coordinator) => coordinator.catalog(),
        Err(e) => {
            // Validation found no error, so building cannot fail; report it if it does.
            eprintln!("error: {origin}: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let enabled: Vec<&str> = catalog
        .extensions
        .iter()
        .filter(|e| e.enabled)
        .map(|e| e.name.as_str())
        .collect();
    let connected = catalog
        .handlers
        .iter()
        .filter(|h| !h.signals.is_empty())
        .count();
    let mut summary = format!(
        "configuration OK ({origin}): {} enabled ({}), {}, {} connected, {}",
        plural(enabled.len(), "extension"),
        if enabled.is_empty() {
            "none".to_owned()
        } else {
            enabled.join(", ")
        },
        plural(catalog.signals.len(), "signal"),
        plural(connected, "handler"),
        plural(catalog.filters.len(), "filter"),
    );
    if warnings > 0 {
        summary.push_str(&format!(", {} (see above)", plural(warnings, "warning")));
    }
    print_stdout(&format!("{summary}\n"))
}

/// Prints every error and warning of `validation` on stderr, then a verdict when there are errors.
fn report_problems(validation: &coordinator::Validation, origin: &str) {
    for e in &validation.errors {
        eprintln!("error: {origin}: {e}");
    }
    for w in &validation.warnings {
        eprintln!("warning: {origin}: {w}");
    }
    let (errors, warnings) = (validation.errors.len(), validation.warnings.len());
    if errors > 0 {
        eprintln!(
            "{origin}: {}, {}; the coordinator cannot start until every error is fixed",
            plural(errors, "error"),
            plural(warnings, "warning")
        );
    }
}

/// A runtime for the commands that do I/O.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Turns a server error into the exit status, printing every configuration problem.
fn server_failure(error: ServeError, origin: &str) -> anyhow::Result<ExitCode> {
    match error {
        ServeError::Invalid(validation) => {
            report_problems(&validation, origin);
            Ok(ExitCode::from(EXIT_FAILURE))
        }
        other => Err(anyhow!(other)),
    }
}

/// `coordinator serve`.
fn serve(loaded: Loaded, extensions: Extensions) -> anyhow::Result<ExitCode> {
    let Loaded { config, origin } = loaded;
    match runtime()?.block_on(server::serve(config, extensions, &origin)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => server_failure(e, &origin),
    }
}

/// `coordinator worker`.
fn worker(loaded: Loaded, extensions: Extensions) -> anyhow::Result<ExitCode> {
    let Loaded { config, origin } = loaded;
    match runtime()?.block_on(server::worker(config, extensions, &origin)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => server_failure(e, &origin),
    }
}

/// `coordinator tasks list|show|retry|cancel`.
fn tasks(
    loaded: Loaded,
    extensions: Extensions,
    command: TasksCommand,
) -> anyhow::Result<ExitCode> {
    let Loaded { config, origin } = loaded;
    let runtime = runtime()?;
    let coordinator = match runtime.block_on(server::open(config, extensions)) {
        Ok(coordinator) => coordinator,
        Err(e) => return server_failure(e, &origin),
    };
    let store = coordinator
        .store()
        .cloned()
        .ok_or_else(|| anyhow!("the coordinator was built without its store"))?;
    let outcome = runtime.block_on(async {
        let text = match command {
            TasksCommand::List(args) => list_tasks(&coordinator, &store, &args).await?,
            TasksCommand::Show { id, json } => {
                let task = store.get_task(id).await?.ok_or_else(|| {
                    anyhow!("no task {id}; `coordinator tasks list` lists the tasks")
                })?;
                let task = redacted(&coordinator, task);
                if json {
                    self::json(&task)?
                } else {
                    queue::details(&task)
                }
            }
            TasksCommand::Retry { id } => {
                store.retry_task(id).await?;
                format!("task {id} is queued again, to run now with its attempts reset\n")
            }
            TasksCommand::Cancel { id } => {
                store.cancel_task(id).await?;
                format!("task {id} is cancelled: it will not run again\n")
            }
        };
        anyhow::Ok(text)
    });
    runtime.block_on(store.close());
    Ok(print_stdout(&outcome?))
}

async fn list_tasks(
    coordinator: &Coordinator,
    store: &coordinator::Store,
    args: &TasksListArgs,
) -> anyhow::Result<String> {
    let query = coordinator::task::TaskQuery {
        state: args.state,
        queue: args.queue.clone(),
        task: args.task.clone(),
        before: args.before,
        limit: args.limit,
    };
    let mut page = store.list_tasks(&query).await?;
    page.items = page
        .items
        .into_iter()
        .map(|task| redacted(coordinator, task))
        .collect();
    if args.json {
        json(&page)
    } else {
        Ok(queue::table(&page))
    }
}

/// The task with the personal data of its payload masked.
fn redacted(
    coordinator: &Coordinator,
    mut task: coordinator::task::StoredTask,
) -> coordinator::task::StoredTask {
    task.payload = coordinator.redact_task_payload(&task);
    task
}

/// `coordinator migrate [--dry-run]`.
fn migrate(loaded: Loaded, extensions: Extensions, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let Loaded { config, origin } = loaded;
    let outcome = match runtime()?.block_on(server::migrate(config, extensions, args.dry_run)) {
        Ok(outcome) => outcome,
        Err(e) => return server_failure(e, &origin),
    };
    let text = match outcome {
        MigrateOutcome::Applied(applied) if applied.is_empty() => {
            "the database is up to date: no migration to apply\n".to_owned()
        }
        MigrateOutcome::Applied(applied) => {
            let mut text = format!("applied {}:\n", plural(applied.len(), "migration"));
            for m in applied {
                text.push_str(&format!("  {}/{} {}\n", m.extension, m.version, m.name));
            }
            text
        }
        MigrateOutcome::Pending(pending) if pending.is_empty() => {
            "the database is up to date: no migration to apply\n".to_owned()
        }
        MigrateOutcome::Pending(pending) => {
            let mut text = format!(
                "{} to apply (dry run: nothing was applied; run `coordinator migrate` to apply them):\n",
                plural(pending.len(), "migration")
            );
            for m in pending {
                text.push_str(&format!("  {}/{} {}\n", m.extension, m.version, m.name));
            }
            text
        }
    };
    Ok(print_stdout(&text))
}

/// Builds the coordinator for a command that documents it; on invalid configuration prints every
/// problem and returns the exit status.
fn catalog(loaded: Loaded, extensions: Extensions) -> Result<Catalog, ExitCode> {
    let Loaded { config, origin } = loaded;
    match server::builder(&config, extensions).build() {
        Ok(coordinator) => {
            for w in coordinator.warnings() {
                warn!("{origin}: {w}");
            }
            Ok(coordinator.catalog())
        }
        Err(e) => {
            eprint!("error: {origin}: {e}");
            eprintln!("fix the configuration (`coordinator check` lists the same problems)");
            Err(ExitCode::from(EXIT_FAILURE))
        }
    }
}

/// `coordinator signals [--json]` and `coordinator signals show NAME`.
fn signals(loaded: Loaded, extensions: Extensions, args: SignalsArgs) -> anyhow::Result<ExitCode> {
    let origin = loaded.origin.clone();
    let catalog = match catalog(loaded, extensions) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match args.command {
        None if args.json => Ok(print_stdout(&json(&catalog)?)),
        None => {
            if catalog.signals.is_empty() {
                eprintln!(
                    "{origin}: no enabled extension declares a signal; enable extensions in [extensions] enabled"
                );
            }
            Ok(print_stdout(&catalog.signals_table()))
        }
        Some(SignalsCommand::Show {
            name,
            json: as_json,
        }) => {
            let Some(entry) = catalog.signal(&name) else {
                return Err(anyhow!(unknown_signal(&catalog, &name, &origin)));
            };
            let text = if as_json {
                self::json(entry)?
            } else {
                catalog.signal_details(&name).unwrap_or_default()
            };
            Ok(print_stdout(&text))
        }
    }
}

/// What to say about a signal name the catalog does not have.
fn unknown_signal(catalog: &Catalog, name: &str, origin: &str) -> String {
    let mut message = format!("unknown signal \"{name}\": no enabled extension declares it");
    let extension = name.split_once('.').map_or(name, |(e, _)| e);
    if let Some(close) = catalog.closest_signal(name) {
        message.push_str(&format!("; did you mean \"{close}\"?"));
    } else if let Some(e) = catalog.extensions.iter().find(|e| e.name == extension) {
        if e.enabled {
            let of_extension: Vec<String> = catalog
                .signals
                .iter()
                .filter(|s| s.extension == extension)
                .map(|s| format!("\"{}\"", s.name))
                .collect();
            if !of_extension.is_empty() {
                message.push_str(&format!(
                    "; did you mean one of the signals of extension \"{extension}\": {}?",
                    of_extension.join(", ")
                ));
            }
        } else {
            message.push_str(&format!(
                "; extension \"{extension}\" is compiled in but not enabled by {origin}: add it to [extensions] enabled"
            ));
        }
    }
    message.push_str("\nrun `coordinator signals` to list every signal");
    message
}

/// `coordinator graph`.
fn graph(loaded: Loaded, extensions: Extensions, format: GraphFormat) -> anyhow::Result<ExitCode> {
    Ok(match catalog(loaded, extensions) {
        Ok(c) => print_stdout(&c.graph(format)),
        Err(code) => code,
    })
}

/// `coordinator docs [--output PATH]`.
fn docs(loaded: Loaded, extensions: Extensions, args: &DocsArgs) -> anyhow::Result<ExitCode> {
    let catalog = match catalog(loaded, extensions) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let markdown = catalog.markdown();
    match &args.output {
        None => Ok(print_stdout(&markdown)),
        Some(path) => {
            write_file(path, &markdown)?;
            eprintln!(
                "wrote {}: {}, {}, {}",
                path.display(),
                plural(catalog.signals.len(), "signal"),
                plural(catalog.handlers.len(), "handler"),
                plural(catalog.filters.len(), "filter")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| {
        format!(
            "cannot write the documentation to {}; check that its directory exists and is writable, or omit --output to print it",
            path.display()
        )
    })
}

fn json<T: coordinator::prelude::Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut text = serde_json::to_string_pretty(value).context("cannot render as JSON")?;
    text.push('\n');
    Ok(text)
}

/// Writes a command's result. A closed pipe (`coordinator docs | head`) is not an error.
fn print_stdout(text: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// `1 signal`, `3 signals`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_counts() {
        assert_eq!(plural(1, "signal"), "1 signal");
        assert_eq!(plural(0, "filter"), "0 filters");
    }
}
