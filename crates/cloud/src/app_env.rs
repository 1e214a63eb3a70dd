//! An application's configuration (`stratos config`) as its members' environment: read
//! from the store as members start (after they are recorded, so a member recorded after
//! a change's restart request gets the change), app-wide entries then the cluster's, and
//! secrets opened here, in the controller, only. The values go into `MemberSpec::env`,
//! whose `Debug` shows names only; nothing here logs a value.
//!
//! The mock IaaS's and the simulated driver's members have no process: they get nothing.

use std::collections::{BTreeMap, HashMap};

use stratos_store::app_config::{self, AppConfig, ConfigValue};
use stratos_store::sealed::{KeyRing, SealError};
use stratos_store::{Store, StoreError};

/// Drivers whose members have no process to hand an environment to.
const NO_PROCESS: [&str; 2] = ["mock", "simulated"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigEnvError {
    #[error("cannot read the configuration of application {app}: {source}")]
    Store { app: String, source: StoreError },
    #[error("cannot open secret {key} of application {app}: {source}")]
    Open { app: String, key: String, source: SealError },
    #[error("application {app} has secret {key}, but this cloud controller has no secrets key")]
    NoKey { app: String, key: String },
}

/// The configurations read for one batch of starts, by tenant and application.
#[derive(Default)]
pub struct ConfigCache(HashMap<(i64, String), Option<AppConfig>>);

/// What a member of cluster `alias` of application `app` started by `driver` gets.
pub async fn env_for(
    store: &Store,
    ring: Option<&KeyRing>,
    cache: &mut ConfigCache,
    driver: &str,
    tenant: i64,
    app: &str,
    alias: &str,
) -> Result<BTreeMap<String, String>, ConfigEnvError> {
    if NO_PROCESS.contains(&driver) {
        return Ok(BTreeMap::new());
    }
    let key = (tenant, app.to_owned());
    if !cache.0.contains_key(&key) {
        let config = store
            .get_record::<AppConfig>(tenant, app)
            .await
            .map_err(|source| ConfigEnvError::Store { app: app.to_owned(), source })?;
        cache.0.insert(key.clone(), config);
    }
    match &cache.0[&key] {
        Some(config) => env_of(config, tenant, alias, ring),
        None => Ok(BTreeMap::new()),
    }
}

/// The environment `config` gives cluster `alias`'s members, secrets opened. Pure but
/// for the key ring.
pub fn env_of(
    config: &AppConfig,
    tenant: i64,
    alias: &str,
    ring: Option<&KeyRing>,
) -> Result<BTreeMap<String, String>, ConfigEnvError> {
    let app = &config.application_id;
    let mut env = BTreeMap::new();
    for (key, (scope, entry)) in config.effective(alias) {
        let value = match &entry.value {
            ConfigValue::Plain(v) => v.clone(),
            ConfigValue::Secret(sealed) => {
                let ring = ring.ok_or_else(|| ConfigEnvError::NoKey { app: app.clone(), key: key.to_owned() })?;
                let context = app_config::seal_context(tenant, app, scope, key);
                ring.open(sealed, &context)
                    .map_err(|source| ConfigEnvError::Open { app: app.clone(), key: key.to_owned(), source })?
                    .into_exposed()
            }
        };
        env.insert(key.to_owned(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratos_store::app_config::Scope;

    #[test]
    fn the_clusters_entries_win_and_secrets_are_opened() {
        let ring = KeyRing::in_memory().unwrap();
        let mut c = AppConfig::new("shop");
        c.put(Scope::App, "A", ConfigValue::Plain("app".into()), "u", 1);
        c.put(Scope::Cluster("web"), "A", ConfigValue::Plain("web".into()), "u", 1);
        let sealed = ring.seal(b"hunter2", &app_config::seal_context(5, "shop", Scope::App, "TOKEN")).unwrap();
        c.put(Scope::App, "TOKEN", ConfigValue::Secret(sealed), "u", 1);
        let web = env_of(&c, 5, "web", Some(&ring)).unwrap();
        assert_eq!(web["A"], "web");
        assert_eq!(web["TOKEN"], "hunter2");
        assert_eq!(env_of(&c, 5, "db", Some(&ring)).unwrap()["A"], "app");
        // Another tenant's context, or no key: refused, naming the key, not the value.
        let e = env_of(&c, 6, "web", Some(&ring)).unwrap_err().to_string();
        assert!(e.contains("TOKEN") && !e.contains("hunter2"), "{e}");
        assert!(matches!(env_of(&c, 5, "web", None), Err(ConfigEnvError::NoKey { .. })));
    }
}
