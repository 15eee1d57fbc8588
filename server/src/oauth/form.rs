//! Strict parsing of `application/x-www-form-urlencoded` protocol requests:
//! the content type must be right, and a parameter may appear once only
//! (RFC 6749 §3.1, §3.2: "Request and response parameters MUST NOT be included
//! more than once"). Bodies over the router's 64 KiB limit never get here.

use std::collections::HashMap;

use axum::{body::Bytes, extract::rejection::BytesRejection, http::HeaderMap};

use super::error::OAuthError;
use crate::request_headers;

/// The parameters of a form body, each present once.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

/// The body as the handler received it: a body over the size limit is a
/// rejection, answered as `invalid_request` like every other malformed request.
pub type Body = Result<Bytes, BytesRejection>;

impl Params {
    /// Reads a form body. `invalid_request` when the body could not be read,
    /// `Content-Type` is not `application/x-www-form-urlencoded` (any case,
    /// optionally `charset=UTF-8`: [`request_headers::is_form_urlencoded`]), or
    /// a parameter is repeated.
    pub fn parse(headers: &HeaderMap, body: &Body) -> Result<Params, OAuthError> {
        let body = body
            .as_ref()
            .map_err(|e| OAuthError::invalid_request(format!("unreadable body: {e}")))?;
        if !request_headers::is_form_urlencoded(headers) {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded (UTF-8)",
            ));
        }
        let mut params = HashMap::new();
        for_each_pair(body, |name, value| {
            if params.insert(name.to_owned(), value.to_owned()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name:?} is repeated"
                )));
            }
            Ok(())
        })?;
        Ok(Params(params))
    }

    /// A parameter; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("parameter {name:?} is missing")))
    }
}

/// Calls `f` with each name and value of a form body, decoded exactly as
/// `url::form_urlencoded::parse` decodes them, in order; stops at `f`'s
/// first error. A body with nothing to decode — no `%`, no `+`, valid
/// UTF-8, as every request carrying only tokens and ids is — is split as it
/// stands (the library would scan each value three times and copy it to
/// find it unchanged: a sixth of an introspection's instructions); any
/// other body goes to the library.
fn for_each_pair<E>(body: &[u8], mut f: impl FnMut(&str, &str) -> Result<(), E>) -> Result<(), E> {
    match (memchr::memchr2(b'%', b'+', body), std::str::from_utf8(body)) {
        (None, Ok(text)) => text
            .split('&')
            .filter(|pair| !pair.is_empty())
            .try_for_each(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                f(name, value)
            }),
        _ => url::form_urlencoded::parse(body).try_for_each(|(name, value)| f(&name, &value)),
    }
}

/// Property tests of [`Params::parse`]: any bytes are answered without a
/// panic, a form is accepted exactly when no name repeats (after decoding),
/// and a well-formed form reads back what was encoded, however it was
/// encoded. `PROPTEST_CASES` raises the case count.
#[cfg(test)]
mod proptests {
    use std::collections::BTreeMap;

    use axum::http::{header::CONTENT_TYPE, HeaderValue};
    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        crate::proptest_config()
    }

    fn form_headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        headers
    }

    fn parse(body: &[u8]) -> Result<Params, OAuthError> {
        Params::parse(
            &form_headers("application/x-www-form-urlencoded"),
            &Ok(Bytes::copy_from_slice(body)),
        )
    }

    /// How each character is written: as itself where that is allowed,
    /// percent-encoded (upper or lower hex digits), and a space as `+` or
    /// `%20` — every choice must decode to the same text.
    #[derive(Clone, Copy, Debug)]
    struct Style {
        escape_plain: bool,
        lower_hex: bool,
        plus_for_space: bool,
    }

    fn style() -> impl Strategy<Value = Style> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(escape_plain, lower_hex, plus_for_space)| Style {
                escape_plain,
                lower_hex,
                plus_for_space,
            },
        )
    }

    fn encode(text: &str, style: Style) -> String {
        let mut out = String::new();
        for c in text.chars() {
            let plain = c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*');
            if plain && !style.escape_plain {
                out.push(c);
            } else if c == ' ' && style.plus_for_space {
                out.push('+');
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    if style.lower_hex {
                        out.push_str(&format!("%{b:02x}"));
                    } else {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
            }
        }
        out
    }

    fn encode_form(pairs: &[(String, String)], style: Style) -> String {
        pairs
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name, style), encode(value, style)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Bodies that look like forms: names, `=`, `&`, `+` and `%` escapes, some broken.
    fn formish() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                Just(b'&'),
                Just(b'='),
                Just(b'+'),
                Just(b'%'),
                prop::sample::select(b"aAbF09".to_vec()),
                any::<u8>(),
            ],
            0..48,
        )
    }

    proptest! {
        #![proptest_config(config())]

        /// Any body is answered, and accepted exactly when no decoded name repeats.
        #[test]
        fn any_bytes_are_answered_and_repeats_refused(
            body in prop_oneof![any::<Vec<u8>>(), formish()],
        ) {
            let mut names: Vec<String> = url::form_urlencoded::parse(&body)
                .map(|(name, _)| name.into_owned())
                .collect();
            let count = names.len();
            names.sort();
            names.dedup();
            let distinct = names.len() == count;
            match parse(&body) {
                Ok(params) => {
                    prop_assert!(distinct, "a repeated name was accepted");
                    prop_assert_eq!(params.0.len(), count);
                }
                Err(e) => {
                    prop_assert!(!distinct, "refused a form without repeats: {}", e.description);
                    prop_assert_eq!(e.error.as_str(), "invalid_request");
                }
            }
        }

        /// The pairs are the library's, in its order, for any body: the
        /// bodies split as they stand and those it decodes.
        #[test]
        fn pairs_are_those_form_urlencoded_reads(
            body in prop_oneof![any::<Vec<u8>>(), formish(), "[a-zA-Z0-9._~=&-]{0,64}".prop_map(String::into_bytes)],
        ) {
            let expected: Vec<(String, String)> = url::form_urlencoded::parse(&body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect();
            let mut read = Vec::new();
            for_each_pair(&body, |name, value| {
                read.push((name.to_owned(), value.to_owned()));
                Ok::<_, ()>(())
            })
            .unwrap();
            prop_assert_eq!(read, expected);
        }

        /// A well-formed form reads back its names and values, however encoded;
        /// an empty value reads as absent.
        #[test]
        fn well_formed_forms_round_trip(
            form in prop::collection::btree_map(any::<String>(), any::<String>(), 0..8),
            style in style(),
        ) {
            let pairs: Vec<(String, String)> = form.clone().into_iter().collect();
            let body = encode_form(&pairs, style);
            let params = match parse(body.as_bytes()) {
                Ok(params) => params,
                Err(e) => return Err(TestCaseError::fail(format!("{body:?}: {}", e.description))),
            };
            let read: BTreeMap<String, String> = params.0.clone().into_iter().collect();
            prop_assert_eq!(&read, &form);
            for (name, value) in &form {
                prop_assert_eq!(params.get(name), Some(value.as_str()).filter(|v| !v.is_empty()));
            }
        }

        /// A name sent twice is refused, wherever the copy is, whatever its
        /// value and however either copy is encoded (`a` and `%61` are one name).
        #[test]
        fn a_repeated_name_is_refused(
            form in prop::collection::btree_map(any::<String>(), any::<String>(), 1..6),
            which in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            value in any::<String>(),
            first in style(),
            second in style(),
        ) {
            let pairs: Vec<(String, String)> = form.into_iter().collect();
            let name = pairs[which.index(pairs.len())].0.clone();
            let body = encode_form(&pairs, first);
            let copy = encode_form(&[(name, value)], second);
            // The copy goes before, among or after the others.
            let parts: Vec<&str> = body.split('&').collect();
            let i = at.index(parts.len() + 1);
            let mut joined: Vec<&str> = parts[..i].to_vec();
            joined.push(&copy);
            joined.extend_from_slice(&parts[i..]);
            let body = joined.join("&");
            prop_assert!(parse(body.as_bytes()).is_err(), "accepted {:?}", body);
        }

        /// Only `application/x-www-form-urlencoded` (any letter case,
        /// optionally `charset=utf-8`) is read; any other Content-Type is
        /// refused and none panics.
        #[test]
        fn only_the_form_content_type_is_read(
            value in prop_oneof![
                any::<Vec<u8>>(),
                "[ -~]{0,60}".prop_map(String::into_bytes),
                prop::sample::select(vec![
                    "application/json", "text/plain", "multipart/form-data",
                    "application/x-www-form-urlencoded; charset=latin1",
                    "application/x-www-form-urlencoded+json", "application/*", "",
                ]).prop_map(|s| s.as_bytes().to_vec()),
            ],
        ) {
            let Ok(value) = HeaderValue::from_bytes(&value) else {
                return Ok(());
            };
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, value.clone());
            let result = Params::parse(&headers, &Ok(Bytes::from_static(b"a=1")));
            let text = value.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = text.split(';').next().unwrap_or("").trim().to_owned();
            if essence != "application/x-www-form-urlencoded" {
                prop_assert!(result.is_err(), "read a body sent as {:?}", value);
            }
        }

        /// The form content type is recognised in any letter case.
        #[test]
        fn the_form_content_type_in_any_case_is_read(
            flips in prop::collection::vec(any::<bool>(), 48),
            charset in any::<bool>(),
        ) {
            let canonical = if charset {
                "application/x-www-form-urlencoded; charset=UTF-8"
            } else {
                "application/x-www-form-urlencoded"
            };
            let cased: String = canonical
                .chars()
                .zip(flips.iter().chain(std::iter::repeat(&false)))
                .map(|(c, flip)| if *flip { c.to_ascii_uppercase() } else { c })
                .collect();
            let result = Params::parse(&form_headers(&cased), &Ok(Bytes::from_static(b"a=1")));
            prop_assert!(result.is_ok(), "refused {:?}", cased);
        }
    }
}
