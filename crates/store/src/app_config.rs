//! An application's configuration (`stratos config set|unset|list`): environment
//! variables for its members, app-wide and per cluster alias (a cluster's entry wins),
//! each with a revision and plain or secret. A secret is stored [`Sealed`] only; its
//! value is opened by the cloud controller as a member starts, and by the manager to
//! tell whether a new value differs, never shown. Pure, but for the record itself.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::sealed::Sealed;

/// The longest value, in bytes (Linux takes 128 KiB per environment string).
pub const MAX_VALUE: usize = 32 * 1024;
/// The longest key.
pub const MAX_KEY: usize = 128;
/// Entries an application may have, its clusters' included.
pub const MAX_ENTRIES: usize = 100;
/// Keys and values of an application together, in bytes (a member's environment must fit
/// beside the platform's own in the kernel's limit).
pub const MAX_TOTAL: usize = 256 * 1024;

/// One application's configuration (collection `app-config`, id = the application id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppConfig {
    pub application_id: String,
    /// App-wide entries, by key.
    #[serde(default)]
    pub app: BTreeMap<String, ConfigEntry>,
    /// Per cluster alias, by key: these win over the app-wide ones.
    #[serde(default)]
    pub clusters: BTreeMap<String, BTreeMap<String, ConfigEntry>>,
}

impl Record for AppConfig {
    const COLLECTION: &'static str = "app-config";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.application_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigEntry {
    /// 1 when set, one more at each change.
    pub revision: u64,
    pub value: ConfigValue,
    /// Milliseconds since the Unix epoch.
    pub updated_at: u64,
    pub updated_by: String,
}

/// A plain value, or a secret sealed under the platform key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConfigValue {
    Plain(String),
    Secret(Sealed),
}

impl ConfigValue {
    pub fn is_secret(&self) -> bool {
        matches!(self, ConfigValue::Secret(_))
    }

    /// The value's length in bytes (a secret's as sealed).
    pub fn len(&self) -> usize {
        match self {
            ConfigValue::Plain(v) => v.len(),
            ConfigValue::Secret(s) => s.plaintext_len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where an entry applies: the whole application, or one cluster (by alias).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope<'a> {
    App,
    Cluster(&'a str),
}

impl Scope<'_> {
    /// `application`, or the cluster alias.
    pub fn name(&self) -> &str {
        match self {
            Scope::App => "application",
            Scope::Cluster(alias) => alias,
        }
    }
}

/// The context a secret is sealed with: what it is and whose, so that it opens there only.
pub fn seal_context(tenant: i64, application_id: &str, scope: Scope<'_>, key: &str) -> String {
    match scope {
        Scope::App => format!("config/{tenant}/{application_id}/app/{key}"),
        Scope::Cluster(alias) => format!("config/{tenant}/{application_id}/cluster/{alias}/{key}"),
    }
}

impl AppConfig {
    pub fn new(application_id: &str) -> AppConfig {
        AppConfig { application_id: application_id.to_owned(), ..Default::default() }
    }

    pub fn scope(&self, scope: Scope<'_>) -> Option<&BTreeMap<String, ConfigEntry>> {
        match scope {
            Scope::App => Some(&self.app),
            Scope::Cluster(alias) => self.clusters.get(alias),
        }
    }

    fn scope_mut(&mut self, scope: Scope<'_>) -> &mut BTreeMap<String, ConfigEntry> {
        match scope {
            Scope::App => &mut self.app,
            Scope::Cluster(alias) => self.clusters.entry(alias.to_owned()).or_default(),
        }
    }

    pub fn entry(&self, scope: Scope<'_>, key: &str) -> Option<&ConfigEntry> {
        self.scope(scope)?.get(key)
    }

    /// Sets `key` in `scope`: revision 1, or one more than it had.
    pub fn put(&mut self, scope: Scope<'_>, key: &str, value: ConfigValue, by: &str, now: u64) {
        let entries = self.scope_mut(scope);
        let revision = entries.get(key).map_or(1, |e| e.revision + 1);
        entries.insert(key.to_owned(), ConfigEntry { revision, value, updated_at: now, updated_by: by.to_owned() });
    }

    /// Removes `key` from `scope`; whether it was there.
    pub fn remove(&mut self, scope: Scope<'_>, key: &str) -> bool {
        let removed = self.scope_mut(scope).remove(key).is_some();
        if let Scope::Cluster(alias) = scope {
            if self.clusters.get(alias).is_some_and(BTreeMap::is_empty) {
                self.clusters.remove(alias);
            }
        }
        removed
    }

    /// Every entry with its scope: app-wide first, then each cluster's.
    pub fn entries(&self) -> impl Iterator<Item = (Scope<'_>, &str, &ConfigEntry)> {
        let app = self.app.iter().map(|(k, e)| (Scope::App, k.as_str(), e));
        let clusters = self
            .clusters
            .iter()
            .flat_map(|(alias, entries)| entries.iter().map(move |(k, e)| (Scope::Cluster(alias), k.as_str(), e)));
        app.chain(clusters)
    }

    /// What a member of cluster `alias` gets: each key with the entry that wins (the
    /// cluster's over the application's) and where it comes from.
    pub fn effective(&self, alias: &str) -> BTreeMap<&str, (Scope<'_>, &ConfigEntry)> {
        let mut out: BTreeMap<&str, (Scope<'_>, &ConfigEntry)> =
            self.app.iter().map(|(k, e)| (k.as_str(), (Scope::App, e))).collect();
        if let Some((alias, entries)) = self.clusters.get_key_value(alias) {
            out.extend(entries.iter().map(|(k, e)| (k.as_str(), (Scope::Cluster(alias), e))));
        }
        out
    }

    /// Keys and values together, in bytes.
    pub fn total_size(&self) -> usize {
        self.entries().map(|(_, k, e)| k.len() + e.value.len()).sum()
    }
}

/// The aliases, of `aliases`, whose members' environment differs between `before` and
/// `after`: a key added, removed, or won by another entry or revision.
pub fn affected_aliases<'a>(before: &AppConfig, after: &AppConfig, aliases: &[&'a str]) -> Vec<&'a str> {
    let fingerprint = |config: &AppConfig, alias: &str| -> Vec<(String, String, u64)> {
        config
            .effective(alias)
            .into_iter()
            .map(|(k, (scope, e))| (k.to_owned(), scope.name().to_owned(), e.revision))
            .collect()
    };
    aliases.iter().copied().filter(|alias| fingerprint(before, alias) != fingerprint(after, alias)).collect()
}

/// Why `key` cannot be a member's environment variable, if it cannot: a name of letters,
/// digits and `_` not starting with a digit, and none of the names the platform sets
/// (`STRATOS_*`, `PORT`, `PORT_*`, `HOME`, `USER`, `LOGNAME`) or that would change how
/// the member's agent itself runs (`LD_*`).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("a key cannot be empty".into());
    }
    if key.len() > MAX_KEY {
        return Err(format!("a key is at most {MAX_KEY} characters"));
    }
    let mut chars = key.chars();
    let first = chars.next().expect("not empty");
    if !(first.is_ascii_alphabetic() || first == '_') || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "{key:?} is not an environment variable name: letters, digits and _, not starting with a digit"
        ));
    }
    let upper = key.to_ascii_uppercase();
    if upper.starts_with("STRATOS_")
        || upper.starts_with("LD_")
        || upper.starts_with("PORT_")
        || ["PORT", "HOME", "USER", "LOGNAME"].contains(&upper.as_str())
    {
        return Err(format!(
            "{key} is reserved: the platform sets it (STRATOS_*, PORT, PORT_*, HOME, USER, LOGNAME) or it changes how the member's agent runs (LD_*)"
        ));
    }
    Ok(())
}

/// Why `value` cannot be an environment variable's value, if it cannot.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE {
        return Err(format!("the value is {} bytes; at most {MAX_VALUE}", value.len()));
    }
    if value.contains('\0') {
        return Err("the value contains a NUL byte, which an environment variable cannot".into());
    }
    Ok(())
}

/// Why `config` as a whole is too large, if it is.
pub fn check_size(config: &AppConfig) -> Result<(), String> {
    let entries = config.entries().count();
    if entries > MAX_ENTRIES {
        return Err(format!("{entries} entries; an application has at most {MAX_ENTRIES}"));
    }
    let total = config.total_size();
    if total > MAX_TOTAL {
        return Err(format!("keys and values come to {total} bytes; an application has at most {MAX_TOTAL}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: &str) -> ConfigValue {
        ConfigValue::Plain(v.into())
    }

    #[test]
    fn a_clusters_entry_wins_and_revisions_count_changes() {
        let mut c = AppConfig::new("shop");
        c.put(Scope::App, "A", plain("1"), "admin", 10);
        c.put(Scope::App, "B", plain("app"), "admin", 10);
        c.put(Scope::Cluster("web"), "B", plain("web"), "admin", 11);
        c.put(Scope::App, "A", plain("2"), "admin", 12);
        assert_eq!(c.entry(Scope::App, "A").unwrap().revision, 2);
        let web = c.effective("web");
        assert_eq!(web["A"].1.value, plain("2"));
        assert_eq!(web["B"], (Scope::Cluster("web"), c.entry(Scope::Cluster("web"), "B").unwrap()));
        assert_eq!(c.effective("db")["B"].1.value, plain("app"));
        assert!(c.remove(Scope::Cluster("web"), "B"));
        assert!(c.clusters.is_empty(), "an empty cluster scope is dropped");
        assert!(!c.remove(Scope::App, "nope"));
    }

    #[test]
    fn only_clusters_whose_environment_changes_are_affected() {
        let mut before = AppConfig::new("shop");
        before.put(Scope::App, "A", plain("1"), "u", 1);
        before.put(Scope::Cluster("web"), "A", plain("web"), "u", 1);
        let aliases = ["web", "db"];
        // App-wide A changes: web overrides it, only db sees it.
        let mut after = before.clone();
        after.put(Scope::App, "A", plain("2"), "u", 2);
        assert_eq!(affected_aliases(&before, &after, &aliases), ["db"]);
        // web's override goes: web now gets the app-wide value.
        let mut after = before.clone();
        after.remove(Scope::Cluster("web"), "A");
        assert_eq!(affected_aliases(&before, &after, &aliases), ["web"]);
        // A new app-wide key: both.
        let mut after = before.clone();
        after.put(Scope::App, "B", plain("x"), "u", 2);
        assert_eq!(affected_aliases(&before, &after, &aliases), ["web", "db"]);
        assert!(affected_aliases(&before, &before.clone(), &aliases).is_empty());
    }

    #[test]
    fn keys_are_environment_names_and_not_the_platforms() {
        for good in ["DATABASE_URL", "_x", "a1", "Port8"] {
            assert_eq!(check_key(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("1ABC", "not an environment variable name"),
            ("A-B", "not an environment variable name"),
            ("A B", "not an environment variable name"),
            ("STRATOS_BUS_PASSWORD", "reserved"),
            ("stratos_member_id", "reserved"),
            ("PORT", "reserved"),
            ("PORT_8080", "reserved"),
            ("HOME", "reserved"),
            ("LD_PRELOAD", "reserved"),
        ] {
            let e = check_key(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(check_key(&"K".repeat(MAX_KEY + 1)).is_err());
        assert!(check_value(&"v".repeat(MAX_VALUE)).is_ok());
        assert!(check_value(&"v".repeat(MAX_VALUE + 1)).unwrap_err().contains("at most"));
        assert!(check_value("a\0b").is_err());
    }

    #[test]
    fn an_application_is_bounded_as_a_whole() {
        let mut c = AppConfig::new("shop");
        for i in 0..MAX_ENTRIES {
            c.put(Scope::App, &format!("K{i}"), plain("v"), "u", 1);
        }
        assert_eq!(check_size(&c), Ok(()));
        c.put(Scope::Cluster("web"), "ONE_MORE", plain("v"), "u", 1);
        assert!(check_size(&c).unwrap_err().contains("at most 100"));
        let mut c = AppConfig::new("shop");
        for i in 0..9 {
            c.put(Scope::App, &format!("K{i}"), plain(&"v".repeat(MAX_VALUE)), "u", 1);
        }
        assert!(check_size(&c).unwrap_err().contains("bytes"));
    }

    #[test]
    fn a_secret_is_stored_sealed_only() {
        let ring = crate::sealed::KeyRing::in_memory().unwrap();
        let mut c = AppConfig::new("shop");
        let ctx = seal_context(7, "shop", Scope::App, "TOKEN");
        c.put(Scope::App, "TOKEN", ConfigValue::Secret(ring.seal(b"hunter2", &ctx).unwrap()), "u", 1);
        let stored = serde_json::to_string(&c).unwrap();
        assert!(!stored.contains("hunter2"), "{stored}");
        assert!(!format!("{c:?}").contains("hunter2"));
        let back: AppConfig = serde_json::from_str(&stored).unwrap();
        let ConfigValue::Secret(sealed) = &back.app["TOKEN"].value else { panic!("{back:?}") };
        assert_eq!(ring.open(sealed, &ctx).unwrap().expose(), "hunter2");
        assert_eq!(back.app["TOKEN"].value.len(), 7);
    }
}
