//! The request headers Latchkey interprets, each read by one parser, so that
//! case, whitespace, parameters and malformed values are treated alike at
//! every endpoint:
//!
//! | header | parser | read by |
//! | --- | --- | --- |
//! | `Authorization: Basic` | [`basic_credentials`] | client authentication (token, introspection, revocation) |
//! | `Authorization: Bearer` | [`bearer_token`] | userinfo, the admin API |
//! | `Content-Type` | [`is_form_urlencoded`], [`is_json`] | the protocol endpoints' form bodies, the admin API's JSON bodies |
//! | `Origin` / `Referer`, `Host` | [`claimed_origin`], [`is_request_host`] | the cross-site check |
//!
//! The syntax is left to well-kept crates: `headers` (hyperium's typed
//! headers) for `Authorization` — the scheme is matched case-insensitively
//! (RFC 9110 §11.1) and may be followed by several spaces (§11.4) —
//! `mediatype` for media types (RFC 9110 §8.3.1, whitespace allowed on both
//! sides of `;`; the `mime` crate behind `headers::ContentType` refuses it
//! before), `url` (the WHATWG URL parser) for origins. What this module adds
//! is what those leave to the application:
//!
//! - telling a malformed `Basic` header from none at all: a client that tried
//!   Basic gets 401 with a Basic challenge (RFC 6749 §5.2), while no header
//!   leaves the other client authentication methods open;
//! - undoing the form-urlencoding of the client id and secret inside Basic
//!   (RFC 6749 §2.3.1), which `headers` does not know about;
//! - refusing a repeated `Authorization` (not a list field, RFC 9110 §5.3:
//!   which copy counts would be a guess; `headers` silently takes the first);
//! - comparing origins after normalisation (scheme and host case, default port).

use std::borrow::Cow;

use axum::http::{header, uri::Authority, HeaderMap, HeaderValue};
use headers::{
    authorization::{Basic, Bearer, Credentials},
    Authorization, HeaderMapExt,
};
use mediatype::{
    names::{x_::WWW_FORM_URLENCODED, APPLICATION, CHARSET, JSON},
    MediaType, ReadParams,
};
use url::{Origin, Url};

/// An `Authorization` header of the expected scheme that cannot be read; the
/// caller answers as for wrong credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Client credentials from `Authorization: Basic` (RFC 7617 §2), with the
/// form-urlencoding of RFC 6749 §2.3.1 undone. Debug never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub client_id: String,
    pub secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("client_id", &self.client_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The client credentials of `Authorization: Basic base64(id ":" secret)`,
/// `id` and `secret` each `application/x-www-form-urlencoded` (RFC 6749
/// §2.3.1) and UTF-8.
///
/// - `None`: no `Authorization` header, or one of another scheme (the caller
///   looks at its other authentication methods);
/// - `Some(Err(Malformed))`: the scheme is Basic in any case (`BASIC`,
///   `basic`) but what follows is not one or more spaces and padded base64 of
///   `id:secret`, or the credentials are not UTF-8 once unescaped; or the
///   request has more than one `Authorization` header;
/// - `Some(Ok(credentials))` otherwise.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Result<BasicCredentials, Malformed>> {
    let parsed = only_authorization(headers, Basic::SCHEME)?.and_then(|()| {
        let basic = headers
            .typed_get::<Authorization<Basic>>()
            .ok_or(Malformed)?;
        Ok(BasicCredentials {
            client_id: form_unescape(basic.username())?,
            secret: form_unescape(basic.password())?,
        })
    });
    Some(parsed)
}

/// Why a request has no Bearer token to check, in RFC 6750 §3.1 terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerRefusal {
    /// No `Authorization` header, or one of another scheme: no credentials.
    Missing,
    /// `Bearer` (in any case) without a token after spaces, or more than one
    /// `Authorization` header.
    Malformed,
}

impl BearerRefusal {
    /// The challenge's `error`: none when no credentials were sent (RFC 6750
    /// §3.1), `invalid_token` for malformed ones.
    pub fn error(self) -> Option<crate::oauth::error::ErrorCode> {
        match self {
            BearerRefusal::Missing => None,
            BearerRefusal::Malformed => Some(crate::oauth::error::ErrorCode::InvalidToken),
        }
    }

    /// For people.
    pub fn description(self) -> &'static str {
        match self {
            BearerRefusal::Missing => "a Bearer access token is required",
            BearerRefusal::Malformed => "the Authorization header is not `Bearer <token>`",
        }
    }
}

/// The access token of `Authorization: Bearer <token>` (RFC 6750 §2.1): the
/// scheme in any case, then one or more spaces. The token itself is checked
/// by whoever verifies it.
pub fn bearer_token(headers: &HeaderMap) -> Result<String, BearerRefusal> {
    match only_authorization(headers, Bearer::SCHEME) {
        None => Err(BearerRefusal::Missing),
        Some(Err(Malformed)) => Err(BearerRefusal::Malformed),
        Some(Ok(())) => headers
            .typed_get::<Authorization<Bearer>>()
            .map(|bearer| bearer.token().to_owned())
            .filter(|token| !token.is_empty())
            .ok_or(BearerRefusal::Malformed),
    }
}

/// Whether the request's one `Authorization` header names `scheme` (in any
/// case). `None`: no header, or one of another scheme. A repeated header is
/// malformed whatever its schemes: one of the copies might be this one.
fn only_authorization(headers: &HeaderMap, scheme: &str) -> Option<Result<(), Malformed>> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(Malformed));
    }
    // The scheme is the token before the first whitespace. Split on tabs too,
    // so that `Basic<TAB>...` counts as a malformed Basic header rather than
    // an unknown scheme (RFC 9110 §11.4 allows only spaces there).
    let named = first
        .as_bytes()
        .split(|b| matches!(b, b' ' | b'\t'))
        .next()
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme.as_bytes()));
    named.then_some(Ok(()))
}

/// Undoes `application/x-www-form-urlencoded` on one value: `+` is a space,
/// `%XX` a byte; the result must be UTF-8 (RFC 6749 Appendix B).
fn form_unescape(value: &str) -> Result<String, Malformed> {
    let spaced: Cow<str> = if value.contains('+') {
        Cow::Owned(value.replace('+', " "))
    } else {
        Cow::Borrowed(value)
    };
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| Malformed)
}

/// The body's media type (RFC 9110 §8.3.1), parsed from the one
/// `Content-Type` header and handed to `check`. `false`: no header, a repeated
/// one, or a value that is not a media type.
fn media_type_is(headers: &HeaderMap, check: impl Fn(&MediaType) -> bool) -> bool {
    let Some(Some(value)) = single(headers, header::CONTENT_TYPE) else {
        return false;
    };
    value
        .to_str()
        .ok()
        .and_then(|v| MediaType::parse(v.trim()).ok())
        .is_some_and(|m| check(&m))
}

/// Whether the body is `application/x-www-form-urlencoded` in UTF-8, as the
/// OAuth endpoints take it (RFC 6749 §3.2, Appendix B): names in any case
/// (RFC 9110 §8.3.1), other parameters ignored, and no `charset` but UTF-8
/// (compared in any case, quoted or not, §8.3.2): a body in another charset
/// would be misread.
pub fn is_form_urlencoded(headers: &HeaderMap) -> bool {
    media_type_is(headers, |m| {
        m.ty == APPLICATION
            && m.subty == WWW_FORM_URLENCODED
            && m.suffix.is_none()
            && m.params().all(|(name, value)| {
                name != CHARSET || value.unquoted_str().eq_ignore_ascii_case("utf-8")
            })
    })
}

/// Whether the body is JSON: `application/json` or any `application/*+json`
/// (RFC 6839 §3.1), names in any case, with any parameters (JSON is UTF-8
/// anyway, RFC 8259 §8.1).
pub fn is_json(headers: &HeaderMap) -> bool {
    media_type_is(headers, |m| {
        m.ty == APPLICATION && (m.subty == JSON || m.suffix == Some(JSON))
    })
}

/// The origin a browser claims for a request: the `Origin` header (RFC 6454
/// §7), or without one the origin of the `Referer` URL (RFC 9110 §10.1.3),
/// normalised by the URL parser (scheme and host lower-cased, a default port
/// dropped).
///
/// - `None`: neither header (the request does not come from a browser page);
/// - an opaque origin (fail closed; equal to nothing) for `Origin: null`, a
///   value that is not UTF-8 or not a URL, an `Origin` with more than
///   `scheme://host[:port]` (a path, query, fragment or user), a `Referer`
///   whose URL has no host-based origin (`data:`, `about:`), or a repeated
///   header;
/// - the origin otherwise.
pub fn claimed_origin(headers: &HeaderMap) -> Option<Origin> {
    if let Some(value) = single(headers, header::ORIGIN) {
        return Some(
            value
                .and_then(origin_header)
                .unwrap_or_else(Origin::new_opaque),
        );
    }
    let referer = single(headers, header::REFERER)?;
    Some(
        referer
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Url::parse(v).ok())
            .map_or_else(Origin::new_opaque, |u| u.origin()),
    )
}

/// The value of a header sent once; `Some(None)` when it is repeated.
fn single(headers: &HeaderMap, name: header::HeaderName) -> Option<Option<&HeaderValue>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    Some(values.next().is_none().then_some(first))
}

/// A serialized origin, `scheme://host[:port]` and nothing more.
fn origin_header(value: &HeaderValue) -> Option<Origin> {
    let text = value.to_str().ok()?;
    let url = Url::parse(text).ok()?;
    let bare = url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && !text.ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none();
    bare.then(|| url.origin())
}

/// Whether `origin` is the host this request was addressed to: its one `Host`
/// header (RFC 9110 §7.2, `host[:port]`), read under `origin`'s own scheme so
/// that a default port compares equal to none. An opaque origin, no or a
/// repeated `Host`, or one with user information never is.
pub fn is_request_host(headers: &HeaderMap, origin: &Origin) -> bool {
    let Origin::Tuple(scheme, ..) = origin else {
        return false;
    };
    let Some(Some(host)) = single(headers, header::HOST) else {
        return false;
    };
    let Ok(authority) = host.to_str().unwrap_or_default().parse::<Authority>() else {
        return false;
    };
    !authority.as_str().contains('@')
        && Url::parse(&format!("{scheme}://{authority}")).is_ok_and(|u| &u.origin() == origin)
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::STANDARD, Engine};

    use super::*;

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn basic(value: &str) -> Option<Result<BasicCredentials, Malformed>> {
        basic_credentials(&with(&[(header::AUTHORIZATION, value)]))
    }

    fn creds(id: &str, secret: &str) -> Option<Result<BasicCredentials, Malformed>> {
        Some(Ok(BasicCredentials {
            client_id: id.into(),
            secret: secret.into(),
        }))
    }

    #[test]
    fn basic_scheme_is_case_insensitive_and_spaces_may_repeat() {
        let encoded = STANDARD.encode("app:s3cret");
        for value in [
            format!("Basic {encoded}"),
            format!("BASIC {encoded}"),
            format!("basic {encoded}"),
            format!("bAsIc   {encoded}"),
        ] {
            assert_eq!(basic(&value), creds("app", "s3cret"), "{value}");
        }
    }

    #[test]
    fn basic_credentials_are_form_unescaped() {
        let encoded = STANDARD.encode("my%20app:s%3Ac+ret%25");
        assert_eq!(
            basic(&format!("Basic {encoded}")),
            creds("my app", "s:c ret%")
        );
        // Unescaped text stays as it is; the first colon separates.
        let encoded = STANDARD.encode("app:a:b");
        assert_eq!(basic(&format!("Basic {encoded}")), creds("app", "a:b"));
    }

    #[test]
    fn malformed_basic_is_told_from_no_basic() {
        let no_colon = STANDARD.encode("app-without-secret");
        let not_utf8 = STANDARD.encode("app:%FF");
        for value in [
            "Basic".to_owned(),
            "Basic %%%".to_owned(),
            "Basic\tYXBwOnM=".to_owned(),
            format!("Basic {no_colon}"),
            format!("Basic {not_utf8}"),
            format!("Basicc {no_colon}"),
        ] {
            let expected = if value.starts_with("Basicc") {
                None
            } else {
                Some(Err(Malformed))
            };
            assert_eq!(basic(&value), expected, "{value:?}");
        }
        assert_eq!(basic("Bearer abc"), None);
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
        let twice = with(&[
            (header::AUTHORIZATION, "Basic YXBwOnM="),
            (header::AUTHORIZATION, "Basic YXBwOnQ="),
        ]);
        assert_eq!(basic_credentials(&twice), Some(Err(Malformed)));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let bearer = |v: &str| bearer_token(&with(&[(header::AUTHORIZATION, v)]));
        for value in ["Bearer t.o.k", "BEARER t.o.k", "bearer  t.o.k"] {
            assert_eq!(bearer(value), Ok("t.o.k".into()), "{value}");
        }
        assert_eq!(bearer("Bearer"), Err(BearerRefusal::Malformed));
        assert_eq!(bearer("Bearer\tt.o.k"), Err(BearerRefusal::Malformed));
        assert_eq!(bearer("Basic YXBwOnM="), Err(BearerRefusal::Missing));
        assert_eq!(bearer_token(&HeaderMap::new()), Err(BearerRefusal::Missing));
        let twice = with(&[
            (header::AUTHORIZATION, "Bearer a"),
            (header::AUTHORIZATION, "Bearer b"),
        ]);
        assert_eq!(bearer_token(&twice), Err(BearerRefusal::Malformed));
    }

    #[test]
    fn content_types_are_compared_as_media_types() {
        let form = |v: &str| is_form_urlencoded(&with(&[(header::CONTENT_TYPE, v)]));
        assert!(form("application/x-www-form-urlencoded"));
        assert!(form("application/x-www-form-urlencoded; charset=UTF-8"));
        assert!(form("APPLICATION/X-WWW-FORM-URLENCODED;charset=utf-8"));
        assert!(form(
            "application/x-www-form-urlencoded ;  charset=\"UTF-8\""
        ));
        assert!(form("application/x-www-form-urlencoded\t;\tcharset=utf-8;"));
        assert!(!form(
            "application/x-www-form-urlencoded; charset=ISO-8859-1"
        ));
        assert!(!form(
            "application/x-www-form-urlencoded; charset=utf-8; charset=latin1"
        ));
        assert!(!form("application/x-www-form-urlencoded extra"));
        assert!(!form("application/json"));
        assert!(!form("application/x-www-form-urlencodedx"));
        assert!(!form("garbage"));
        assert!(!is_form_urlencoded(&HeaderMap::new()));
        let json = |v: &str| is_json(&with(&[(header::CONTENT_TYPE, v)]));
        assert!(json("application/json"));
        assert!(json("Application/JSON; charset=utf-8"));
        assert!(json("application/merge-patch+json"));
        assert!(!json("text/json"));
        assert!(!json("application/x-www-form-urlencoded"));
        assert!(!json("json"));
        let twice = with(&[
            (header::CONTENT_TYPE, "application/json"),
            (header::CONTENT_TYPE, "text/plain"),
        ]);
        assert!(!is_json(&twice));
    }

    #[test]
    fn origins_are_normalised_and_malformed_ones_are_opaque() {
        let origin = |name: header::HeaderName, v: &str| claimed_origin(&with(&[(name, v)]));
        let ours = Url::parse("http://localhost:3000").unwrap().origin();
        for value in ["http://localhost:3000", "HTTP://LocalHost:3000"] {
            assert_eq!(origin(header::ORIGIN, value), Some(ours.clone()), "{value}");
        }
        assert_eq!(
            origin(header::REFERER, "HTTP://LOCALHOST:3000/consent?x=1"),
            Some(ours.clone())
        );
        for value in [
            "null",
            "localhost:3000",
            "http://localhost:3000/",
            "http://localhost:3000/path",
            "http://user@localhost:3000",
            "http://localhost:3000?",
        ] {
            let got = origin(header::ORIGIN, value);
            assert!(
                got.as_ref().is_some_and(|o| !o.is_tuple()),
                "{value}: {got:?}"
            );
        }
        for value in ["data:text/html,hi", "about:blank", "not a url"] {
            let got = origin(header::REFERER, value);
            assert!(
                got.as_ref().is_some_and(|o| !o.is_tuple()),
                "{value}: {got:?}"
            );
        }
        assert_eq!(claimed_origin(&HeaderMap::new()), None);
        let twice = with(&[
            (header::ORIGIN, "http://localhost:3000"),
            (header::ORIGIN, "http://localhost:3000"),
        ]);
        assert!(!claimed_origin(&twice).unwrap().is_tuple());
    }

    #[test]
    fn request_host_is_compared_under_the_origins_scheme() {
        let host = |h: &str, o: &str| {
            is_request_host(
                &with(&[(header::HOST, h)]),
                &Url::parse(o).unwrap().origin(),
            )
        };
        assert!(host("localhost:3000", "http://localhost:3000"));
        assert!(host("LOCALHOST:3000", "http://localhost:3000"));
        assert!(host("latchkey.example:443", "https://latchkey.example"));
        assert!(host("latchkey.example", "https://latchkey.example"));
        assert!(!host("latchkey.example", "https://latchkey.example:8443"));
        assert!(!host("evil.example", "https://latchkey.example"));
        assert!(!host(
            "evil.example@latchkey.example",
            "https://latchkey.example"
        ));
        assert!(!host("latchkey.example/x", "https://latchkey.example"));
        assert!(!is_request_host(&HeaderMap::new(), &Origin::new_opaque()));
    }
}
