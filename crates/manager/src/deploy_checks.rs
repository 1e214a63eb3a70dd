//! What is checked at deploy time, before anything is stored: that the platform has a
//! driver for every provider the application's placements use ([`missing_drivers`]), and
//! what each driver checks itself: that it can start the application's members where the
//! policies place them (the docker driver: that the cartridge's image is on the
//! partition's engine). A problem is a 400 naming the subscription and the reason, as a
//! definition's would be.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use stratos_model::{Application, Definitions, IaasProvider, Problems};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait DeployCheck: Send + Sync {
    /// The provider whose partitions it checks (`docker`).
    fn provider(&self) -> &'static str;
    /// Whether members of `iaas` can start in a placement with `properties` (the network
    /// partition's, its partition's over them); `Err` says why not.
    fn check<'a>(
        &'a self,
        iaas: &'a IaasProvider,
        properties: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Runs `checks` on every placement of `app` under application policy `policy`.
pub async fn run(
    checks: &[std::sync::Arc<dyn DeployCheck>],
    app: &Application,
    policy: &str,
    defs: &Definitions,
) -> Problems {
    let mut problems = Problems::default();
    let Some(policy) = defs.application_policies.get(policy) else { return problems };
    let mut seen = std::collections::HashSet::new();
    for (at, sub, deployment_policy) in app.subscriptions_with_policy() {
        let Some(cartridge) = defs.cartridges.get(&sub.cartridge_type) else { continue };
        let Some(dp) = defs.deployment_policies.get(deployment_policy) else { continue };
        for np_ref in dp.network_partitions.iter().filter(|np| policy.network_partitions.contains(&np.id)) {
            let Some(np) = defs.network_partitions.get(&np_ref.id) else { continue };
            for part in np_ref.partitions.iter().filter_map(|p| np.partition(&p.id)) {
                let provider = np.provider_of(part).unwrap_or_default();
                let Some(check) = checks.iter().find(|c| c.provider() == provider) else { continue };
                let Some(iaas) = cartridge.iaas(provider) else { continue };
                let properties: BTreeMap<String, String> =
                    np.property.iter().chain(&part.property).map(|p| (p.name.clone(), p.value.clone())).collect();
                // The same cartridge on the same engine is checked (and reported) once.
                if !seen.insert((at.clone(), cartridge.cartridge_type.clone(), properties.clone())) {
                    continue;
                }
                if let Err(reason) = check.check(iaas, &properties).await {
                    problems.push(
                        format!("{at}.type"),
                        format!(
                            "cartridge {:?} cannot start in partition {:?} of network partition {:?}: {reason}",
                            cartridge.cartridge_type, part.id, np.id
                        ),
                    );
                }
            }
        }
    }
    problems
}

/// Every placement of `app` under application policy `policy` whose provider has no
/// driver among `drivers` (the names the running platform registered), at the field of
/// the deployment policy that places it: a deploy would be accepted and then fail every
/// start. Each network partition and provider is reported once per subscription.
pub fn missing_drivers(app: &Application, policy: &str, defs: &Definitions, drivers: &[String]) -> Problems {
    let mut problems = Problems::default();
    let Some(policy) = defs.application_policies.get(policy) else { return problems };
    for (at, _, deployment_policy) in app.subscriptions_with_policy() {
        let Some(dp) = defs.deployment_policies.get(deployment_policy) else { continue };
        let mut seen = std::collections::HashSet::new();
        for np_ref in dp.network_partitions.iter().filter(|np| policy.network_partitions.contains(&np.id)) {
            let Some(np) = defs.network_partitions.get(&np_ref.id) else { continue };
            for part in np_ref.partitions.iter().filter_map(|p| np.partition(&p.id)) {
                let provider = np.provider_of(part).unwrap_or_default();
                if drivers.iter().any(|d| d == provider) || !seen.insert((np.id.clone(), provider)) {
                    continue;
                }
                problems.push(
                    crate::deployments::policy_field(app, &at),
                    format!(
                        "network partition {:?} (partition {:?}, through deployment policy {:?}) uses provider {provider:?}, \
                         which this platform has no driver for; its drivers: {}",
                        np.id,
                        part.id,
                        dp.id,
                        drivers.join(", ")
                    ),
                );
            }
        }
    }
    problems
}

/// What to tell whoever adds or changes network partition `np`: each provider it names
/// that this platform has no driver for. Stored all the same (a driver may come later),
/// but every deploy that places members there is refused until then.
pub fn provider_warnings(np: &stratos_model::NetworkPartition, drivers: &[String]) -> Vec<String> {
    let mut providers: Vec<&str> = np.partitions.iter().filter_map(|p| np.provider_of(p)).collect();
    providers.sort_unstable();
    providers.dedup();
    providers
        .into_iter()
        .filter(|p| !drivers.iter().any(|d| d == p))
        .map(|p| {
            format!(
                "network partition {:?} uses provider {p:?}, which this platform has no driver for (its drivers: {}); \
                 deploying an application that places members here is refused until it has one",
                np.id,
                drivers.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratos_model::{parse, Format};

    fn defs(provider: &str) -> Definitions {
        let mut defs = Definitions::default();
        for (kind, text) in [
            (stratos_model::Kind::NetworkPartition, format!(r#"{{"id": "np", "provider": "{provider}", "partitions": [{{"id": "p1"}}, {{"id": "p2"}}]}}"#)),
            (stratos_model::Kind::DeploymentPolicy, r#"{"id": "dp", "networkPartitions": [{"id": "np", "partitionAlgo": "round-robin", "partitions": [{"id": "p1", "partitionMax": 1}, {"id": "p2", "partitionMax": 1}]}]}"#.into()),
            (stratos_model::Kind::ApplicationPolicy, r#"{"id": "ap", "algorithm": "one-after-another", "networkPartitions": ["np"]}"#.into()),
        ] {
            defs.insert_json(kind, serde_json::from_str(&text).unwrap()).unwrap();
        }
        defs
    }

    fn app() -> Application {
        parse(
            r#"{"applicationId": "a", "components": {
                "cartridges": [{"type": "c", "cartridgeMin": 1, "cartridgeMax": 1,
                                "subscribableInfo": {"alias": "top", "autoscalingPolicy": "asp", "deploymentPolicy": "dp"}}],
                "groups": [{"name": "g", "alias": "g", "deploymentPolicy": "dp",
                            "cartridges": [{"type": "c", "cartridgeMin": 1, "cartridgeMax": 1,
                                            "subscribableInfo": {"alias": "inner", "autoscalingPolicy": "asp"}}]}]}}"#,
            Format::Json,
        )
        .unwrap()
    }

    #[test]
    fn a_provider_without_a_driver_is_named_with_the_drivers_there_are() {
        let drivers = vec!["local".to_string(), "docker".to_string()];
        let p = missing_drivers(&app(), "ap", &defs("mock"), &drivers);
        // Once per subscription (not per partition), at the field that names the policy.
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["components.cartridges[0].subscribableInfo.deploymentPolicy", "components.groups[0].deploymentPolicy"]
        );
        for needle in ["\"np\"", "\"mock\"", "local, docker"] {
            assert!(p.0[0].message.contains(needle), "{needle} not in {}", p.0[0].message);
        }
        assert!(missing_drivers(&app(), "ap", &defs("docker"), &drivers).is_empty());
        // A driver that registers later (`mock`) makes the same partition valid.
        assert!(missing_drivers(&app(), "ap", &defs("mock"), &[drivers, vec!["mock".into()]].concat()).is_empty());
    }

    #[test]
    fn adding_a_partition_without_a_driver_warns() {
        let np = defs("mock").network_partitions["np"].clone();
        let w = provider_warnings(&np, &["local".into()]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("\"mock\"") && w[0].contains("its drivers: local"), "{w:?}");
        assert!(provider_warnings(&np, &["mock".into()]).is_empty());
    }
}
