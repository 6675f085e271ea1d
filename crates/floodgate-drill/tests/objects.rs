//! The post-data object check against a real server: present objects pass, and a missing
//! one of each kind fails as an integrity problem that names it (the end-to-end tests only
//! see backups whose objects all arrive).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use floodgate_drill::{objects_present, ExpectedObjects};
use floodgate_format::objects::ObjectKind;
use floodgate_format::Classify;
use floodgate_sandbox::{Sandbox, SandboxOptions};
use mysql_async::prelude::Queryable;

#[test]
fn present_objects_pass_and_missing_ones_are_named() {
    let server = Sandbox::start(&SandboxOptions { buffer_pool: "64M".into(), ..Default::default() }).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let target = floodgate_conn::ConnectOptions {
            socket: Some(server.socket().to_path_buf()),
            user: Some(server.user().to_string()),
            ..Default::default()
        };
        let mut conn = floodgate_conn::connect(&target, &[]).await.unwrap();
        conn.query_drop(
            "CREATE DATABASE d; USE d; CREATE TABLE t (a INT); CREATE VIEW v AS SELECT a FROM t; \
             CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = NEW.a; \
             CREATE PROCEDURE p() SELECT 1; CREATE FUNCTION f() RETURNS INT RETURN 1; \
             CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO SELECT 1",
        )
        .await
        .unwrap();
        let mut expected = ExpectedObjects::default();
        for (kind, name) in [
            (ObjectKind::View, "v"),
            (ObjectKind::Trigger, "tr"),
            (ObjectKind::Procedure, "p"),
            (ObjectKind::Function, "f"),
            (ObjectKind::Event, "e"),
        ] {
            expected.insert(kind, "d", name);
        }
        let check = objects_present(&mut conn, &expected).await.unwrap();
        assert!(check.passed, "{check:?}");
        // A procedure named like the function is not the function; a table is not a view.
        let mut missing = ExpectedObjects::default();
        missing.insert(ObjectKind::View, "d", "t");
        missing.insert(ObjectKind::Function, "d", "p");
        missing.insert(ObjectKind::Trigger, "d", "gone");
        missing.insert(ObjectKind::Event, "other", "e");
        missing.insert(ObjectKind::View, "d", "v");
        let err = objects_present(&mut conn, &missing).await.unwrap_err();
        assert_eq!(err.exit_code(), 3);
        let text = err.to_string();
        for name in ["view `d`.`t`", "function `d`.`p`", "trigger `d`.`gone`", "event `other`.`e`"] {
            assert!(text.contains(name), "{name} in {text}");
        }
        assert!(!text.contains("`d`.`v`"), "{text}");
    });
}
