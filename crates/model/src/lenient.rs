//! Lenient scalars, for Apache Stratos 4.1 compatibility.
//!
//! Stratos 4.1's REST API read definitions with Jackson, which coerces quoted
//! scalars; its own sample cartridges say `"multiTenant": "false"` and
//! `"port": "8080"`. These deserializers accept a number or a boolean either
//! bare or quoted, so such files load unchanged. Serialization stays canonical
//! (bare numbers and booleans).

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// A non-negative whole number, bare or quoted (`80` or `"80"`).
pub(crate) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    d.deserialize_any(U32Visitor)
}

/// As [`u32`], for optional fields (`null` is `None`).
pub(crate) fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            U32Visitor.expecting(f)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            u32(d).map(Some)
        }
    }
    d.deserialize_option(OptVisitor)
}

/// A boolean, bare or quoted (`false` or `"false"`).
pub(crate) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    d.deserialize_any(BoolVisitor)
}

/// A number, bare or quoted (`80`, `80.5` or `"80"`).
pub(crate) fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(F64Visitor)
}

/// A list of references, where any entry (or the whole list, given as one string) may
/// join several with commas, as Apache Stratos 4.1's samples do
/// (`["group.my-appgroup, cartridge.my-esb"]`): split on commas and trimmed.
pub(crate) fn comma_joined<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let entries = match <OneOrMany as serde::Deserialize>::deserialize(d) {
        Ok(OneOrMany::One(s)) => vec![s],
        Ok(OneOrMany::Many(v)) => v,
        Err(_) => {
            return Err(de::Error::custom("expected a list of \"cartridge.<alias>\" or \"group.<alias>\" strings"))
        }
    };
    Ok(entries.iter().flat_map(|e| e.split(',')).map(|a| a.trim().to_owned()).collect())
}

struct U32Visitor;

impl Visitor<'_> for U32Visitor {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number from 0 to 4294967295")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u32, E> {
        if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
            Ok(v as u32)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        v.trim().parse().map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

struct BoolVisitor;

impl Visitor<'_> for BoolVisitor {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("true or false")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match v.trim() {
            s if s.eq_ignore_ascii_case("true") => Ok(true),
            s if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
        }
    }
}

struct F64Visitor;

impl Visitor<'_> for F64Visitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => Err(E::invalid_value(Unexpected::Str(v), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::u32")]
        n: u32,
        #[serde(default, deserialize_with = "super::opt_u32")]
        o: Option<u32>,
        #[serde(deserialize_with = "super::bool")]
        b: bool,
        #[serde(deserialize_with = "super::f64")]
        f: f64,
    }

    #[test]
    fn accepts_bare_and_quoted_scalars() {
        let t: T = serde_json::from_str(r#"{"n": "80", "o": "3", "b": "false", "f": "1.5"}"#).unwrap();
        assert_eq!((t.n, t.o, t.b, t.f), (80, Some(3), false, 1.5));
        let t: T = serde_json::from_str(r#"{"n": 80, "o": null, "b": true, "f": 2}"#).unwrap();
        assert_eq!((t.n, t.o, t.b, t.f), (80, None, true, 2.0));
        let t: T = serde_json::from_str(r#"{"n": 80, "b": true, "f": 2}"#).unwrap();
        assert_eq!(t.o, None);
        let t: T = serde_norway::from_str("n: '80'\no: 4\nb: 'TRUE'\nf: 7.25\n").unwrap();
        assert_eq!((t.n, t.o, t.b, t.f), (80, Some(4), true, 7.25));
    }

    #[test]
    fn comma_joined_references_are_split_and_trimmed() {
        #[derive(Deserialize)]
        struct L {
            #[serde(deserialize_with = "super::comma_joined")]
            aliases: Vec<String>,
        }
        for text in [
            r#"{"aliases": ["group.my-appgroup, cartridge.my-esb", " cartridge.x "]}"#,
            r#"{"aliases": "group.my-appgroup,cartridge.my-esb ,cartridge.x"}"#,
        ] {
            let l: L = serde_json::from_str(text).unwrap();
            assert_eq!(l.aliases, ["group.my-appgroup", "cartridge.my-esb", "cartridge.x"], "{text}");
        }
        let l: L = serde_norway::from_str("aliases:\n  - 'cartridge.a, cartridge.b'\n").unwrap();
        assert_eq!(l.aliases, ["cartridge.a", "cartridge.b"]);
        assert!(serde_json::from_str::<L>(r#"{"aliases": [1, 2]}"#).is_err());
    }

    #[test]
    fn rejects_what_is_not_the_scalar() {
        for text in [
            r#"{"n": "ten", "b": true, "f": 1}"#,
            r#"{"n": -1, "b": true, "f": 1}"#,
            r#"{"n": 1.5, "b": true, "f": 1}"#,
            r#"{"n": 4294967296, "b": true, "f": 1}"#,
            r#"{"n": 1, "b": "yes", "f": 1}"#,
            r#"{"n": 1, "b": 1, "f": 1}"#,
            r#"{"n": 1, "b": true, "f": "NaN"}"#,
            r#"{"n": 1, "b": true, "f": [1]}"#,
        ] {
            assert!(serde_json::from_str::<T>(text).is_err(), "{text} should not parse");
        }
    }
}
