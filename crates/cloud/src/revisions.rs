//! What the controller reads of revisions and rollouts: revisions are immutable, so
//! each is read from the store once and kept; a tenant's rollouts (the latest of each
//! application, with its outcome) are read once per reconcile like its scales.

use std::collections::HashMap;
use std::sync::Arc;

use stratos_model::{Revision, Rollout, RolloutOutcome};
use stratos_store::{Store, StoreError, Unreadable};
use tracing::warn;

/// Revisions read so far, by tenant and document id.
#[derive(Default)]
pub struct RevisionCache {
    known: HashMap<(i64, String), Arc<Revision>>,
}

impl RevisionCache {
    /// Revision `number` of `cluster_id`, read from the store the first time; why not
    /// if it is missing or cannot be read.
    pub async fn get(
        &mut self,
        store: &Store,
        tenant: i64,
        cluster_id: &str,
        number: u32,
    ) -> Result<Arc<Revision>, String> {
        let key = (tenant, Revision::key(cluster_id, number));
        if let Some(r) = self.known.get(&key) {
            return Ok(r.clone());
        }
        match store.get_record::<Revision>(tenant, &key.1).await {
            Ok(Some(r)) => {
                let r = Arc::new(r);
                self.known.insert(key, r.clone());
                Ok(r)
            }
            Ok(None) => Err(format!("revision {number} of cluster {cluster_id:?} is not in the store")),
            Err(e) => {
                warn!(error = %e, cluster_id, number, "cannot read a revision");
                Err(format!("revision {number} of cluster {cluster_id:?} cannot be read: {e}"))
            }
        }
    }
}

/// Each application's latest rollout and its outcome, if it has ended.
pub type LatestRollouts = HashMap<String, (Rollout, Option<RolloutOutcome>)>;

/// A tenant's latest rollouts; documents that cannot be read are returned beside them
/// (their application's clusters are frozen, as for any unreadable record).
pub async fn latest_rollouts(store: &Store, tenant: i64) -> Result<(LatestRollouts, Vec<Unreadable>), StoreError> {
    let rollouts = store.list_records::<Rollout>(tenant).await?;
    let mut latest: LatestRollouts = HashMap::new();
    for r in rollouts.records {
        let newer = latest.get(&r.application_id).is_none_or(|(l, _)| l.number < r.number);
        if newer {
            latest.insert(r.application_id.clone(), (r, None));
        }
    }
    let outcomes = store.list_records::<RolloutOutcome>(tenant).await?;
    for o in outcomes.records {
        if let Some((r, outcome)) = latest.get_mut(&o.application_id) {
            if r.number == o.number {
                *outcome = Some(o);
            }
        }
    }
    Ok((latest, rollouts.unreadable.into_iter().chain(outcomes.unreadable).collect()))
}
