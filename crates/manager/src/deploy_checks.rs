//! What a driver checks at deploy time, before anything is stored: that it can start
//! the application's members where the policies place them (the docker driver: that
//! the cartridge's image is on the partition's engine). A problem is a 400 naming the
//! subscription and the reason, as a definition's would be.

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
    for (at, sub) in app.subscriptions() {
        let Some(cartridge) = defs.cartridges.get(&sub.cartridge_type) else { continue };
        let Some(dp) = defs.deployment_policies.get(&sub.subscribable_info.deployment_policy) else { continue };
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
