//! Validation problems: every problem carries the field path it is about, so a
//! user can find it in a definition of hundreds of lines.

use std::fmt;

/// One thing wrong with a definition, at `path` (`networkPartitions[1].partitions[0].id`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one definition. Validation never stops at the first one.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { path: path.into(), message: message.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_result(self) -> Result<(), Problems> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    /// Checks an identifier: non-empty, at most 128 characters of `[A-Za-z0-9._-]`,
    /// not only dots, so that it is safe in a URL path (`.` and `..` are path
    /// steps), an MQTT topic (no `/`, `+`, `#`), a file name and a CLI argument.
    /// [`crate::ID_PATTERN`] says the same to the OpenAPI document.
    pub fn check_id(&mut self, path: &str, id: &str) {
        if id.is_empty() {
            self.push(path, "must not be empty");
        } else if id.len() > 128 {
            self.push(path, format!("must be at most 128 characters, found {}", id.len()));
        } else if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
            self.push(path, format!("{id:?} contains {c:?}; use letters, digits, '.', '_' and '-'"));
        } else if id.chars().all(|c| c == '.') {
            self.push(
                path,
                format!("{id:?} is not an id (a path step in URLs); use letters, digits, '.', '_' and '-'"),
            );
        }
    }

    /// Reports every id that appears more than once in `ids` (given with their paths).
    pub fn check_unique<'a>(&mut self, items: impl IntoIterator<Item = (String, &'a str)>) {
        let mut seen = std::collections::HashSet::new();
        for (path, id) in items {
            if !seen.insert(id) {
                self.push(path, format!("duplicate id {id:?}"));
            }
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_break_urls_topics_or_the_cli_are_refused_with_their_field() {
        for bad in ["", ".", "..", "...", "a/b", "a b", " a", "a\t", "a+b", "a#", "+", "#", "a\nb"] {
            let mut p = Problems::default();
            p.check_id("applicationId", bad);
            assert_eq!(p.0.len(), 1, "{bad:?} accepted");
            assert_eq!(p.0[0].path, "applicationId");
        }
        for good in ["a", "php-web", "x.y", ".hidden", "a..b", "v1_2", &"a".repeat(128)] {
            let mut p = Problems::default();
            p.check_id("id", good);
            assert!(p.is_empty(), "{good:?} refused: {p}");
        }
    }
}
