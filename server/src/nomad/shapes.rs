//! How Nomad's JSON writes values that serde would write otherwise: empty lists and maps as
//! `null` (Go's nil slices and maps), and Go's `time.Time` as an RFC 3339 string (the zero time
//! for "never"). Fields typed `int64` nanoseconds in Nomad's API stay plain integers; Nomos's
//! own times are Unix milliseconds ([`ms_to_ns`]).

/// Unix milliseconds (Nomos's times) as Unix nanoseconds (Nomad's).
pub fn ms_to_ns(ms: i64) -> i64 {
    ms.saturating_mul(1_000_000)
}

/// A collection that is `null` when empty, read back from `null` or a value.
pub mod null_empty {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Collections that know whether they are empty.
    pub trait Empty {
        fn is_empty_collection(&self) -> bool;
    }

    impl<T> Empty for Vec<T> {
        fn is_empty_collection(&self) -> bool {
            self.is_empty()
        }
    }

    impl<K, V> Empty for std::collections::BTreeMap<K, V> {
        fn is_empty_collection(&self) -> bool {
            self.is_empty()
        }
    }

    impl<K, V> Empty for indexmap::IndexMap<K, V> {
        fn is_empty_collection(&self) -> bool {
            self.is_empty()
        }
    }

    pub fn serialize<T: Serialize + Empty, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty_collection() {
            s.serialize_none()
        } else {
            v.serialize(s)
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de> + Default, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }
}

/// Go's zero `time.Time`, which Nomad writes for "never".
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Unix nanoseconds (0: never) as Go's `time.Time` in JSON.
pub mod go_time {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::GO_ZERO_TIME;

    pub fn serialize<S: Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*ns))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// RFC 3339 with nanoseconds, or the zero time for 0.
    pub fn format(ns: i64) -> String {
        if ns == 0 {
            return GO_ZERO_TIME.to_string();
        }
        match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
            Ok(t) => t.to_string(),
            Err(_) => GO_ZERO_TIME.to_string(),
        }
    }

    /// Unix nanoseconds of an RFC 3339 time; the zero time (or nothing) is 0.
    pub fn parse(text: &str) -> Result<i64, String> {
        if text.is_empty() || text.starts_with("0001-01-01") {
            return Ok(0);
        }
        let t: jiff::Timestamp = text
            .parse()
            .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
        i64::try_from(t.as_nanosecond()).map_err(|_| format!("{text:?} is out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Default, PartialEq, Debug)]
    #[serde(default)]
    struct Shape {
        #[serde(with = "null_empty")]
        list: Vec<u8>,
        #[serde(with = "null_empty")]
        map: BTreeMap<String, String>,
        #[serde(with = "go_time")]
        at: i64,
    }

    #[test]
    fn empty_collections_are_null_and_times_are_rfc3339_both_ways() {
        let empty = Shape::default();
        let json = serde_json::to_value(&empty).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"list": null, "map": null, "at": GO_ZERO_TIME})
        );
        assert_eq!(serde_json::from_value::<Shape>(json).unwrap(), empty);
        let full = Shape {
            list: vec![1],
            map: [("a".to_string(), "b".to_string())].into(),
            at: 1_700_000_000_123_456_789,
        };
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["at"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(serde_json::from_value::<Shape>(json).unwrap(), full);
        assert!(go_time::parse("yesterday").is_err());
        assert_eq!(go_time::parse("").unwrap(), 0);
    }
}
