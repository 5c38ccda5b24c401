//! Compiled route actions: path rewrites, redirects, header edits, CORS.

use http::{HeaderMap, HeaderName, HeaderValue};
use regex::Regex;

use crate::route::{CorsPolicy, HeaderOps, Redirect, Rewrite};

use super::matching::{CompiledMatch, RequestView};
use super::BuildError;

/// [`HeaderOps`] with names and values parsed.
#[derive(Clone, Debug, Default)]
pub struct CompiledHeaderOps {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl CompiledHeaderOps {
    pub(crate) fn compile(ops: &HeaderOps, at: &str) -> Result<Self, BuildError> {
        let pair = |(k, v): (&String, &String)| {
            let name = header_name(k, at)?;
            let value = HeaderValue::from_str(v).map_err(|_| BuildError::HeaderValue {
                at: at.to_string(),
                name: k.clone(),
            })?;
            Ok((name, value))
        };
        Ok(CompiledHeaderOps {
            set: ops
                .set
                .iter()
                .map(pair)
                .collect::<Result<_, BuildError>>()?,
            add: ops
                .add
                .iter()
                .map(pair)
                .collect::<Result<_, BuildError>>()?,
            remove: ops
                .remove
                .iter()
                .map(|k| header_name(k, at))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Envoy's order: remove, set, add.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

fn header_name(name: &str, at: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| BuildError::HeaderName {
        at: at.to_string(),
        name: name.to_string(),
    })
}

/// What part of the path a route's match consumed, for prefix rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchedPath {
    /// A prefix match of this many bytes.
    Prefix(usize),
    /// An exact, regex or absent path match: prefix rewrites replace the whole path.
    Whole,
}

/// [`Rewrite`] compiled.
#[derive(Clone, Debug)]
pub struct CompiledRewrite {
    uri_prefix: Option<String>,
    uri_regex: Option<(Regex, String)>,
    pub authority: Option<HeaderValue>,
}

impl CompiledRewrite {
    pub(crate) fn compile(r: &Rewrite, at: &str) -> Result<Self, BuildError> {
        if r.uri_prefix.is_some() && r.uri_regex.is_some() {
            return Err(BuildError::Invalid {
                at: at.to_string(),
                reason: "uri_prefix and uri_regex are exclusive".into(),
            });
        }
        let uri_regex = r
            .uri_regex
            .as_ref()
            .map(|rr| {
                // Unanchored: the substitution applies to every match within the path.
                Regex::new(&rr.pattern)
                    .map(|re| (re, rr.substitution.clone()))
                    .map_err(|e| BuildError::Regex {
                        at: at.to_string(),
                        pattern: rr.pattern.clone(),
                        reason: e.to_string(),
                    })
            })
            .transpose()?;
        let authority = r
            .authority
            .as_ref()
            .map(|a| {
                HeaderValue::from_str(a).map_err(|_| BuildError::Invalid {
                    at: at.to_string(),
                    reason: format!("authority `{a}` is not a valid header value"),
                })
            })
            .transpose()?;
        Ok(CompiledRewrite {
            uri_prefix: r.uri_prefix.clone(),
            uri_regex,
            authority,
        })
    }

    /// The rewritten path, or `None` when the path stays as it is.
    pub fn path(&self, path: &str, matched: MatchedPath) -> Option<String> {
        if let Some(prefix) = &self.uri_prefix {
            let rest = match matched {
                MatchedPath::Prefix(n) => path.get(n..).unwrap_or(""),
                MatchedPath::Whole => "",
            };
            // Istio: rewriting `/foo` to `/` turns `/foo/bar` into `/bar`, not `//bar`.
            if prefix.ends_with('/') && rest.starts_with('/') {
                return Some(format!("{prefix}{}", &rest[1..]));
            }
            return Some(format!("{prefix}{rest}"));
        }
        self.uri_regex
            .as_ref()
            .map(|(re, sub)| re.replace_all(path, sub.as_str()).into_owned())
    }
}

/// The `Location` for a redirect: the request's URL with the configured parts replaced.
pub fn redirect_location(r: &Redirect, req: &RequestView<'_>) -> String {
    let scheme = r.scheme.as_deref().unwrap_or(req.scheme);
    let authority = r.authority.as_deref().unwrap_or(req.authority);
    let bare = || super::domains::strip_port(authority).unwrap_or(authority);
    let host = match r.port {
        Some(port) => format!("{}:{port}", bare()),
        None if r.strip_port => bare().to_string(),
        None => authority.to_string(),
    };
    let path = r.path.as_deref().unwrap_or(req.path);
    match req.query {
        // A path that brings its own query replaces the request's, as in Envoy.
        Some(q) if !path.contains('?') => format!("{scheme}://{host}{path}?{q}"),
        _ => format!("{scheme}://{host}{path}"),
    }
}

/// [`CorsPolicy`] compiled, with the header values precomputed.
#[derive(Clone, Debug)]
pub struct CompiledCors {
    origins: Vec<CompiledMatch>,
    pub allow_methods: Option<HeaderValue>,
    pub allow_headers: Option<HeaderValue>,
    pub expose_headers: Option<HeaderValue>,
    pub max_age: Option<HeaderValue>,
    pub allow_credentials: bool,
}

impl CompiledCors {
    pub(crate) fn compile(c: &CorsPolicy, at: &str) -> Result<Self, BuildError> {
        let origins = c
            .allow_origins
            .iter()
            .map(|o| CompiledMatch::compile(o, at))
            .collect::<Result<_, _>>()?;
        let join = |v: &[String]| -> Result<Option<HeaderValue>, BuildError> {
            if v.is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(&v.join(","))
                .map(Some)
                .map_err(|_| BuildError::Invalid {
                    at: at.to_string(),
                    reason: format!("`{}` is not a valid header value", v.join(",")),
                })
        };
        Ok(CompiledCors {
            origins,
            allow_methods: join(&c.allow_methods)?,
            allow_headers: join(&c.allow_headers)?,
            expose_headers: join(&c.expose_headers)?,
            max_age: c.max_age_secs.map(HeaderValue::from),
            allow_credentials: c.allow_credentials.unwrap_or(false),
        })
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|m| m.matches(origin))
    }
}
