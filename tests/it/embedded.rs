//! The embedded cluster on its own data directory: start, stop, restart with the data kept,
//! and recovery after its server is killed with SIGKILL.

use std::process::Command;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use ward::config::Secret;
use ward::db::embedded::{EmbeddedCluster, EmbeddedOptions};

use crate::helpers::scratch_dir;

const PASSWORD: &str = "embedded-test";

fn options(dir: &std::path::Path) -> EmbeddedOptions {
    EmbeddedOptions {
        data_dir: dir.join("pg"),
        bin_dir: None,
        superuser_password: PASSWORD.into(),
        ephemeral: false,
        settings: Vec::new(),
    }
}

async fn count_rows(cluster: &EmbeddedCluster) -> i64 {
    let db = ward::db::connect(&Secret::new(cluster.url("postgres", PASSWORD, "postgres")), 1).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "select count(*) as n from kept"))
        .await
        .unwrap()
        .unwrap();
    let n = row.try_get::<i64>("", "n").unwrap();
    db.close().await.unwrap();
    n
}

fn running_postmasters(data_dir: &std::path::Path) -> usize {
    let needle = data_dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|cmd| {
            let cmd = String::from_utf8_lossy(cmd).replace('\0', " ");
            cmd.contains("postgres") && cmd.contains(" -D ") && cmd.contains(&needle) && !cmd.contains("pg_ctl")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn start_stop_restart_and_recover_from_sigkill() {
    let dir = scratch_dir("embedded");
    let _ = std::fs::remove_dir_all(&dir);
    let opts = options(&dir);

    // First start: initdb, then a working server.
    let started = std::time::Instant::now();
    let cluster = tokio::task::block_in_place(|| EmbeddedCluster::start(&opts)).unwrap();
    let cold_start = started.elapsed();
    assert!(cold_start.as_secs() < 20, "cold start took {cold_start:?}");
    let db = ward::db::connect(&Secret::new(cluster.url("postgres", PASSWORD, "postgres")), 1).await.unwrap();
    db.execute_unprepared("create table kept (n int); insert into kept values (1), (2)").await.unwrap();
    db.close().await.unwrap();
    let data_dir = cluster.data_dir().to_path_buf();
    tokio::task::block_in_place(|| cluster.stop()).unwrap();
    assert_eq!(running_postmasters(&data_dir), 0, "stop left a server running");

    // Restart on the same data directory: no initdb, the data is there.
    let cluster = tokio::task::block_in_place(|| EmbeddedCluster::start(&opts)).unwrap();
    assert_eq!(count_rows(&cluster).await, 2);

    // Kill the server outright; the next start recovers and the data survives.
    let pid = cluster.postmaster_pid().expect("postmaster.pid");
    let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    drop(cluster);
    for _ in 0..50 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let cluster = tokio::task::block_in_place(|| EmbeddedCluster::start(&opts)).unwrap();
    assert_eq!(count_rows(&cluster).await, 2);
    tokio::task::block_in_place(|| cluster.stop()).unwrap();
    assert_eq!(running_postmasters(&data_dir), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_orphaned_by_a_killed_owner_is_replaced() {
    let dir = scratch_dir("orphan");
    let _ = std::fs::remove_dir_all(&dir);
    let opts = options(&dir);
    let first = tokio::task::block_in_place(|| EmbeddedCluster::start(&opts)).unwrap();
    let first_pid = first.postmaster_pid().unwrap();
    // Leak the handle, as a killed ward would (its watchdog is then still waiting): the next
    // start finds a live server on the data directory, stops it and starts its own.
    std::mem::forget(first);
    let second = tokio::task::block_in_place(|| EmbeddedCluster::start(&opts)).unwrap();
    let second_pid = second.postmaster_pid().unwrap();
    assert_ne!(first_pid, second_pid);
    let db = ward::db::connect(&Secret::new(second.url("postgres", PASSWORD, "postgres")), 1).await.unwrap();
    db.execute_unprepared("select 1").await.unwrap();
    db.close().await.unwrap();
    let data_dir = second.data_dir().to_path_buf();
    tokio::task::block_in_place(|| second.stop()).unwrap();
    assert_eq!(running_postmasters(&data_dir), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_binaries_name_the_fix() {
    let dir = scratch_dir("nobin");
    let err = EmbeddedCluster::start(&EmbeddedOptions { bin_dir: Some(dir.join("no-such-bin")), ..options(&dir) })
        .unwrap_err()
        .to_string();
    assert!(err.contains("apt-get install postgresql") && err.contains("DATABASE_URL"), "{err}");
}
