//! How old a received event is, for the events that carry the time they were sent
//! (the receive lag in `stratos_bus_receive_lag_seconds`).

use crate::events::AnyEvent;

/// Seconds between `event`'s own time and `now_ms` (0 for a clock ahead of ours);
/// `None` for an event that carries no time.
pub fn age_seconds(event: &AnyEvent, now_ms: u64) -> Option<f64> {
    let sent = match event {
        AnyEvent::MemberHealthStatEvent(e) => e.timestamp,
        AnyEvent::InFlightRequestsEvent(e) => e.timestamp,
        AnyEvent::ClusterHealthSummaryEvent(e) => e.timestamp,
        AnyEvent::ScalingDecisionEvent(e) => e.timestamp,
        AnyEvent::LogEvent(e) => e.timestamp,
        _ => return None,
    };
    Some(now_ms.saturating_sub(sent) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::InFlightRequestsEvent;

    #[test]
    fn timed_events_have_an_age_others_none() {
        let e = AnyEvent::InFlightRequestsEvent(InFlightRequestsEvent {
            cluster_id: "c".into(),
            network_partition_id: "np".into(),
            member_id: None,
            in_flight: 0.0,
            timestamp: 10_000,
        });
        assert_eq!(age_seconds(&e, 12_500), Some(2.5));
        assert_eq!(age_seconds(&e, 9_000), Some(0.0), "a clock ahead is no negative age");
        let untimed = AnyEvent::TenantRemovedEvent(crate::events::TenantRemovedEvent { tenant_id: 1 });
        assert_eq!(age_seconds(&untimed, 1), None);
    }
}
