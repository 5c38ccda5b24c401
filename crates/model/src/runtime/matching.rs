//! Request matching against compiled [`crate::RouteMatch`]es.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, Method};
use regex::Regex;

use crate::route::{HeaderMatch, QueryParamMatch, RouteMatch, StringMatch};

use super::BuildError;

/// The parts of a request that routing reads. Borrowed, so building one costs nothing.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// `http` or `https`, as the downstream spoke it.
    pub scheme: &'a str,
    /// `Host` or `:authority`, as sent (port included if present).
    pub authority: &'a str,
    /// Path without the query.
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// The listener port the request arrived on.
    pub port: u16,
    /// Labels of the source workload, when known (mTLS identity later); empty otherwise.
    pub source_labels: &'a BTreeMap<String, String>,
    pub source_namespace: Option<&'a str>,
}

/// A [`StringMatch`] ready to run: regexes compiled and anchored.
#[derive(Clone, Debug)]
pub enum CompiledMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl CompiledMatch {
    pub(crate) fn compile(m: &StringMatch, at: &str) -> Result<Self, BuildError> {
        Ok(match m {
            StringMatch::Exact(s) => CompiledMatch::Exact(s.clone()),
            StringMatch::Prefix(s) => CompiledMatch::Prefix(s.clone()),
            StringMatch::Regex(r) => CompiledMatch::Regex(compile_regex(r, at)?),
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            CompiledMatch::Exact(s) => value == s,
            CompiledMatch::Prefix(s) => value.starts_with(s.as_str()),
            CompiledMatch::Regex(r) => r.is_match(value),
        }
    }

    fn matches_ignore_case(&self, value: &str) -> bool {
        match self {
            CompiledMatch::Exact(s) => value.eq_ignore_ascii_case(s),
            CompiledMatch::Prefix(s) => value
                .get(..s.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(s)),
            CompiledMatch::Regex(r) => r.is_match(value),
        }
    }
}

/// Compiles `pattern` to match whole values only, as Envoy's `safe_regex` does.
pub(crate) fn compile_regex(pattern: &str, at: &str) -> Result<Regex, BuildError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| BuildError::Regex {
        at: at.to_string(),
        pattern: pattern.to_string(),
        reason: e.to_string(),
    })
}

#[derive(Clone, Debug)]
struct CompiledHeaderMatch {
    name: HeaderName,
    value: Option<CompiledMatch>,
}

impl CompiledHeaderMatch {
    fn compile(h: &HeaderMatch, at: &str) -> Result<Self, BuildError> {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| BuildError::HeaderName {
                at: at.to_string(),
                name: h.name.clone(),
            })?;
        let value = h
            .value
            .as_ref()
            .map(|v| CompiledMatch::compile(v, at))
            .transpose()?;
        Ok(CompiledHeaderMatch { name, value })
    }

    /// Several values of one header are matched joined with `,`, as Envoy does.
    fn matches(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.name).iter();
        let Some(first) = values.next() else {
            return false;
        };
        let Some(m) = &self.value else {
            return true;
        };
        let rest: Vec<_> = values.collect();
        if rest.is_empty() {
            return first.to_str().is_ok_and(|v| m.matches(v));
        }
        let mut joined = String::from_utf8_lossy(first.as_bytes()).into_owned();
        for v in rest {
            joined.push(',');
            joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        m.matches(&joined)
    }
}

#[derive(Clone, Debug)]
struct CompiledQueryMatch {
    name: String,
    value: Option<CompiledMatch>,
}

/// One compiled [`RouteMatch`].
#[derive(Clone, Debug)]
pub struct CompiledRouteMatch {
    pub(crate) path: Option<CompiledMatch>,
    ignore_path_case: bool,
    headers: Vec<CompiledHeaderMatch>,
    without_headers: Vec<CompiledHeaderMatch>,
    query_params: Vec<CompiledQueryMatch>,
    method: Option<CompiledMatch>,
    scheme: Option<CompiledMatch>,
    authority: Option<CompiledMatch>,
    port: Option<u16>,
    source_labels: BTreeMap<String, String>,
    source_namespace: Option<String>,
}

impl CompiledRouteMatch {
    pub(crate) fn compile(m: &RouteMatch, at: &str) -> Result<Self, BuildError> {
        let string = |s: &Option<StringMatch>, field: &str| {
            s.as_ref()
                .map(|s| CompiledMatch::compile(s, &format!("{at}.{field}")))
                .transpose()
        };
        let headers = |hs: &[HeaderMatch], field: &str| {
            hs.iter()
                .enumerate()
                .map(|(i, h)| CompiledHeaderMatch::compile(h, &format!("{at}.{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let query_params = m
            .query_params
            .iter()
            .enumerate()
            .map(|(i, q): (usize, &QueryParamMatch)| {
                let value = q
                    .value
                    .as_ref()
                    .map(|v| CompiledMatch::compile(v, &format!("{at}.query_params[{i}]")))
                    .transpose()?;
                Ok(CompiledQueryMatch {
                    name: q.name.clone(),
                    value,
                })
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        Ok(CompiledRouteMatch {
            path: string(&m.path, "path")?,
            ignore_path_case: m.ignore_path_case,
            headers: headers(&m.headers, "headers")?,
            without_headers: headers(&m.without_headers, "without_headers")?,
            query_params,
            method: string(&m.method, "method")?,
            scheme: string(&m.scheme, "scheme")?,
            authority: string(&m.authority, "authority")?,
            port: m.port,
            source_labels: m.source_labels.clone(),
            source_namespace: m.source_namespace.clone(),
        })
    }

    /// Cheapest checks first: the path decides most routes.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(p) = &self.path {
            let ok = if self.ignore_path_case {
                p.matches_ignore_case(req.path)
            } else {
                p.matches(req.path)
            };
            if !ok {
                return false;
            }
        }
        if self.port.is_some_and(|p| p != req.port) {
            return false;
        }
        if self
            .method
            .as_ref()
            .is_some_and(|m| !m.matches(req.method.as_str()))
        {
            return false;
        }
        if self.scheme.as_ref().is_some_and(|m| !m.matches(req.scheme)) {
            return false;
        }
        if self
            .authority
            .as_ref()
            .is_some_and(|m| !m.matches(req.authority))
        {
            return false;
        }
        if !self.headers.iter().all(|h| h.matches(req.headers)) {
            return false;
        }
        if self.without_headers.iter().any(|h| h.matches(req.headers)) {
            return false;
        }
        if !self
            .query_params
            .iter()
            .all(|q| query_matches(q, req.query))
        {
            return false;
        }
        if let Some(ns) = &self.source_namespace {
            if req.source_namespace != Some(ns.as_str()) {
                return false;
            }
        }
        self.source_labels
            .iter()
            .all(|(k, v)| req.source_labels.get(k) == Some(v))
    }
}

/// Query values are compared as sent (not percent-decoded); the first occurrence counts.
fn query_matches(q: &CompiledQueryMatch, query: Option<&str>) -> bool {
    let Some(query) = query else {
        return false;
    };
    let found = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == q.name).then_some(v)
    });
    match (found, &q.value) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(m)) => m.matches(v),
    }
}
