//! Poison-proof workers, on SQLite and PostgreSQL: an outcome the database refuses never blocks
//! the others. The refusal is real: a trigger on the tasks table refuses any result holding
//! "poison", as a database refuses a value it cannot store.

#[macro_use]
mod support;

use std::time::Duration;

use coordinator::config::{ConfigDuration, WorkerConfig};
use coordinator::prelude::*;
use coordinator::store::Store;
use coordinator::task::TaskState;
use coordinator::{Coordinator, Worker};
use support::TestDb;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Echo {
    pub text: String,
}

static ECHO: Task<Echo> = Task::new("lab.echo", "Returns its text.");

fn lab() -> impl Extension {
    coordinator::testing::extension("lab", |ext| {
        ext.task(&ECHO, |_: TaskContext, e: Echo| async move {
            Ok::<_, TaskError>(e.text)
        });
    })
}

/// Makes the database refuse to store a task result that holds "poison".
async fn refuse_poison(store: &Store) {
    match store.backend() {
        "sqlite" => {
            let mut tx = store.begin().await.unwrap();
            let conn = tx
                .backend_tx::<coordinator_sqlite::Tx>()
                .unwrap()
                .connection();
            sqlx::raw_sql(
                "CREATE TRIGGER refuse_poison BEFORE UPDATE ON coordinator_tasks \
                 WHEN NEW.result LIKE '%poison%' \
                 BEGIN SELECT RAISE(ABORT, 'poison refused'); END;",
            )
            .execute(&mut *conn)
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        _ => {
            let pool = coordinator_postgres::pool(store).unwrap();
            sqlx::raw_sql(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.result LIKE '%poison%' THEN \
                 RAISE EXCEPTION 'poison refused' USING ERRCODE = 'check_violation'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER refuse_poison BEFORE UPDATE ON coordinator_tasks \
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

async fn an_outcome_the_database_refuses_kills_its_task_and_the_others_are_recorded(db: &TestDb) {
    let store = db.migrated().await;
    refuse_poison(store).await;
    let coordinator = Coordinator::builder()
        .extension(lab())
        .store(store.clone())
        .build()
        .unwrap();
    let ctx = coordinator.context("lab");
    let mut ids = Vec::new();
    for i in 0..20 {
        let text = if i == 7 {
            "poison".to_owned()
        } else {
            format!("fine {i}")
        };
        ids.push(ctx.enqueue(&ECHO, Echo { text }).await.unwrap());
    }
    let worker = Worker::new(
        coordinator.clone(),
        WorkerConfig {
            concurrency: 8,
            poll_interval: ConfigDuration(Duration::from_millis(10)),
            ..WorkerConfig::default()
        },
    );
    let health = worker.health();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut finished = 0;
        for id in &ids {
            let state = store.get_task(*id).await.unwrap().unwrap().state;
            if matches!(state, TaskState::Succeeded | TaskState::Dead) {
                finished += 1;
            }
        }
        if finished == ids.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{finished} of {} tasks finished: an outcome the database refused blocked the others",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(health.check().is_ok(), "{:?}", health.check());
    // Enqueued after the poison: still run and recorded.
    let later = ctx
        .enqueue(
            &ECHO,
            Echo {
                text: "later".into(),
            },
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.get_task(later).await.unwrap().unwrap().state != TaskState::Succeeded {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a later task never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops at once: nothing waits to be recorded")
        .unwrap();

    for (i, id) in ids.iter().enumerate() {
        let task = store.get_task(*id).await.unwrap().unwrap();
        if i == 7 {
            assert_eq!(task.state, TaskState::Dead, "{task:#?}");
            let chain = task.last_error.join(": ");
            assert!(
                chain.contains("the attempt's outcome could not be stored, so the task is dead"),
                "{chain}"
            );
            assert!(chain.contains("poison refused"), "{chain}");
        } else {
            assert_eq!(task.state, TaskState::Succeeded, "{task:#?}");
            assert_eq!(task.result.as_deref(), Some(format!("fine {i}").as_str()));
        }
    }
}

async fn text_with_nul_bytes_is_stored_escaped_on_every_backend(db: &TestDb) {
    let store = db.migrated().await;
    let coordinator = Coordinator::builder()
        .extension(lab())
        .store(store.clone())
        .build()
        .unwrap();
    let t = coordinator.context("lab");
    let id = t
        .enqueue(
            &ECHO,
            Echo {
                text: "pay\u{0}load".into(),
            },
        )
        .await
        .unwrap();
    let claimed = store
        .claim_tasks("w", &[], 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, id);
    let outcome = coordinator::task::TaskOutcome::Succeeded(Some("re\u{0}sult".into()));
    assert!(store.record_outcome(id, "w", 1, &outcome).await.unwrap());
    let task = store.get_task(id).await.unwrap().unwrap();
    assert_eq!(task.state, TaskState::Succeeded);
    let result = task.result.unwrap();
    assert!(!result.contains('\u{0}'), "{result:?}");
    assert!(
        result.starts_with("re") && result.ends_with("sult"),
        "{result:?}"
    );
}

on_each_backend!(
    multi_thread:
    an_outcome_the_database_refuses_kills_its_task_and_the_others_are_recorded,
    text_with_nul_bytes_is_stored_escaped_on_every_backend,
);
