//! The cluster monitors: every interval, each deployed cluster is evaluated
//! against its autoscaling policy and its size written for the cloud controller.

use std::collections::HashMap;
use std::time::Duration;

use stratos_bus::events::ScalingDecisionEvent;
use stratos_bus::{now_millis, AnyEvent, Bus};
use stratos_model::placement::{Placement, Slot};
use stratos_model::topology::{Member, MemberStatus};
use stratos_model::{ClusterScale, Definitions, Deployment, DeploymentStatus, NetworkPartition};
use stratos_store::Store;
use tracing::{debug, error, info};

use crate::decision::{decide, Action, Decision, FactorStats, Inputs, ScaleDownCounter, Thresholds};

#[derive(Debug, Clone)]
pub struct AutoscalerConfig {
    /// How often clusters are evaluated; also how far ahead loads are predicted.
    pub interval: Duration,
    /// Evaluations in a row that must ask for fewer members before one is removed.
    pub scale_down_after: u32,
    /// Predict one interval ahead (s = u + u'·t + ½·u''·t²) rather than use averages as they are.
    pub use_prediction: bool,
    /// Summaries older than this do not vote.
    pub freshness: Duration,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            interval: Duration::from_secs(15),
            scale_down_after: 3,
            use_prediction: true,
            freshness: Duration::from_secs(60),
        }
    }
}

/// Decisions kept per cluster for `stratos cluster scaling-history`.
pub const HISTORY_LENGTH: usize = 100;

#[derive(Default)]
struct Observed {
    /// (cluster, network partition, factor) → latest cluster summary and its time.
    clusters: HashMap<(String, String, String), (FactorStats, u64)>,
    /// member → latest load average.
    member_load: HashMap<String, f64>,
}

pub async fn run(store: Store, bus: Bus, config: AutoscalerConfig) -> Result<(), String> {
    let mut summaries = bus.subscribe("summarized-health-stats/#").await.map_err(|e| e.to_string())?;
    let mut observed = Observed::default();
    let mut counters: HashMap<String, ScaleDownCounter> = HashMap::new();
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(interval = ?config.interval, prediction = config.use_prediction, "autoscaler started");
    loop {
        tokio::select! {
            Some(AnyEvent::HealthSummaryEvent(s)) = summaries.recv() => {
                let stats = FactorStats { average: s.average, gradient: s.gradient, second_derivative: s.second_derivative };
                match s.member_id {
                    None => { observed.clusters.insert((s.cluster_id, s.network_partition_id, s.factor), (stats, s.timestamp)); }
                    Some(member) if s.factor == crate::LOAD_AVERAGE => { observed.member_load.insert(member, s.average); }
                    Some(_) => {}
                }
            }
            _ = tick.tick() => {
                if let Err(e) = evaluate_all(&store, &bus, &config, &observed, &mut counters).await {
                    error!(error = %e, "evaluation failed");
                }
            }
        }
    }
}

async fn evaluate_all(
    store: &Store,
    bus: &Bus,
    config: &AutoscalerConfig,
    observed: &Observed,
    counters: &mut HashMap<String, ScaleDownCounter>,
) -> Result<(), String> {
    let deployments: Vec<Deployment> = store
        .list_all_tenants("deployment")
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_value(v).ok())
        .filter(|d: &Deployment| d.status == DeploymentStatus::Deployed)
        .collect();
    if deployments.is_empty() {
        return Ok(());
    }
    let topology = store.load_topology().await.map_err(|e| e.to_string())?;
    let mut definitions: HashMap<i64, Definitions> = HashMap::new();
    for deployment in deployments {
        if let std::collections::hash_map::Entry::Vacant(slot) = definitions.entry(deployment.tenant_id) {
            slot.insert(store.load_definitions(deployment.tenant_id).await.map_err(|e| e.to_string())?);
        }
        let defs = &definitions[&deployment.tenant_id];
        let mut plans = Vec::new();
        for spec in &deployment.clusters {
            let Some(cluster) = topology.cluster(&spec.cluster_id) else { continue };
            let Some(policy) = defs.autoscaling_policies.get(&spec.autoscaling_policy) else { continue };
            let live: Vec<&Member> =
                cluster.members.values().filter(|m| m.status < MemberStatus::InMaintenance).collect();
            let inputs = inputs_for(&spec.cluster_id, spec.min, spec.max, live.len() as u32, observed, config);
            let decision = decide(
                &inputs,
                &Thresholds::from(&policy.load_thresholds),
                config.interval.as_secs_f64(),
                config.use_prediction,
            );
            let counter = counters.entry(spec.cluster_id.clone()).or_default();
            let action = counter.next(inputs.current, decision.required, config.scale_down_after);
            plans.push((spec, live, decision, action));
        }
        apply_scaling_dependents(&deployment, defs, &mut plans);
        for (spec, live, decision, action) in plans {
            let (name, desired, drain_first) = match action {
                Action::None => ("none", decision.inputs.current, Vec::new()),
                Action::ScaleUp(to) => ("scale-up", to, Vec::new()),
                Action::ScaleDown(to) => {
                    let victim = least_loaded(&deployment, spec, &live, defs, observed);
                    ("scale-down", to, victim.into_iter().collect())
                }
            };
            if action != Action::None {
                info!(cluster_id = %spec.cluster_id, action = name, from = decision.inputs.current, to = desired, required = decision.required, "scaling");
                let scale = ClusterScale {
                    cluster_id: spec.cluster_id.clone(),
                    desired,
                    drain_first,
                    updated_at: now_millis(),
                };
                store
                    .put(
                        deployment.tenant_id,
                        "cluster-scale",
                        &spec.cluster_id,
                        &serde_json::to_value(&scale).expect("serialises"),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            } else {
                debug!(cluster_id = %spec.cluster_id, required = decision.required, current = decision.inputs.current, "no scaling");
            }
            record(store, bus, &deployment, &spec.cluster_id, name, desired, &decision).await?;
        }
    }
    Ok(())
}

fn inputs_for(
    cluster_id: &str,
    min: u32,
    max: u32,
    current: u32,
    observed: &Observed,
    config: &AutoscalerConfig,
) -> Inputs {
    let oldest = now_millis().saturating_sub(config.freshness.as_millis() as u64);
    let fresh = |factor: &str| -> Vec<FactorStats> {
        observed
            .clusters
            .iter()
            .filter(|((c, _, f), (_, t))| c == cluster_id && f == factor && *t >= oldest)
            .map(|(_, (s, _))| *s)
            .collect()
    };
    // Requests in flight add up over network partitions; per-member loads average.
    let sum = |v: Vec<FactorStats>| -> Option<FactorStats> {
        (!v.is_empty()).then(|| FactorStats {
            average: v.iter().map(|s| s.average).sum(),
            gradient: v.iter().map(|s| s.gradient).sum(),
            second_derivative: v.iter().map(|s| s.second_derivative).sum(),
        })
    };
    let mean = |v: Vec<FactorStats>| -> Option<FactorStats> {
        let n = v.len() as f64;
        sum(v).map(|s| FactorStats {
            average: s.average / n,
            gradient: s.gradient / n,
            second_derivative: s.second_derivative / n,
        })
    };
    Inputs {
        min,
        max,
        current,
        requests_in_flight: sum(fresh(crate::REQUESTS_IN_FLIGHT)),
        load_average: mean(fresh(crate::LOAD_AVERAGE)),
        memory_consumption: mean(fresh(crate::MEMORY_CONSUMPTION)),
    }
}

type Plan<'a> = (&'a stratos_model::ClusterSpec, Vec<&'a Member>, Decision, Action);

/// Scaling dependents grow together: when one cluster of a group scales up by a
/// ratio, the others grow by at least that ratio (within their max).
fn apply_scaling_dependents(deployment: &Deployment, defs: &Definitions, plans: &mut [Plan]) {
    let Some(app) = defs.applications.get(&deployment.application_id) else { return };
    for group in app.components.dependencies.iter().flat_map(|d| &d.scaling_dependents) {
        let aliases: Vec<&str> = group.aliases.iter().filter_map(|a| a.strip_prefix("cartridge.")).collect();
        let ratio = plans
            .iter()
            .filter(|(spec, ..)| aliases.contains(&spec.alias.as_str()))
            .filter_map(|(_, _, d, a)| match a {
                Action::ScaleUp(to) if d.inputs.current > 0 => Some(*to as f64 / d.inputs.current as f64),
                _ => None,
            })
            .fold(1.0f64, f64::max);
        if ratio <= 1.0 {
            continue;
        }
        for (spec, _, decision, action) in plans.iter_mut().filter(|(spec, ..)| aliases.contains(&spec.alias.as_str()))
        {
            let wanted = ((decision.inputs.current.max(1) as f64) * ratio).ceil() as u32;
            let wanted = wanted.min(spec.max);
            let current_target = match action {
                Action::ScaleUp(to) => *to,
                _ => decision.inputs.current,
            };
            if wanted > current_target {
                *action = Action::ScaleUp(wanted);
            }
        }
    }
}

/// The member to remove: in the partition that empties first (the last filled,
/// the burst network partition before the home one), the least loaded.
fn least_loaded(
    deployment: &Deployment,
    spec: &stratos_model::ClusterSpec,
    live: &[&Member],
    defs: &Definitions,
    observed: &Observed,
) -> Option<String> {
    let app_policy = defs.application_policies.get(&deployment.application_policy_id)?;
    let policy = defs.deployment_policies.get(&spec.deployment_policy)?;
    let nps: HashMap<String, NetworkPartition> = defs.network_partitions.clone().into_iter().collect();
    let placement = Placement::new(app_policy.algorithm, &app_policy.network_partitions, policy, &nps);
    let mut counts: HashMap<Slot, u32> = HashMap::new();
    for m in live {
        *counts.entry((m.network_partition_id.clone(), m.partition_id.clone())).or_insert(0) += 1;
    }
    let slot = placement.next_to_remove(&counts)?;
    live.iter()
        .filter(|m| (m.network_partition_id.clone(), m.partition_id.clone()) == slot)
        .min_by(|a, b| {
            let load = |m: &Member| observed.member_load.get(&m.member_id).copied().unwrap_or(0.0);
            load(a).total_cmp(&load(b)).then(b.init_time.cmp(&a.init_time))
        })
        .map(|m| m.member_id.clone())
}

/// Publishes the decision and keeps it in the cluster's history.
async fn record(
    store: &Store,
    bus: &Bus,
    deployment: &Deployment,
    cluster_id: &str,
    action: &str,
    desired: u32,
    decision: &Decision,
) -> Result<(), String> {
    let event = ScalingDecisionEvent {
        cluster_id: cluster_id.to_string(),
        application_id: deployment.application_id.clone(),
        action: action.to_string(),
        current: decision.inputs.current,
        desired,
        decision: serde_json::to_value(decision).expect("serialises"),
        timestamp: now_millis(),
    };
    if let Err(e) = bus.publish(&event).await {
        tracing::warn!(error = %e, "cannot publish a scaling decision");
    }
    let mut history: Vec<serde_json::Value> = store
        .get(deployment.tenant_id, "scaling-history", cluster_id)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    history.push(serde_json::to_value(&event).expect("serialises"));
    if history.len() > HISTORY_LENGTH {
        history.drain(..history.len() - HISTORY_LENGTH);
    }
    store
        .put(deployment.tenant_id, "scaling-history", cluster_id, &serde_json::Value::Array(history))
        .await
        .map_err(|e| e.to_string())
}
