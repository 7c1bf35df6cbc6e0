//! `coordinator tasks`: the operator's view of the durable task queue, as text. The rendering is
//! pure (tasks in, text out); [`crate::commands`] reads the store and prints.

use std::fmt::Write as _;

use coordinator::task::{StoredTask, TaskAttempt, TaskPage, TaskState};

use coordinator::time::format_time_ms;

/// The longest error shown in a table cell; longer ones end with `…`.
const ERROR_WIDTH: usize = 60;

/// The page as a table: id, task, queue, state, attempts/max, when (next run for pending tasks,
/// end for finished ones), and the last error shortened. Ends with how to read on when the page
/// is full.
pub fn table(page: &TaskPage) -> String {
    if page.items.is_empty() {
        return "no task matches\n".to_owned();
    }
    let rows: Vec<[String; 7]> = page
        .items
        .iter()
        .map(|t| {
            [
                t.id.to_string(),
                t.task.clone(),
                t.queue.clone(),
                t.state.to_string(),
                format!("{}/{}", t.attempts, t.max_attempts),
                when(t),
                t.last_error
                    .first()
                    .map_or_else(String::new, |e| shorten(&one_line(e), ERROR_WIDTH)),
            ]
        })
        .collect();
    let header = [
        "ID",
        "TASK",
        "QUEUE",
        "STATE",
        "ATTEMPTS",
        "WHEN",
        "LAST ERROR",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ");
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    if let Some(next) = page.next_before {
        let _ = writeln!(
            text,
            "{} tasks shown; older ones with --before {next}",
            page.items.len()
        );
    }
    text
}

/// When a task runs next (pending) or when it ended (finished).
fn when(task: &StoredTask) -> String {
    match (task.state, task.finished_at_ms) {
        (TaskState::Running, _) => match task.lease_until_ms {
            Some(until) => format!("leased until {}", format_time_ms(until)),
            None => "running".to_owned(),
        },
        (TaskState::Queued | TaskState::Retrying, _) => {
            format!("runs at {}", format_time_ms(task.run_at_ms))
        }
        (_, Some(at)) => format!("{} at {}", task.state, format_time_ms(at)),
        (_, None) => format!("updated {}", format_time_ms(task.updated_at_ms)),
    }
}

/// One task in full: what it is, where it is, and every attempt with its error chain.
pub fn details(task: &StoredTask) -> String {
    let mut out = format!("task {}\n", task.id);
    {
        let mut field = |name: &str, value: String| {
            let _ = writeln!(out, "  {:<14}{value}", format!("{name}:"));
        };
        field("name", task.task.clone());
        field("queue", task.queue.clone());
        field(
            "state",
            format!(
                "{} ({} of {} attempts made)",
                task.state, task.attempts, task.max_attempts
            ),
        );
        field("enqueued", format_time_ms(task.created_at_ms));
        match task.state {
            TaskState::Queued | TaskState::Retrying => {
                field("runs at", format_time_ms(task.run_at_ms));
            }
            TaskState::Running => {
                if let Some(owner) = &task.lease_owner {
                    field("worker", owner.clone());
                }
                if let Some(until) = task.lease_until_ms {
                    field("leased until", format_time_ms(until));
                }
            }
            TaskState::Succeeded | TaskState::Dead | TaskState::Cancelled => {}
        }
        if let Some(at) = task.finished_at_ms {
            field("finished", format_time_ms(at));
        }
        if let Some(key) = &task.unique_key {
            field("unique key", key.clone());
        }
        if let Some(origin) = task.origin_dispatch {
            field(
                "origin",
                format!("dispatch {origin} (GET /api/v1/dispatches/{origin})"),
            );
        }
        if let Some(result) = &task.result {
            field("result", result.clone());
        }
        field("payload", task.payload.to_string());
        if !task.last_error.is_empty() {
            field("last error", chain(&task.last_error, 16));
        }
    }
    if task.history.is_empty() {
        out.push_str("attempts: none yet\n");
    } else {
        out.push_str("attempts:\n");
        for attempt in &task.history {
            out.push_str(&attempt_line(attempt));
        }
    }
    match task.state {
        TaskState::Dead | TaskState::Cancelled => {
            let _ = writeln!(
                out,
                "retry it with `coordinator tasks retry {}` once the cause is fixed",
                task.id
            );
        }
        TaskState::Queued | TaskState::Retrying | TaskState::Running => {
            let _ = writeln!(out, "cancel it with `coordinator tasks cancel {}`", task.id);
        }
        TaskState::Succeeded => {}
    }
    out
}

fn attempt_line(attempt: &TaskAttempt) -> String {
    let mut line = format!(
        "  #{:<3} {:<10} worker {}, started {}",
        attempt.attempt,
        attempt.status.as_str(),
        attempt.worker,
        format_time_ms(attempt.started_at_ms)
    );
    if let Some(end) = attempt.finished_at_ms {
        let _ = write!(
            line,
            ", took {} ms",
            end.saturating_sub(attempt.started_at_ms)
        );
    }
    line.push('\n');
    if !attempt.error_chain.is_empty() {
        let _ = writeln!(line, "        {}", chain(&attempt.error_chain, 8));
    }
    line
}

/// An error chain, outermost first, one cause per line, indented by `indent` after the first.
fn chain(errors: &[String], indent: usize) -> String {
    let pad = " ".repeat(indent);
    errors
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i == 0 {
                e.clone()
            } else {
                format!("\n{pad}caused by: {e}")
            }
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(width.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use coordinator::task::AttemptStatus;
    use uuid::Uuid;

    use super::*;

    fn task(state: TaskState) -> StoredTask {
        StoredTask {
            id: Uuid::parse_str("0190b5c4-8f5e-7cc0-a2b4-3f1e0d6c9a10").unwrap(),
            task: "demo.enroll_in_course".into(),
            queue: "default".into(),
            payload: serde_json::json!({"lms_user_id": 7}),
            state,
            attempts: 2,
            max_attempts: 2,
            run_at_ms: 1_718_900_000_000,
            lease_owner: None,
            lease_until_ms: None,
            unique_key: None,
            origin_dispatch: None,
            result: None,
            last_error: vec![
                "could not enroll the learner in course-v1:edX+DemoX+2024 because the LMS answered 503 Service Unavailable".into(),
                "connection reset".into(),
            ],
            created_at_ms: 1_718_899_000_000,
            updated_at_ms: 1_718_900_000_000,
            finished_at_ms: Some(1_718_900_000_000),
            history: vec![
                TaskAttempt {
                    attempt: 1,
                    worker: "w-1".into(),
                    started_at_ms: 1_718_899_000_000,
                    finished_at_ms: None,
                    status: AttemptStatus::Lost,
                    error_chain: vec!["the worker stopped renewing its lease".into()],
                },
                TaskAttempt {
                    attempt: 2,
                    worker: "w-2".into(),
                    started_at_ms: 1_718_899_999_000,
                    finished_at_ms: Some(1_718_900_000_000),
                    status: AttemptStatus::Error,
                    error_chain: vec!["LMS answered 503".into(), "connection reset".into()],
                },
            ],
        }
    }

    #[test]
    fn the_table_shortens_errors_and_says_how_to_read_on() {
        let page = TaskPage {
            items: vec![task(TaskState::Dead)],
            next_before: Some(task(TaskState::Dead).id),
        };
        let text = table(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID "), "{text}");
        assert!(lines[0].contains("ATTEMPTS"), "{text}");
        let row = lines[1];
        assert!(row.contains("demo.enroll_in_course"), "{text}");
        assert!(row.contains("dead  "), "{text}");
        assert!(row.contains("2/2"), "{text}");
        assert!(row.contains("dead at 2024-06-20T16:13:20.000Z"), "{text}");
        assert!(row.ends_with('…'), "{text}");
        assert!(!row.contains("connection reset"), "{text}");
        assert!(
            lines[2].contains("--before 0190b5c4-8f5e-7cc0-a2b4-3f1e0d6c9a10"),
            "{text}"
        );
        assert_eq!(
            table(&TaskPage {
                items: Vec::new(),
                next_before: None
            }),
            "no task matches\n"
        );
    }

    #[test]
    fn details_show_every_attempt_with_its_error_chain() {
        let text = details(&task(TaskState::Dead));
        assert!(
            text.starts_with("task 0190b5c4-8f5e-7cc0-a2b4-3f1e0d6c9a10\n"),
            "{text}"
        );
        assert!(
            text.contains("state:        dead (2 of 2 attempts made)"),
            "{text}"
        );
        assert!(text.contains("#1   lost       worker w-1"), "{text}");
        assert!(text.contains("#2   error      worker w-2"), "{text}");
        assert!(text.contains("took 1000 ms"), "{text}");
        assert!(
            text.contains("LMS answered 503\n                caused by: connection reset")
                || text.contains("LMS answered 503\n        caused by: connection reset"),
            "{text}"
        );
        assert!(text.contains("coordinator tasks retry 0190b5c4"), "{text}");
        let queued = details(&StoredTask {
            history: Vec::new(),
            ..task(TaskState::Queued)
        });
        assert!(queued.contains("attempts: none yet"), "{queued}");
        assert!(queued.contains("coordinator tasks cancel"), "{queued}");
    }
}
