//! The load balancer's settings: the flags of `stratos lb` and `stratos up`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use stratos_model::duration::{self, VALUE_NAME as DURATION};

use crate::balance::Algorithm;

/// The load balancer's settings (each a flag of `stratos lb` and `stratos up`).
#[derive(Debug, Clone, clap::Args)]
pub struct LbConfig {
    /// Address the load balancer's proxy ports listen on.
    #[arg(long = "lb-listen", env = "STRATOS_LB_LISTEN", default_value = "127.0.0.1")]
    pub listen_address: IpAddr,
    /// How a cluster's members share requests.
    #[arg(long = "lb-algorithm", env = "STRATOS_LB_ALGORITHM", value_enum, default_value_t = Algorithm::LeastOutstanding)]
    pub algorithm: Algorithm,
    /// Pin clients to a member with the STRATOS_STICKY cookie.
    #[arg(long = "lb-sticky", env = "STRATOS_LB_STICKY")]
    pub sticky: bool,
    /// A client must send a request's headers within this time (slowloris guard), e.g. 10s, 500ms.
    #[arg(long = "lb-header-timeout", value_name = DURATION, value_parser = duration::parse, default_value = "10s")]
    pub header_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes; larger gets 431.
    #[arg(long = "lb-max-header-bytes", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Time allowed to connect to a member.
    #[arg(long = "lb-connect-timeout", value_name = DURATION, value_parser = duration::parse, default_value = "3s")]
    pub connect_timeout: Duration,
    /// A member must start its response within this time of having the whole request,
    /// and not pause longer inside one: else the client gets 504 (or, mid-response, its
    /// connection closes). A slow member is not ejected for it. 0s: no limit.
    #[arg(long = "lb-response-timeout", value_name = DURATION, value_parser = duration::parse, default_value = "60s")]
    pub response_timeout: Duration,
    /// How often each cluster's in-flight request count is published on the bus (each
    /// member's every fifth time). Every second, so that the autoscaler sees a load step
    /// at once.
    #[arg(long = "lb-publish-interval", value_name = DURATION, value_parser = duration::parse, default_value = "1s")]
    pub publish_interval: Duration,
    /// How long a failing member gets no requests; doubles on repeated failures.
    #[arg(long = "lb-eject-for", value_name = DURATION, value_parser = duration::parse, default_value = "10s")]
    pub eject_for: Duration,
    /// The longest ejection.
    #[arg(long = "lb-max-eject-for", value_name = DURATION, value_parser = duration::parse, default_value = "60s")]
    pub max_eject_for: Duration,
    /// How often every routable member is checked with a TCP connect (0s: never).
    #[arg(long = "lb-check-interval", value_name = DURATION, value_parser = duration::parse, default_value = "5s")]
    pub active_check_interval: Duration,
    /// Bind every proxy port on an OS-chosen port instead (tests; see [`Lb::addr_for_port`]).
    #[arg(skip)]
    pub ephemeral_ports: bool,
}

impl Default for LbConfig {
    fn default() -> Self {
        LbConfig {
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            algorithm: Algorithm::LeastOutstanding,
            sticky: false,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(60),
            publish_interval: Duration::from_secs(1),
            eject_for: Duration::from_secs(10),
            max_eject_for: Duration::from_secs(60),
            active_check_interval: Duration::from_secs(5),
            ephemeral_ports: false,
        }
    }
}

impl LbConfig {
    /// The response timeout, if there is one.
    pub fn response_limit(&self) -> Option<Duration> {
        (!self.response_timeout.is_zero()).then_some(self.response_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        lb: LbConfig,
    }

    #[test]
    fn flag_defaults_match_default() {
        let parsed = Cli::parse_from(["lb"]).lb;
        let default = LbConfig::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
        let parsed =
            Cli::parse_from(["lb", "--lb-algorithm", "round-robin", "--lb-sticky", "--lb-header-timeout", "1500ms"]).lb;
        assert_eq!(parsed.algorithm, Algorithm::RoundRobin);
        assert!(parsed.sticky);
        assert_eq!(parsed.header_timeout, Duration::from_millis(1500));
    }
}
