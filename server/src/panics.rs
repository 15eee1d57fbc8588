//! What a panic becomes: a 500 page carrying a request id, with the panic
//! logged under that id — never a connection left without an answer.
//!
//! A panic can happen in two places, and each needs its own net:
//!
//! - in a handler's own future (a protocol endpoint, a server function, a
//!   form post): [`catch_panics`], tower-http's `CatchPanicLayer`, turns it
//!   into the 500;
//! - in a task that Leptos spawns while rendering a page (every `Resource`
//!   fetches in one): the handler would wait forever for a value that never
//!   comes. [`init_executor`] installs Leptos's task executor (tokio, as
//!   leptos_axum would) with each task guarded: a task that panics tells the
//!   page it was spawned for through its [`RenderWatch`], and
//!   [`render_or_500`] answers 500 instead of waiting.

use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex},
};

use any_spawner::{CustomExecutor, Executor, PinnedFuture, PinnedLocalFuture};
use axum::response::Response;
use futures_util::FutureExt;
use leptos::prelude::use_context;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;

use crate::web;

/// The text of a panic payload (`panic!("...")` carries a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    web::internal_error("handling a request (panic)", &panic_message(&*payload))
}

/// The layer that answers a panicking handler with `web::internal_error`'s
/// 500 page (a fresh request id, shown and logged with the panic message).
pub fn catch_panics() -> CatchPanicLayer<fn(Box<dyn Any + Send + 'static>) -> Response> {
    CatchPanicLayer::custom(panic_response as fn(Box<dyn Any + Send + 'static>) -> Response)
}

/// One page render's alarm: set by a task spawned for that render when it
/// panics. Provided as Leptos context, so a task finds the render it belongs to.
#[derive(Clone, Default)]
pub struct RenderWatch(Arc<WatchInner>);

#[derive(Default)]
struct WatchInner {
    rang: Notify,
    message: Mutex<Option<String>>,
}

impl RenderWatch {
    fn panicked(&self, message: String) {
        if let Ok(mut first) = self.0.message.lock() {
            first.get_or_insert(message);
        }
        // Stores a permit when nobody waits yet: the alarm is never missed.
        self.0.rang.notify_one();
    }

    async fn rung(&self) -> String {
        self.0.rang.notified().await;
        self.0
            .message
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .unwrap_or_default()
    }
}

/// Runs a page render; a panic in any task spawned for it (under `watch`)
/// answers 500 with a request id at once instead of waiting for the render.
pub async fn render_or_500(watch: RenderWatch, render: impl Future<Output = Response>) -> Response {
    tokio::select! {
        response = render => response,
        message = watch.rung() => web::internal_error("rendering a page (panic in a task)", &message),
    }
}

/// Tokio, as leptos_axum sets it up, with every spawned task guarded: a panic
/// is caught and reported to the [`RenderWatch`] of the render that spawned it.
struct GuardedTokio;

impl CustomExecutor for GuardedTokio {
    fn spawn(&self, task: PinnedFuture<()>) {
        // Called where the task is created, under the render's reactive owner.
        let watch = use_context::<RenderWatch>();
        tokio::spawn(async move {
            if let Err(payload) = AssertUnwindSafe(task).catch_unwind().await {
                let message = panic_message(&*payload);
                match &watch {
                    Some(watch) => watch.panicked(message),
                    None => tracing::error!(panic = %message, "a background task panicked"),
                }
            }
        });
    }

    fn spawn_local(&self, task: PinnedLocalFuture<()>) {
        tokio::task::spawn_local(task);
    }

    fn poll_local(&self) {}
}

/// Installs [`GuardedTokio`] as Leptos's executor, once per process. Must run
/// before anything of leptos_axum (which would install plain tokio); `router`
/// calls it first.
pub fn init_executor() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if Executor::init_custom_executor(GuardedTokio).is_err() {
            tracing::warn!(
                "the Leptos executor was set up before Latchkey's: a panic while rendering a page \
                 would leave that request unanswered"
            );
        }
    });
}
