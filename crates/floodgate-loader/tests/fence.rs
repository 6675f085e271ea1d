//! The checkpoint fence against a real server. A killed floodgate's last COMMIT can still be
//! executing on the server when the resumed run starts; the resumed run must not read the
//! checkpoints before that commit lands (it would find rows no checkpoint accounts for, or
//! load the chunk twice), and nothing the earlier run sends later may commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use floodgate_conn::{CheckpointSchema, ConnectOptions};
use floodgate_loader::checkpoint::{self, Checkpoints, Ledger};
use floodgate_sandbox::{Sandbox, SandboxOptions};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

async fn connect(server: &Sandbox) -> Conn {
    let options = ConnectOptions {
        socket: Some(server.socket().to_path_buf()),
        user: Some(server.user().into()),
        password: server.password().map(Into::into),
        ..Default::default()
    };
    floodgate_conn::connect(&options, &[]).await.unwrap()
}

fn ledger(token: &str) -> Ledger {
    Ledger { schema: CheckpointSchema::default(), backup: "backup-1".into(), token: token.into() }
}

/// A run starts (or resumes) the restore: takes it over and records it.
async fn start_run(conn: &mut Conn, token: &str) -> Checkpoints {
    let checkpoints = Checkpoints::read(conn, ledger(token)).await.unwrap();
    checkpoint::begin(conn, &checkpoints, "dump.sql").await.unwrap();
    checkpoints
}

async fn count(conn: &mut Conn) -> u64 {
    conn.query_first("SELECT COUNT(*) FROM d.t").await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_waits_for_the_earlier_runs_last_commit_and_fences_it_off() {
    let server = Sandbox::start(&SandboxOptions::default()).unwrap();
    let mut setup = connect(&server).await;
    setup.query_drop("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY) ENGINE=InnoDB").await.unwrap();

    // The earlier run: chunk 0 commits; chunk 1 has its checkpoint row in (holding the fence's
    // shared lock) but not yet its COMMIT, as when the client died with it in flight.
    let mut earlier = connect(&server).await;
    start_run(&mut earlier, "earlier").await;
    earlier.query_drop("START TRANSACTION; INSERT INTO d.t VALUES (1)").await.unwrap();
    checkpoint::commit_chunk(&mut earlier, &ledger("earlier"), ("d", "t", 0), 1, None).await.unwrap();
    let mut in_flight = connect(&server).await;
    in_flight.query_drop("START TRANSACTION; INSERT INTO d.t VALUES (2)").await.unwrap();
    in_flight
        .query_drop(
            "SELECT token FROM floodgate.runs WHERE backup = 'backup-1' LOCK IN SHARE MODE; \
             INSERT INTO floodgate.chunks VALUES ('backup-1', 'd', 't', 1, 1, NULL, NOW(6))",
        )
        .await
        .unwrap();

    // The resumed run cannot read the checkpoints until that commit is through.
    let resumed = tokio::spawn({
        let mut conn = connect(&server).await;
        async move {
            let checkpoints = start_run(&mut conn, "resumed").await;
            (conn, checkpoints)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!resumed.is_finished(), "the resumed run read the checkpoints under an uncommitted chunk");
    in_flight.query_drop("COMMIT").await.unwrap();
    let (mut conn, checkpoints) = resumed.await.unwrap();
    assert_eq!(checkpoints.table_chunks("d", "t"), (2, 2), "both committed chunks are seen");
    assert_eq!(count(&mut conn).await, 2);

    // The earlier run is fenced off: its next chunk is refused and leaves no row.
    earlier.query_drop("START TRANSACTION; INSERT INTO d.t VALUES (3)").await.unwrap();
    let refused = checkpoint::commit_chunk(&mut earlier, &ledger("earlier"), ("d", "t", 2), 1, None).await;
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("another floodgate run has taken this restore over"), "{message}");
    earlier.query_drop("ROLLBACK").await.unwrap();
    assert_eq!(count(&mut conn).await, 2);

    // The run that owns it commits as before.
    conn.query_drop("START TRANSACTION; INSERT INTO d.t VALUES (4)").await.unwrap();
    checkpoint::commit_chunk(&mut conn, &ledger("resumed"), ("d", "t", 2), 1, None).await.unwrap();
    assert_eq!(count(&mut conn).await, 3);
}
