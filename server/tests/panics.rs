//! A panic never leaves a request unanswered (issue 9): a panic in a
//! handler, and a panic in a task spawned while rendering a page (where a
//! page's resources load), both answer 500 with a request id on the real
//! router and its middleware; the server goes on serving. The routes that
//! panic exist only in this test.

mod common;

use axum::{
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use common::{TestDb, TestServer, PATIENCE};
use latchkey::{
    panics::{render_or_500, RenderWatch},
    state::AppState,
};
use leptos::prelude::{provide_context, ArcAsyncDerived, Owner};
use reqwest::{header, StatusCode};

async fn panics_in_the_handler() -> &'static str {
    panic!("test: a handler panicked")
}

/// What a page render does: a resource loads in a task spawned under the
/// render's owner (with the render's watch in context), and the render waits
/// for its value.
async fn panics_in_a_render_task() -> Response {
    let watch = RenderWatch::default();
    let owner = Owner::new();
    let resource = owner.with(|| {
        provide_context(watch.clone());
        ArcAsyncDerived::new(|| async {
            // As a query does: not ready at the first poll (which Leptos makes
            // at once, in the handler), so the rest runs in the spawned task.
            tokio::task::yield_now().await;
            if true {
                panic!("test: a resource panicked");
            }
            1_u8
        })
    });
    render_or_500(watch, async move {
        let value = resource.await;
        drop(owner);
        value.to_string().into_response()
    })
    .await
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/test/panic-in-handler", get(panics_in_the_handler))
        .route("/test/panic-in-render-task", get(panics_in_a_render_task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_answers_500_with_a_request_id() {
    let t = TestDb::sqlite().await;
    let server = TestServer::start_with_routes(&t.db, routes()).await;
    // A hang fails the test instead of hanging it.
    let http = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    for path in ["/test/panic-in-handler", "/test/panic-in-render-task"] {
        let res = http
            .get(server.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer: {e}"));
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(res.headers()[header::X_FRAME_OPTIONS], "DENY", "{path}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Something went wrong"), "{path}: {body}");
        // The id is what the log line carries: something people can quote.
        let id = body
            .split("request id: <code>")
            .nth(1)
            .and_then(|rest| rest.split("</code>").next())
            .unwrap_or_else(|| panic!("{path}: no request id in {body}"));
        assert!(
            id.len() >= 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{path}: {id:?}"
        );
        assert!(
            !body.contains("test: a"),
            "{path}: the panic message stays in the log"
        );
    }
    // The server goes on serving.
    let res = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    drop(server);
    t.cleanup().await;
}
