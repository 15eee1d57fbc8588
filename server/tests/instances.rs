//! Several real Latchkey processes on one database, as operators run them.
//!
//! Two `latchkey serve` processes share one SQLite file (PostgreSQL
//! instances are covered in-process by `flows.rs`, through LISTEN/NOTIFY):
//! a revocation at one is refused at the other once that one has re-read the
//! revocations (its periodic reload; SQLite has no notifications).

use std::time::{Duration, Instant};

mod common;

use app::domain::Db;
use common::{
    flow::{cc_token, is_active, service},
    process::{empty_site, start},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocation_reaches_another_process_on_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let site = empty_site(dir.path());
    let db_url = format!("sqlite://{}/latchkey.db", dir.path().display());

    let db = Db::connect(&db_url).await.unwrap();
    db.migrate().await.unwrap();
    let service = service(&db, "Service", &[]).await;
    db.close().await;

    // A first, so it alone creates the signing keys; B shares A's issuer.
    let a = start(dir.path(), &db_url, &site, None).await;
    let b = start(dir.path(), &db_url, &site, Some(&a.base)).await;

    let access = &cc_token(&a, &service).await;
    assert!(is_active(&b, &service, access).await);

    let res = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", a.base))
        .basic_auth(&service.client_id, service.secret.as_deref())
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!is_active(&a, &service, access).await);
    // B re-reads the revocations every 5 s: three periods is a generous bound
    // for "it does arrive" (this is not a speed measurement).
    let revoked_at = Instant::now();
    while is_active(&b, &service, access).await {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(15),
            "the other process never learned of the revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
