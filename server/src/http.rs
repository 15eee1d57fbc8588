//! The axum router: Leptos pages and server functions, the sign-in and
//! sign-out form handlers, health, and the middleware every request passes
//! (browser session, cross-site request refusal, a panic answered with 500,
//! security headers).

use std::sync::Arc;

use app::{domain::web_session::WebSessionStore, paths, shell, App};
use axum::{
    body::Body,
    extract::{DefaultBodyLimit, State},
    http::{header, HeaderValue, Request, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use leptos::prelude::*;
use leptos_axum::{
    generate_route_list, handle_server_fns_with_context, AxumRouteListing, LeptosRoutes,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};

use crate::{
    callers::{Browser, Caller, TrustedProxies},
    panics,
    state::{AppState, Parts, Shared},
    web,
};

/// Name of the browser-session cookie over http (a development or test issuer).
pub const SESSION_COOKIE: &str = "latchkey_session";

/// Name of the browser-session cookie over https: the `__Host-` prefix makes
/// browsers accept it only `Secure`, for `/`, from this host, without a
/// `Domain` — no other host of the domain can set or shadow it (RFC 6265bis §4.1.3.2).
pub const SECURE_SESSION_COOKIE: &str = "__Host-latchkey_session";

/// Largest request body accepted anywhere (forms, server functions).
const MAX_BODY: usize = 64 * 1024;

/// Builds the whole application.
pub fn router(parts: Parts) -> Router {
    router_with(parts, Router::new())
}

/// [`router`] with `extra` routes under the same middleware: tests add routes
/// that panic, to prove that every route answers a panic with a 500.
pub fn router_with(parts: Parts, extra: Router<AppState>) -> Router {
    build(parts, extra).0
}

/// [`router_with`], and the state its handlers share (what `/metrics` reads).
pub fn build(parts: Parts, extra: Router<AppState>) -> (Router, AppState) {
    let Parts {
        db,
        keys,
        revoked,
        config,
        session_store,
        usage,
        upstreams,
    } = parts;
    // Before leptos_axum sets up plain tokio (generate_route_list does).
    panics::init_executor();
    let leptos_options = LeptosOptions::builder()
        .output_name("latchkey")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .build();
    let routes = route_list();
    let secure = config.secure_cookies();
    let trusted_proxies = config.trusted_proxies.clone();
    let limits = crate::rate_limit::Limits::new(config.rate_limits);
    let timed = config.metrics_addr.is_some();
    let upstream_settings = app::api::ssr::UpstreamSettings::new(
        upstreams.sealer().clone(),
        crate::upstream::redirect_uri(&config.issuer),
    );
    let state = AppState::new(Shared {
        leptos_options: Arc::new(leptos_options),
        db,
        keys,
        revoked,
        resource_servers: Default::default(),
        issuance_facts: Default::default(),
        refreshes: Default::default(),
        usage,
        config: Arc::new(config),
        routes: Arc::new(routes.clone()),
        upstreams,
        upstream_settings,
        limits: limits.clone(),
    });
    let upstream_callback = Router::new()
        .route(paths::UPSTREAM_CALLBACK, get(crate::upstream::callback))
        .route("/signin/upstream/{id}", post(crate::upstream::start))
        .route_layer(axum::middleware::from_fn_with_state(
            (limits.clone(), crate::rate_limit::Shape::Page),
            crate::rate_limit::per_ip,
        ));

    let sessions = SessionManagerLayer::new(session_store)
        .with_name(if secure {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        })
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::days(7)));

    let router = Router::new()
        .merge(extra)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(crate::oauth::router(&limits))
        .merge(crate::admin_api::router(&limits))
        .route(paths::SIGN_IN, post(web::sign_in))
        .route(paths::SIGN_OUT, post(web::sign_out))
        .merge(upstream_callback)
        .route(paths::ADMIN_AUDIT_EXPORT, get(web::audit_export))
        .route(
            "/api/{*fn_name}",
            get(server_fn_handler).post(server_fn_handler),
        )
        .leptos_routes_with_handler(routes, get(page_handler))
        .fallback(fallback)
        .layer(middleware(&state, sessions, trusted_proxies, secure))
        .with_state(state.clone());
    // Outermost: a request is timed with everything it passes through.
    let router = if timed {
        router.layer(axum::middleware::from_fn(crate::metrics::track))
    } else {
        router
    };
    (router, state)
}

/// The middleware every request passes, outermost first, as one layer:
/// each `Router::layer` call would wrap every route in a box of its own,
/// cloned and dropped once per layer on every request (a fifth of an
/// introspection's instructions with the dozen layers here).
///
/// Security headers (HSTS over https only; `X-Frame-Options`,
/// `frame-ancestors`, `nosniff`, `Referrer-Policy`) and the content security
/// policy outside the panic catcher, so that its 500 page gets them too;
/// the panic catcher outside the session and cross-site layers, so that a
/// panic there is caught as well.
fn middleware(
    state: &AppState,
    sessions: SessionManagerLayer<WebSessionStore>,
    trusted_proxies: TrustedProxies,
    secure: bool,
) -> impl tower::Layer<
    axum::routing::Route,
    Service: tower::Service<
        Request<Body>,
        Response = Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
                 + Send
                 + Sync
                 + 'static,
> + Clone
       + Send
       + Sync
       + 'static {
    let hsts = secure.then(crate::csp::hsts);
    tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            move |_: &Response| hsts.clone(),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(axum::middleware::from_fn(
            crate::csp::content_security_policy,
        ))
        .layer(panics::catch_panics())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::Extension(trusted_proxies))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            web::refuse_cross_site,
        ))
}

/// Liveness: `200 ok` while the process serves HTTP at all. It reads
/// nothing: a database outage is for `/readyz` to report (restarting the
/// process would not bring the database back).
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness for a load balancer, as JSON
/// `{"ready", "database", "signing_keys", "revocations"}`: `200` with
/// `ready: true` when the database answers, a signing key of every algorithm
/// is loaded, and the revoked sets are loaded and fresh (this instance read
/// the revocation log within `instances::FRESH_FOR`, or does so now); `503`
/// naming what is not — a stale instance refuses every token until it caught
/// up, so send traffic elsewhere.
async fn readyz(State(state): State<AppState>) -> Response {
    let database = match state.db.ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            "unavailable"
        }
    };
    let signing_keys = if app::domain::keys::SigningAlg::ALL
        .iter()
        .all(|alg| state.keys.signing_kid(*alg).is_some())
    {
        "ok"
    } else {
        "missing"
    };
    let revocations = if database == "ok" && state.revoked.ensure_fresh(&state.db).await {
        "ok"
    } else {
        "stale"
    };
    let ready = [database, signing_keys, revocations] == ["ok"; 3];
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({
            "ready": ready,
            "database": database,
            "signing_keys": signing_keys,
            "revocations": revocations,
        })),
    )
        .into_response()
}

/// Server functions, with the database and the caller in context.
async fn server_fn_handler(
    State(state): State<AppState>,
    caller: Caller,
    request: Request<Body>,
) -> Response {
    let (db, revoked) = (state.db.clone(), state.revoked.clone());
    let upstream_settings = state.upstream_settings.clone();
    let response = handle_server_fns_with_context(
        move || {
            provide_context(db.clone());
            provide_context(revoked.clone());
            provide_context(caller.0.clone());
            provide_context(upstream_settings.clone());
        },
        request,
    )
    .await
    .into_response();
    unreadable_arguments_are_400(response).await
}

/// server_fn answers arguments it cannot read (`page=abc`, a number beyond
/// `i64`, a missing field) with 500 and a body `Args|…` or `MissingArg|…`.
/// They are the caller's mistake: 400, the body kept.
async fn unreadable_arguments_are_400(response: Response) -> Response {
    use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(e) => return web::internal_error("reading a server function's error", &e),
    };
    if body.starts_with(b"Args|") || body.starts_with(b"MissingArg|") {
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, Body::from(body))
}

/// The app's routes, generated once per process. Generating them suppresses
/// resource loading in the whole process for a moment (leptos_server's
/// `SuppressResourceLoad`), and a resource first polled meanwhile — a page
/// another server in this process is rendering — never loads, so that page
/// never finishes (leptos-rs/leptos#4773; the tests start many servers in one
/// process, and `pages_finish_while_other_servers_start` hung).
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// Renders a page. Every page but sign-in needs a live sign-in: without one the
/// browser goes to sign-in with `next` set to come back here.
async fn page_handler(
    State(state): State<AppState>,
    browser: Browser,
    request: Request<Body>,
) -> Response {
    let path = request.uri().path();
    // The admin console is for admins only (its server functions check too).
    if path != paths::SIGN_IN {
        if let Err(refused) = browser
            .signed_in_or_refused(&state, request.uri(), paths::is_admin(path))
            .await
        {
            return refused;
        }
    }
    let caller = browser.from;
    let form_action = if path == paths::SIGN_IN {
        sign_in_form_action(&state, request.uri()).await
    } else {
        crate::csp::FormAction::default()
    };
    let nonce = crate::csp::Nonce::new();
    let (db, revoked) = (state.db.clone(), state.revoked.clone());
    let upstream_settings = state.upstream_settings.clone();
    let options = state.leptos_options.clone();
    // The page's resources load in spawned tasks; one that panics rings this.
    let watch = panics::RenderWatch::default();
    let render = leptos_axum::render_route_with_context(
        (*state.routes).clone(),
        {
            let watch = watch.clone();
            let nonce = nonce.clone();
            move || {
                provide_context(db.clone());
                provide_context(revoked.clone());
                provide_context(caller.clone());
                provide_context(upstream_settings.clone());
                provide_context(watch.clone());
                provide_context(nonce.0.clone());
            }
        },
        move || shell((*options).clone()),
    );
    let mut response = panics::render_or_500(watch, async move {
        render(State(state), request).await.into_response()
    })
    .await;
    response.extensions_mut().insert(form_action);
    response.extensions_mut().insert(nonce);
    response
}

/// Where the sign-in page's forms may end (`csp::FormAction`): an upstream
/// provider (its authorization endpoint, as discovered, or its issuer), and
/// — when it signs in for an authorization request that needs no consent
/// any more — the app's redirect URI, if registered for that client.
async fn sign_in_form_action(state: &AppState, uri: &axum::http::Uri) -> crate::csp::FormAction {
    let mut targets: Vec<String> = state.upstreams.authorization_targets(&state.db).await;
    let next = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(next) = next.filter(|n| n.starts_with(crate::oauth::AUTHORIZE)) {
        let query = next.split_once('?').map_or("", |(_, q)| q);
        let param = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if let (Some(client_id), Some(redirect_uri)) = (param("client_id"), param("redirect_uri")) {
            match app::domain::clients::find_client(&state.db, &client_id).await {
                Ok(Some(client))
                    if app::domain::clients::redirect_uri_matches(
                        &client.redirect_uris,
                        &redirect_uri,
                    ) =>
                {
                    targets.push(redirect_uri);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sign-in page: reading the client failed"),
            }
        }
    }
    crate::csp::FormAction::of(targets.iter().map(String::as_str))
}

/// Static files, and the not-found page (rendered with a nonce of its own).
async fn fallback(
    uri: axum::http::Uri,
    State(state): State<AppState>,
    request: Request<Body>,
) -> Response {
    let nonce = crate::csp::Nonce::new();
    let handler = leptos_axum::file_and_error_handler_with_context::<AppState, _>(
        {
            let nonce = nonce.0.clone();
            move || provide_context(nonce.clone())
        },
        shell,
    );
    let mut response = handler(uri, State(state), request).await;
    response.extensions_mut().insert(nonce);
    response
}
