//! A real relying party against the server: the `openidconnect` crate (as an
//! app in the wild would use it) discovers the provider, sends a user through
//! the authorization code flow with PKCE, verifies the ID token against the
//! JWKS (signature, iss, aud, exp, nonce, at_hash), reads userinfo, refreshes
//! with rotation (and sees reuse detection kill the family), revokes (RFC 7009)
//! and logs out (RP-Initiated Logout), over real HTTP, on both backends — so
//! the server's wire format is what a standard client library expects, not
//! only what our hand-written tests send.

mod common;

use app::domain::clients::ClientKind;
use common::{flow::*, TestDb, TestServer};
use openidconnect::{
    core::{
        CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
        CoreClientAuthMethod, CoreErrorResponseType, CoreGrantType, CoreIdTokenClaims,
        CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
        CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreSubjectIdentifierType,
        CoreTokenResponse, CoreUserInfoClaims,
    },
    AccessToken, AccessTokenHash, AdditionalProviderMetadata, AsyncHttpClient, AuthType,
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, HttpRequest, IntrospectionUrl, IssuerUrl, LogoutProviderMetadata, LogoutRequest,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PostLogoutRedirectUrl, ProviderMetadata,
    RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope, StandardErrorResponse,
    TokenResponse,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

on_both_backends!(
    openidconnect_client_runs_the_whole_flow,
    public_client_with_pkce_and_logout,
);

/// The RFC 7009 / RFC 7662 endpoints of the discovery document, which the
/// crate's core metadata does not model (RFC 8414 §2 names them).
#[derive(Clone, Debug, Deserialize, Serialize)]
struct TokenEndpoints {
    revocation_endpoint: RevocationUrl,
    introspection_endpoint: IntrospectionUrl,
}
impl AdditionalProviderMetadata for TokenEndpoints {}

/// Discovery metadata with `end_session_endpoint` (the crate's RP-Initiated
/// Logout support) and the revocation and introspection endpoints.
type Metadata = ProviderMetadata<
    LogoutProviderMetadata<TokenEndpoints>,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A client built from discovery (authorization, token and userinfo
/// endpoints) with the revocation endpoint set.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The relying party's back-channel HTTP client (no redirects, as the crate asks).
fn rp_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn discover(server: &TestServer, http: &reqwest::Client) -> Metadata {
    let metadata = Metadata::discover_async(IssuerUrl::new(server.base.clone()).unwrap(), http)
        .await
        .expect("discovery and JWKS");
    assert_eq!(metadata.issuer().as_str(), server.base);
    assert!(
        !metadata.jwks().keys().is_empty(),
        "the JWKS was fetched and parsed"
    );
    let extra = metadata.additional_metadata();
    assert_eq!(
        extra.end_session_endpoint.as_ref().map(|u| u.as_str()),
        Some(server.url("/oauth/logout").as_str())
    );
    assert_eq!(
        extra.additional_metadata.revocation_endpoint.as_str(),
        server.url("/oauth/revoke")
    );
    assert_eq!(
        extra.additional_metadata.introspection_endpoint.as_str(),
        server.url("/oauth/introspect")
    );
    metadata
}

/// The crate's client for `app`, from the discovered metadata.
fn relying_party(metadata: &Metadata, app: &App) -> Rp {
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(app.client_id.clone()),
        app.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(app.redirect_uri.clone()).unwrap());
    // A public client authenticates with its client_id in the body and no secret
    // (token_endpoint_auth_method "none"); a confidential one with HTTP Basic.
    let client = match app.secret {
        Some(_) => client.set_auth_type(AuthType::BasicAuth),
        None => client.set_auth_type(AuthType::RequestBody),
    };
    // RFC 7009 §2: "Clients MUST verify that the URL is an HTTPS URL", and the
    // crate refuses anything else. The test server speaks plain HTTP on
    // loopback, so the client is given the discovered endpoint as https://
    // and reaches it through `tls_terminator`.
    let mut revocation = metadata
        .additional_metadata()
        .additional_metadata
        .revocation_endpoint
        .url()
        .clone();
    revocation.set_scheme("https").unwrap();
    client.set_revocation_url(RevocationUrl::from_url(revocation))
}

/// A stand-in for a TLS-terminating proxy in front of the test server: the
/// crate's HTTPS request to this server goes out as plain HTTP.
fn tls_terminator(
    http: &reqwest::Client,
    server: &TestServer,
) -> impl for<'c> AsyncHttpClient<'c, Error = openidconnect::HttpClientError<reqwest::Error>> {
    let http = http.clone();
    let plain = server.base.clone();
    move |mut request: HttpRequest| {
        let http = http.clone();
        let plain = plain.clone();
        async move {
            let uri = request.uri().to_string();
            let rest = uri.strip_prefix("https://").expect("an HTTPS request");
            let to = format!("http://{rest}");
            assert!(to.starts_with(&plain), "{uri} is the test server");
            *request.uri_mut() = to.parse().unwrap();
            http.call(request).await
        }
    }
}

/// One sign-in through the crate: the authorization URL it builds, the
/// browser part done by `person` (consent answered when `consent` says it must
/// be asked), the code exchanged with the PKCE verifier.
async fn sign_in_through(
    client: &Rp,
    http: &reqwest::Client,
    person: &Person,
    server: &TestServer,
    consent: bool,
) -> (CoreTokenResponse, Nonce) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let pairs = query_of(url.as_str());
    assert_eq!(pairs["code_challenge_method"], "S256");
    assert_eq!(pairs["scope"], "openid profile offline_access");

    let res = person.http.get(url.as_str()).send().await.unwrap();
    let res = if consent {
        assert_eq!(res.status(), StatusCode::OK, "the consent page");
        let html = res.text().await.unwrap();
        decide(&person.http, server, &request_id(&html), "allow").await
    } else {
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "consent remembered: straight back with a code"
        );
        res
    };
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = location(&res);
    let redirect_uri = client.redirect_uri().unwrap().as_str();
    assert!(back.starts_with(&format!("{redirect_uri}?")), "{back}");
    let q = query_of(&back);
    assert_eq!(
        q["state"],
        *csrf.secret(),
        "the crate's CSRF state comes back"
    );
    assert_eq!(q["iss"], server.base, "RFC 9207 iss");

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .expect("the code exchange");
    (tokens, nonce)
}

/// Verifies the ID token of `tokens` with the crate (JWKS signature, iss, aud,
/// exp, nonce) and its `at_hash` against the access token.
fn verified_claims(client: &Rp, tokens: &CoreTokenResponse, nonce: &Nonce) -> CoreIdTokenClaims {
    let id_token = tokens.id_token().expect("an ID token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, nonce)
        .expect("a valid ID token")
        .clone();
    assert!(
        id_token
            .claims(&verifier, &Nonce::new("another nonce".into()))
            .is_err(),
        "the nonce is checked"
    );
    let expected = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(actual, *expected, "at_hash matches the access token");
    claims
}

/// The RFC 6749 §5.2 `invalid_grant` error, as the crate reports it.
fn assert_invalid_grant<T: std::fmt::Debug, E: std::error::Error + 'static>(
    result: Result<T, RequestTokenError<E, StandardErrorResponse<CoreErrorResponseType>>>,
) {
    match result {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), CoreErrorResponseType::InvalidGrant, "{e:?}")
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
}

async fn refresh_with(
    client: &Rp,
    http: &reqwest::Client,
    token: &RefreshToken,
) -> Result<
    CoreTokenResponse,
    RequestTokenError<
        openidconnect::HttpClientError<reqwest::Error>,
        StandardErrorResponse<CoreErrorResponseType>,
    >,
> {
    client
        .exchange_refresh_token(token)
        .unwrap()
        .request_async(http)
        .await
}

fn refresh_token_of(tokens: &CoreTokenResponse) -> RefreshToken {
    tokens.refresh_token().expect("a refresh token").clone()
}

fn secret_of(token: &AccessToken) -> &str {
    token.secret()
}

async fn openidconnect_client_runs_the_whole_flow(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &[]).await;
    let alice = person(&t, &server, "alice").await;
    let http = rp_http();
    let metadata = discover(&server, &http).await;
    let client = relying_party(&metadata, &notes);

    // The code flow; the ID token verified by the crate.
    let (tokens, nonce) = sign_in_through(&client, &http, &alice, &server, true).await;
    let claims = verified_claims(&client, &tokens, &nonce);
    assert_eq!(claims.subject().as_str(), alice.user_id);
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert_eq!(claims.issuer().as_str(), server.base);
    assert_eq!(
        claims
            .audiences()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        [notes.client_id.as_str()]
    );
    assert!(is_active(&server, &notes, secret_of(tokens.access_token())).await);

    // Userinfo, with the subject the crate expects checked by the crate too.
    let info: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), alice.user_id);
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));

    // Refresh: a new refresh token each time.
    let r1 = refresh_token_of(&tokens);
    let refreshed = refresh_with(&client, &http, &r1).await.expect("a refresh");
    let r2 = refresh_token_of(&refreshed);
    assert_ne!(r1.secret(), r2.secret(), "rotated");
    let a2 = secret_of(refreshed.access_token());
    assert_ne!(a2, secret_of(tokens.access_token()));
    assert!(is_active(&server, &notes, a2).await);
    // The old one again: invalid_grant, and the whole family is revoked.
    assert_invalid_grant(refresh_with(&client, &http, &r1).await);
    assert!(
        !is_active(&server, &notes, a2).await,
        "reuse kills the family"
    );
    assert_invalid_grant(refresh_with(&client, &http, &r2).await);

    // Again: consent is remembered; then the app revokes its refresh token.
    let (tokens, nonce) = sign_in_through(&client, &http, &alice, &server, false).await;
    let claims = verified_claims(&client, &tokens, &nonce);
    assert_eq!(claims.subject().as_str(), alice.user_id);
    let a3 = secret_of(tokens.access_token());
    assert!(is_active(&server, &notes, a3).await);
    let r3 = refresh_token_of(&tokens);
    client
        .revoke_token(CoreRevocableToken::from(&r3))
        .expect("an HTTPS revocation endpoint")
        .request_async(&tls_terminator(&http, &server))
        .await
        .expect("RFC 7009 revocation");
    assert!(
        !is_active(&server, &notes, a3).await,
        "revoking the refresh token ends its family"
    );
    assert_invalid_grant(refresh_with(&client, &http, &r3).await);
    t.cleanup().await;
}

async fn public_client_with_pkce_and_logout(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let spa = app(&t, "Spa", ClientKind::Public, &[]).await;
    assert!(spa.secret.is_none());
    let alice = person(&t, &server, "alice").await;
    let http = rp_http();
    let metadata = discover(&server, &http).await;
    let client = relying_party(&metadata, &spa);

    let (tokens, nonce) = sign_in_through(&client, &http, &alice, &server, true).await;
    let claims = verified_claims(&client, &tokens, &nonce);
    assert_eq!(claims.subject().as_str(), alice.user_id);
    let access = secret_of(tokens.access_token());
    // A public client cannot introspect (RFC 7662 is for confidential
    // clients): userinfo tells whether its access token works.
    assert!(userinfo_takes(&server, access).await);
    let refresh = refresh_token_of(&tokens);

    // RP-initiated logout, the URL built by the crate, followed by the browser.
    let end_session = metadata
        .additional_metadata()
        .end_session_endpoint
        .clone()
        .expect("end_session_endpoint");
    let state = CsrfToken::new_random();
    let url = LogoutRequest::from(end_session)
        .set_id_token_hint(tokens.id_token().unwrap())
        .set_client_id(ClientId::new(spa.client_id.clone()))
        .set_post_logout_redirect_uri(
            PostLogoutRedirectUrl::new(spa.post_logout_uri.clone()).unwrap(),
        )
        .set_state(state.clone())
        .http_get_url();
    let res = alice.http.get(url.as_str()).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let back = location(&res);
    assert!(
        back.starts_with(&format!("{}?", spa.post_logout_uri)),
        "{back}"
    );
    assert_eq!(query_of(&back)["state"], *state.secret());

    // The sign-in's tokens are revoked.
    assert!(!userinfo_takes(&server, access).await);
    assert_invalid_grant(refresh_with(&client, &http, &refresh).await);
    t.cleanup().await;
}
