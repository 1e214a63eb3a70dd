//! Parsing definitions from JSON or YAML with the field path of every error.

use serde::de::DeserializeOwned;

use crate::{Definition, Problems};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// JSON when the text starts with `{` or `[`, YAML otherwise.
    pub fn sniff(text: &str) -> Format {
        match text.trim_start().chars().next() {
            Some('{') | Some('[') => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Parses a definition; the error names the field and the reason.
pub fn parse<T: DeserializeOwned>(text: &str, format: Format) -> Result<T, Problems> {
    let mut problems = Problems::default();
    let result = match format {
        Format::Json => {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize::<_, T>(de)
                .map_err(|e| (field_path(e.path()), strip_location(e.inner().to_string())))
        }
        Format::Yaml => {
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize::<_, T>(de).map_err(|e| (field_path(e.path()), e.inner().to_string()))
        }
    };
    match result {
        Ok(value) => Ok(value),
        Err((path, message)) => {
            problems.push(path, message);
            Err(problems)
        }
    }
}

/// The path as validation writes it (`networkPartitions[0].partitions[1].id`),
/// `""` for the whole definition. serde_path_to_error shows the root as `.` and
/// a position it could not name (a syntax error between two fields) as `?`:
/// the path stops before such a segment.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => break,
        }
    }
    out
}

/// serde_json appends " at line L column C": keep it, it helps with syntax errors,
/// but a type error is better read against the field path alone.
fn strip_location(message: String) -> String {
    message
}

/// Parses and validates a definition on its own (no references checked).
pub fn parse_valid<T: Definition + DeserializeOwned>(text: &str, format: Format) -> Result<T, Problems> {
    let def: T = parse(text, format)?;
    let mut problems = Problems::default();
    def.validate(&mut problems);
    problems.into_result().map(|()| def)
}
