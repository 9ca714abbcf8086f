//! The request transaction's lifecycle on the pool: a request cancelled at any point (a client
//! that hangs up) leaves no connection inside a transaction for the next request to inherit.

use std::time::Duration;

use futures_util::FutureExt as _;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use ward::db;

use crate::helpers::{AUTHENTICATOR_PASSWORD, TestDb, caller};

/// Connections of the request role left inside a transaction, as the server sees them.
async fn idle_in_transaction(owner: &sea_orm::DatabaseConnection) -> i64 {
    let row = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "select count(*) as n from pg_stat_activity \
             where datname = current_database() and usename = 'authenticator' \
               and state like 'idle in transaction%'",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// Waits until the pool's one connection is idle in it again (a dropped transaction's task
/// has finished and sqlx's release ping has gone through).
async fn back_in_the_pool(pool: &sea_orm::DatabaseConnection) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pool.get_postgres_connection_pool().num_idle() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the connection never came back to the pool");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_begin_cancelled_on_the_wire_leaves_no_transaction_behind() {
    let test_db = TestDb::new().await;
    let owner = test_db.owner().await;
    // One connection, so the next transaction gets the very connection the cancelled one had.
    let pool = db::connect(&test_db.app_url(), 1).await.unwrap();
    let manager = caller("manager@demo.test");

    let mut cancelled = 0;
    for _ in 0..100 {
        // With the connection idle in the pool, a single poll takes it and sends `BEGIN`, then
        // waits for the answer: dropping the future there is a request cancelled between the
        // two. (Often the answer is already there within the one poll; that attempt is not a
        // cancellation.)
        back_in_the_pool(&pool).await;
        if db::begin(&pool, &manager, true).now_or_never().is_none() {
            cancelled += 1;
        }
        // Once the connection is back in the pool, the server must be outside any transaction.
        back_in_the_pool(&pool).await;
        assert_eq!(idle_in_transaction(&owner).await, 0, "a pooled connection stayed inside a transaction");

        // The next transaction on that connection starts now, not inside the abandoned one.
        let asked = chrono::Utc::now();
        let tx = db::begin(&pool, &manager, true).await.unwrap();
        let row = tx
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select now() >= $1 as fresh, current_setting('request.jwt.claims', true) as claims",
                [asked.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(row.try_get::<bool>("", "fresh").unwrap(), "the transaction began before this request");
        assert!(row.try_get::<String>("", "claims").unwrap().contains("manager@demo.test"));
        tx.commit().await.unwrap();
        if cancelled == 5 {
            break;
        }
    }
    assert!(cancelled > 0, "BEGIN was answered within a single poll every time: nothing was cancelled");

    // A transaction dropped while open (cancelled after `BEGIN`) is rolled back, too.
    {
        let tx = db::begin(&pool, &manager, false).await.unwrap();
        tx.execute_unprepared("select 1").await.unwrap();
    }
    back_in_the_pool(&pool).await;
    assert_eq!(idle_in_transaction(&owner).await, 0);
}

#[tokio::test]
async fn a_commit_cancelled_on_the_wire_still_ends_the_transaction_exactly_once() {
    let test_db = TestDb::new().await;
    let owner = test_db.owner().await;
    let pool = db::connect(&test_db.app_url(), 1).await.unwrap();
    let manager = ward::demo::person("manager@demo.test").unwrap();
    let mut cancelled = 0;
    for attempt in 0..100 {
        back_in_the_pool(&pool).await;
        let session = db::RlsSession::new(pool.clone(), caller("manager@demo.test"));
        session.allow_writes();
        let name = format!("Committed {attempt}");
        session
            .run(async |tx| {
                tx.execute_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "update profiles set display_name = $1 where id = $2",
                    [name.clone().into(), manager.profile_id.into()],
                ))
                .await
                .map_err(db::SessionError::from)
            })
            .await
            .unwrap();
        // One poll sends COMMIT and waits for its answer; dropping the future there is a
        // client hanging up while its request commits.
        if session.finish(true).now_or_never().is_none() {
            cancelled += 1;
        }
        drop(session);
        back_in_the_pool(&pool).await;
        assert_eq!(idle_in_transaction(&owner).await, 0, "a pooled connection stayed inside a transaction");
        // Asked to commit, it committed, cancelled or not.
        let row = owner
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select display_name from profiles where id = $1",
                [manager.profile_id.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "display_name").unwrap(), name);
        if cancelled == 5 {
            break;
        }
    }
    assert!(cancelled > 0, "COMMIT was answered within a single poll every time: nothing was cancelled");
    // Nothing sent a second COMMIT or ROLLBACK to a connection outside its transaction.
    let warnings = crate::helpers::log_lines(&test_db.name, "there is no transaction in progress");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn reads_racing_with_outside_work_never_find_the_session_ended() {
    let test_db = TestDb::new().await;
    let pool = db::connect(&test_db.app_url(), 2).await.unwrap();
    let session = db::RlsSession::new(pool, caller("manager@demo.test"));
    // Resolvers of one page: reads and storage calls (which end a clean transaction) at once.
    let reads = (0..200).map(|n| {
        let session = session.clone();
        async move {
            if n % 3 == 0 {
                session.outside(tokio::task::yield_now()).await.map(|_| ())
            } else {
                session
                    .run(async |tx| {
                        tx.execute_unprepared("select 1").await.map_err(db::SessionError::from)?;
                        Ok::<_, db::SessionError>(())
                    })
                    .await
            }
        }
    });
    let failures: Vec<_> = futures_util::future::join_all(reads).await.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{} failed, e.g. {:?}", failures.len(), failures.first());
    session.finish(true).await.unwrap();
}

/// `BEGIN` and the claims go to PostgreSQL as one simple query with the claims written in as a
/// literal; claims carry text from outside (a person's name in `user_metadata`). Whatever the
/// text, PostgreSQL must see exactly the claims, as `authenticated`, and nothing else run.
#[tokio::test]
async fn claims_with_quotes_and_backslashes_reach_postgres_exactly() {
    let test_db = TestDb::new().await;
    let pool = db::connect(&test_db.app_url(), 1).await.unwrap();
    let hostile = [
        "O'Brien",
        "'); set local role service_role; select ('",
        "\\'; set local role service_role; --",
        "$$; reset role; $$",
        "back\\slash \\\\ and \\x41 and \\u0041",
        "E'\\'' || current_user || ''",
        "line\nbreak\ttab and émoji 🚰",
    ];
    for name in hostile {
        let sub = uuid::Uuid::new_v4();
        let raw = serde_json::json!({
            "sub": sub, "role": "authenticated", "aud": "authenticated",
            "user_metadata": { "full_name": name }
        });
        let caller = ward::auth::Caller::User(ward::auth::UserClaims {
            sub,
            email: None,
            phone: None,
            exp: i64::MAX,
            raw: raw.clone(),
        });
        for read_only in [true, false] {
            let tx = db::begin(&pool, &caller, read_only).await.unwrap();
            let row = tx
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "select current_user::text as who, current_setting('request.jwt.claims') as claims, \
                            current_setting('transaction_read_only') as ro",
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row.try_get::<String>("", "who").unwrap(), "authenticated", "{name}");
            let seen: serde_json::Value = serde_json::from_str(&row.try_get::<String>("", "claims").unwrap()).unwrap();
            assert_eq!(seen, raw, "{name}");
            assert_eq!(row.try_get::<String>("", "ro").unwrap(), if read_only { "on" } else { "off" });
            tx.rollback().await.unwrap();
        }
    }
}

/// A read-only transaction's end, commit or rollback, is queued rather than awaited (it goes
/// out with the pool's check of the connection). The connection must still come back outside
/// any transaction, even from a transaction a failed statement aborted, and the next
/// transaction on it must see what others committed meanwhile.
#[tokio::test]
async fn a_read_only_end_leaves_the_connection_clean_for_the_next_request() {
    let test_db = TestDb::new().await;
    let owner = test_db.owner().await;
    let pool = db::connect(&test_db.app_url(), 1).await.unwrap();
    let manager = caller("manager@demo.test");
    let title = |tx: db::Tx, commit: bool| async move {
        let row = tx
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "select title from tickets where tracking_number = 'DEMO-2026-000001'",
            ))
            .await
            .unwrap();
        if commit {
            tx.commit().await.unwrap()
        } else {
            tx.rollback().await.unwrap()
        }
        row.map(|r| r.try_get::<String>("", "title").unwrap())
    };
    for (round, commit) in [(0, true), (1, false)] {
        let before = title(db::begin(&pool, &manager, true).await.unwrap(), commit).await;
        assert!(before.is_some(), "the manager sees the demo ticket");
        back_in_the_pool(&pool).await;
        assert_eq!(
            idle_in_transaction(&owner).await,
            0,
            "a read-only end (commit: {commit}) left the transaction open"
        );
        let changed = format!("Changed between requests {round}");
        owner
            .execute_unprepared(&format!(
                "update tickets set title = '{changed}' where tracking_number = 'DEMO-2026-000001'"
            ))
            .await
            .unwrap();
        let after = title(db::begin(&pool, &manager, true).await.unwrap(), commit).await;
        assert_eq!(after, Some(changed), "the next request ran in the old snapshot (commit: {commit})");
    }
    // A failed statement aborts the transaction; its rollback still leaves the connection clean.
    let tx = db::begin(&pool, &manager, true).await.unwrap();
    assert!(tx.execute_unprepared("select 1 / 0").await.is_err());
    tx.rollback().await.unwrap();
    back_in_the_pool(&pool).await;
    assert_eq!(idle_in_transaction(&owner).await, 0, "an aborted read-only transaction stayed open");
    assert!(title(db::begin(&pool, &manager, true).await.unwrap(), true).await.is_some());
}

/// If the server refuses the preamble (here: `authenticator` may no longer become
/// `authenticated`), `begin` fails, and the connection is closed rather than returned to the
/// pool inside a failed transaction, where the next request would inherit it.
#[tokio::test]
async fn a_refused_preamble_fails_the_request_and_poisons_no_connection() {
    let test_db = TestDb::new().await;
    let owner = test_db.owner().await;
    // A login role of this test's own: role membership is cluster-wide, so revoking it from
    // `authenticator` would refuse the tests running beside this one too.
    let login = format!("refused_{}", test_db.name);
    owner
        .execute_unprepared(&format!(
            "create role \"{login}\" login noinherit password '{AUTHENTICATOR_PASSWORD}'; \
             grant authenticated to \"{login}\""
        ))
        .await
        .unwrap();
    let url = test_db.app_url().expose().replacen("//authenticator:", &format!("//{login}:"), 1);
    let pool = db::connect(&ward::config::Secret::new(url), 1).await.unwrap();
    owner.execute_unprepared(&format!("revoke authenticated from \"{login}\"")).await.unwrap();
    let refused = db::begin(&pool, &caller("manager@demo.test"), true).await;
    assert!(refused.is_err(), "the preamble should have been refused");
    owner.execute_unprepared(&format!("grant authenticated to \"{login}\"")).await.unwrap();
    let tx = db::begin(&pool, &caller("manager@demo.test"), true).await.unwrap();
    let row = tx
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "select current_user::text as who"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<String>("", "who").unwrap(), "authenticated");
    tx.rollback().await.unwrap();
    assert_eq!(idle_in_transaction(&owner).await, 0);
}
