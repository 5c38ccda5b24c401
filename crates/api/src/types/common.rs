//! Types shared by several Istio kinds: durations, percents, workload selectors and policy
//! target references, in the proto3 JSON shapes that Istio's CRDs accept.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `google.protobuf.Duration` as Kubernetes stores it: a string in Go's duration syntax
/// (`1.5s`, `3m`, `1h30m`, `100ms`). Keeps the text the user wrote for messages and round trips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    nanos: i128,
}

impl Duration {
    pub fn parse(text: &str) -> Result<Self, String> {
        parse_go_duration(text).map(|nanos| Duration {
            text: text.to_string(),
            nanos,
        })
    }
    pub fn from_millis(ms: i64) -> Self {
        Duration {
            text: format!("{ms}ms"),
            nanos: ms as i128 * 1_000_000,
        }
    }
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }
    pub fn as_secs_f64(&self) -> f64 {
        self.nanos as f64 / 1e9
    }
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }
    /// The std duration, or `None` when negative.
    pub fn to_std(&self) -> Option<std::time::Duration> {
        u64::try_from(self.nanos)
            .ok()
            .map(std::time::Duration::from_nanos)
    }
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Go's `time.ParseDuration`, which is what Kubernetes CEL `duration()` and Istio accept.
fn parse_go_duration(text: &str) -> Result<i128, String> {
    let bad =
        || format!("invalid duration {text:?}: want a number and unit, such as 1.5s, 300ms or 2m");
    let (neg, mut s) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: i128 = 0;
    while !s.is_empty() {
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, rest) = s.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(bad());
        }
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: i128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let mut part = int.checked_mul(scale).ok_or_else(bad)?;
        let mut div = 1i128;
        for c in frac.chars().take(18) {
            div *= 10;
            part += (c as i128 - '0' as i128) * scale / div;
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        if total > i64::MAX as i128 {
            return Err(format!("invalid duration {text:?}: out of range"));
        }
        s = rest;
    }
    Ok(if neg { -total } else { total })
}

/// `istio.networking.v1.Percent`: a double in 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    #[serde(default)]
    pub value: f64,
}

/// `istio.type.v1beta1.WorkloadSelector` (and networking's copy of it).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// `istio.type.v1beta1.PolicyTargetReference`: a Kubernetes Gateway, Service or ServiceEntry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyTargetReference {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

/// `skip_serializing_if` for proto3 scalars and enums: the zero value is not written.
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(Duration::parse("1.5s").unwrap().as_nanos(), 1_500_000_000);
        assert_eq!(Duration::parse("3m").unwrap().as_nanos(), 180_000_000_000);
        assert_eq!(
            Duration::parse("1h30m").unwrap().as_nanos(),
            5_400_000_000_000
        );
        assert_eq!(Duration::parse("0").unwrap().as_nanos(), 0);
        assert_eq!(Duration::parse("-2ms").unwrap().as_nanos(), -2_000_000);
        assert_eq!(Duration::parse(".5s").unwrap().as_nanos(), 500_000_000);
        for bad in ["", "5", "s", "1.2.3s", "1x", "abc", "1s2"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }
}
