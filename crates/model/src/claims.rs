//! Who owns what a deployed cluster claims: its cluster id (which names it in the
//! store, on the bus and in its members' ids) and its host names (which the load
//! balancer routes by). Pure: the manager checks a deploy, or a change to an
//! application, against every deployment in the store before it writes anything.
//!
//! The rules:
//! - a cluster id belongs to one cluster, across every tenant: `<application>.<alias>`
//!   is ambiguous (`x.y` + `z` and `x` + `y.z` are both `x.y.z`), so the second
//!   deployment to reach an id is refused;
//! - a host name belongs to one cluster. Clusters of multi-tenant cartridges of
//!   *different* tenants may share one, since the `/t/<tenant>/` path tells them apart;
//!   that pair (host name, tenant) belongs to one cluster. Host names compare as the
//!   load balancer routes them: case-insensitive, without a trailing dot;
//! - a proxy port (the load balancer's, from the cluster's cartridge's `portMapping`)
//!   that carries TCP (or HTTPS, which the load balancer passes through as TCP)
//!   belongs to one cluster: nothing tells two apart on it. HTTP proxy ports are shared
//!   (the `Host` header tells them apart), but a port is HTTP or TCP, not both;
//! - a proxy port the platform itself listens on (the API, the event bus) is nobody's;
//! - the owner of a clash is named only to a caller of the owner's tenant: another
//!   tenant's application ids must not leak.

use crate::{Cartridge, ClusterSpec, Deployment, Protocol};

/// How the load balancer serves a proxy port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// Routed by `Host` header: shared by clusters.
    Http,
    /// Passed through (TCP, HTTPS): one cluster's.
    Tcp,
}

/// A proxy port a cluster's cartridge maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPort {
    pub port: u32,
    pub kind: ProxyKind,
    /// Its index in the cartridge's `portMapping`.
    pub mapping: usize,
}

impl ProxyPort {
    /// The proxy ports of `cartridge` (none for UDP, which the load balancer does not proxy,
    /// or a proxy port of 0).
    pub fn of(cartridge: &Cartridge) -> Vec<ProxyPort> {
        cartridge
            .port_mapping
            .iter()
            .enumerate()
            .filter(|(_, m)| m.proxy_port != 0)
            .filter_map(|(mapping, m)| {
                let kind = match m.protocol {
                    Protocol::Http => ProxyKind::Http,
                    Protocol::Https | Protocol::Tcp => ProxyKind::Tcp,
                    Protocol::Udp => return None,
                };
                Some(ProxyPort { port: m.proxy_port, kind, mapping })
            })
            .collect()
    }

    /// Can two clusters both have these proxy ports? Only HTTP ones.
    fn clashes_with(&self, other: &ProxyPort) -> bool {
        self.port == other.port && !(self.kind == ProxyKind::Http && other.kind == ProxyKind::Http)
    }
}

/// A port the platform itself listens on, and what listens there ("the API").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedPort {
    pub port: u32,
    pub what: String,
}

/// What one cluster of a deployment claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterClaims {
    pub tenant_id: i64,
    pub application_id: String,
    pub alias: String,
    pub cluster_id: String,
    /// Its cartridge is multi-tenant: it shares its host names with other tenants'.
    pub multi_tenant: bool,
    /// As given; compared normalised.
    pub host_names: Vec<String>,
    /// Its cartridge's proxy ports.
    pub proxy_ports: Vec<ProxyPort>,
    /// Its cartridge type (for messages).
    pub cartridge_type: String,
}

impl ClusterClaims {
    /// The claims of every cluster of `deployment`; `cartridge` finds a cluster's
    /// cartridge (multi-tenant or not, its proxy ports).
    pub fn of<'a>(
        deployment: &Deployment,
        cartridge: impl Fn(&ClusterSpec) -> Option<&'a Cartridge>,
    ) -> Vec<ClusterClaims> {
        deployment
            .clusters
            .iter()
            .map(|spec| {
                let cartridge = cartridge(spec);
                ClusterClaims {
                    tenant_id: deployment.tenant_id,
                    application_id: deployment.application_id.clone(),
                    alias: spec.alias.clone(),
                    cluster_id: spec.cluster_id.clone(),
                    multi_tenant: cartridge.is_some_and(|c| c.multi_tenant),
                    host_names: spec.host_names.clone(),
                    proxy_ports: cartridge.map(ProxyPort::of).unwrap_or_default(),
                    cartridge_type: spec.cartridge_type.clone(),
                }
            })
            .collect()
    }

    fn same_application(&self, other: &ClusterClaims) -> bool {
        self.tenant_id == other.tenant_id && self.application_id == other.application_id
    }

    /// Can `self` and `other` both route `host`? Only multi-tenant clusters of two tenants.
    fn may_share_host(&self, other: &ClusterClaims) -> bool {
        self.multi_tenant && other.multi_tenant && self.tenant_id != other.tenant_id
    }
}

/// What is refused in a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClashOn {
    ClusterId,
    /// The index of the host name in the cluster's `host_names`.
    HostName(usize),
    /// The index of the port mapping in the cluster's cartridge's `portMapping`.
    ProxyPort(usize),
}

/// One claim of a new cluster that another cluster already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    /// The alias of the new cluster that claims it.
    pub alias: String,
    pub on: ClashOn,
    pub message: String,
}

/// A host name as the load balancer matches it: lowercase, without a trailing dot.
pub fn normalize_host_name(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Every claim of `new` (the clusters of one application) that a cluster of
/// `deployed` holds, or that an earlier cluster of `new` itself makes. Deployments of
/// the same application as `new` are ignored in `deployed` (it replaces them).
/// `caller_tenant` is the tenant asking: only its own applications are named.
pub fn clashes(new: &[ClusterClaims], deployed: &[ClusterClaims], caller_tenant: i64) -> Vec<Clash> {
    let mut out = Vec::new();
    for (i, claim) in new.iter().enumerate() {
        let others = deployed.iter().filter(|d| !d.same_application(claim));
        let earlier_siblings = new[..i].iter();
        let holders: Vec<(&ClusterClaims, bool)> =
            others.map(|d| (d, false)).chain(earlier_siblings.map(|s| (s, true))).collect();
        if let Some((holder, sibling)) = holders.iter().find(|(h, _)| h.cluster_id == claim.cluster_id) {
            let message = if *sibling {
                format!(
                    "cluster id {:?} is also the id of alias {:?} of this application",
                    claim.cluster_id, holder.alias
                )
            } else {
                format!(
                    "cluster id {:?} (application id + \".\" + alias) is already the id of {}; change the application id or this alias",
                    claim.cluster_id,
                    owner(holder, caller_tenant)
                )
            };
            out.push(Clash { alias: claim.alias.clone(), on: ClashOn::ClusterId, message });
        }
        for (j, host) in claim.host_names.iter().enumerate() {
            let host = normalize_host_name(host);
            let held = holders.iter().find(|(h, _)| {
                !claim.may_share_host(h) && h.host_names.iter().any(|other| normalize_host_name(other) == host)
            });
            if let Some((holder, sibling)) = held {
                let message = if *sibling {
                    format!("host name {host:?} is also claimed by alias {:?} of this application", holder.alias)
                } else if claim.multi_tenant && holder.multi_tenant {
                    format!(
                        "host name {host:?} with path /t/<this tenant>/ already belongs to {}",
                        owner(holder, caller_tenant)
                    )
                } else {
                    format!("host name {host:?} already belongs to {}", owner(holder, caller_tenant))
                };
                out.push(Clash { alias: claim.alias.clone(), on: ClashOn::HostName(j), message });
            }
        }
        for port in &claim.proxy_ports {
            let held = holders.iter().find_map(|(h, sibling)| {
                h.proxy_ports.iter().find(|p| port.clashes_with(p)).map(|p| (*h, *sibling, p))
            });
            if let Some((holder, sibling, theirs)) = held {
                let what = match (port.kind, theirs.kind) {
                    (ProxyKind::Tcp, ProxyKind::Tcp) => "a TCP proxy port",
                    (ProxyKind::Http, _) => "a TCP proxy port (an HTTP one here)",
                    (ProxyKind::Tcp, ProxyKind::Http) => "an HTTP proxy port (a TCP one here)",
                };
                let whose = if sibling {
                    format!("alias {:?} of this application", holder.alias)
                } else {
                    owner(holder, caller_tenant)
                };
                let message = format!(
                    "cartridge {:?} maps proxy port {} (portMapping[{}].proxyPort), which is {what} of {whose}",
                    claim.cartridge_type, port.port, port.mapping
                );
                out.push(Clash { alias: claim.alias.clone(), on: ClashOn::ProxyPort(port.mapping), message });
            }
        }
    }
    out
}

/// Every proxy port of `new` that the platform itself listens on.
pub fn reserved_port_clashes(new: &[ClusterClaims], reserved: &[ReservedPort]) -> Vec<Clash> {
    let mut out = Vec::new();
    for claim in new {
        for port in &claim.proxy_ports {
            if let Some(r) = reserved.iter().find(|r| r.port == port.port) {
                let message = format!(
                    "cartridge {:?} maps proxy port {} (portMapping[{}].proxyPort), which the platform keeps for {}",
                    claim.cartridge_type, port.port, port.mapping, r.what
                );
                out.push(Clash { alias: claim.alias.clone(), on: ClashOn::ProxyPort(port.mapping), message });
            }
        }
    }
    out
}

/// The holder of a claim, named only to its own tenant.
fn owner(holder: &ClusterClaims, caller_tenant: i64) -> String {
    if holder.tenant_id == caller_tenant {
        format!("cluster {:?} of deployed application {:?}", holder.cluster_id, holder.application_id)
    } else {
        "another tenant's deployed application".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(tenant: i64, app: &str, alias: &str, multi: bool, hosts: &[&str]) -> ClusterClaims {
        ClusterClaims {
            tenant_id: tenant,
            application_id: app.into(),
            alias: alias.into(),
            cluster_id: crate::cluster_id(app, alias),
            multi_tenant: multi,
            host_names: hosts.iter().map(|h| h.to_string()).collect(),
            proxy_ports: vec![],
            cartridge_type: "php".into(),
        }
    }

    fn with_ports(mut c: ClusterClaims, ports: &[(u32, ProxyKind)]) -> ClusterClaims {
        c.proxy_ports =
            ports.iter().enumerate().map(|(mapping, &(port, kind))| ProxyPort { port, kind, mapping }).collect();
        c
    }

    #[test]
    fn a_tcp_proxy_port_belongs_to_one_cluster_and_http_ones_are_shared() {
        use ProxyKind::{Http, Tcp};
        let deployed = [
            with_ports(claims(1, "db", "mysql", false, &[]), &[(13306, Tcp)]),
            with_ports(claims(1, "web", "php", false, &["web.example"]), &[(8280, Http)]),
        ];
        // Another tenant's TCP port: refused at its mapping, the owner unnamed.
        let thief = [with_ports(claims(2, "thief", "db", false, &[]), &[(8280, Http), (13306, Tcp)])];
        let found = clashes(&thief, &deployed, 2);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].on, ClashOn::ProxyPort(1));
        assert!(found[0].message.contains("13306") && found[0].message.contains("another tenant"), "{found:?}");
        assert!(!found[0].message.contains("\"db\""), "{}", found[0].message);
        // Its own tenant hears whose it is.
        let found = clashes(&[with_ports(claims(1, "x", "db", false, &[]), &[(13306, Tcp)])], &deployed, 1);
        assert!(found[0].message.contains("\"db\""), "{}", found[0].message);
        // HTTP on a TCP port, TCP on an HTTP port: refused; HTTP beside HTTP: fine.
        let http_on_tcp = [with_ports(claims(2, "h", "web", false, &["h.example"]), &[(13306, Http)])];
        assert_eq!(clashes(&http_on_tcp, &deployed, 2).len(), 1);
        let tcp_on_http = [with_ports(claims(2, "t", "db", false, &[]), &[(8280, Tcp)])];
        assert_eq!(clashes(&tcp_on_http, &deployed, 2).len(), 1);
        let http = [with_ports(claims(2, "h", "web", false, &["h.example"]), &[(8280, Http)])];
        assert!(clashes(&http, &deployed, 2).is_empty());
        // The same application again (a redeploy) holds nothing against itself.
        assert!(clashes(&[deployed[0].clone()], &deployed, 1).is_empty());
        // Two clusters of one new application on one TCP port.
        let twins = [
            with_ports(claims(3, "app", "one", false, &[]), &[(15000, Tcp)]),
            with_ports(claims(3, "app", "two", false, &[]), &[(15000, Tcp)]),
        ];
        let found = clashes(&twins, &[], 3);
        assert_eq!((found.len(), found[0].alias.as_str()), (1, "two"), "{found:?}");
    }

    #[test]
    fn the_platforms_own_ports_are_nobodys() {
        let reserved = [ReservedPort { port: 9443, what: "the API".into() }];
        let app = [with_ports(claims(2, "a", "web", false, &[]), &[(8280, ProxyKind::Http), (9443, ProxyKind::Tcp)])];
        let found = reserved_port_clashes(&app, &reserved);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].on, ClashOn::ProxyPort(1));
        assert!(found[0].message.contains("the API"), "{}", found[0].message);
        assert!(reserved_port_clashes(&app[..0], &reserved).is_empty());
    }

    #[test]
    fn proxy_ports_come_from_the_cartridge() {
        let cartridge: Cartridge = serde_json::from_value(serde_json::json!({
            "type": "x", "category": "app", "provider": "p", "host": "h", "version": "1",
            "portMapping": [
                {"protocol": "http", "port": 80, "proxyPort": 8280},
                {"protocol": "https", "port": 443, "proxyPort": 8243},
                {"protocol": "udp", "port": 53, "proxyPort": 5353},
                {"protocol": "tcp", "port": 22, "proxyPort": 0}
            ],
            "iaasProvider": [{"type": "local", "imageId": "x"}]
        }))
        .unwrap();
        assert_eq!(
            ProxyPort::of(&cartridge),
            [
                ProxyPort { port: 8280, kind: ProxyKind::Http, mapping: 0 },
                ProxyPort { port: 8243, kind: ProxyKind::Tcp, mapping: 1 }
            ]
        );
    }

    #[test]
    fn a_host_name_of_another_application_is_refused_and_named_to_its_tenant_only() {
        let deployed = [claims(1, "php-web", "web", false, &["php-web.web.stratos.local"])];
        let thief = [claims(1, "thief", "web", false, &["thief.web.stratos.local", "PHP-web.web.stratos.local."])];
        let found = clashes(&thief, &deployed, 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].on, ClashOn::HostName(1));
        assert_eq!(found[0].alias, "web");
        assert!(found[0].message.contains("\"php-web\""), "{}", found[0].message);

        // The same claim from another tenant: refused, the owner not named.
        let found = clashes(&[claims(2, "thief", "web", false, &["php-web.web.stratos.local"])], &deployed, 2);
        assert_eq!(found.len(), 1);
        assert!(!found[0].message.contains("php-web\""), "{}", found[0].message);
        assert!(found[0].message.contains("another tenant"), "{}", found[0].message);
    }

    #[test]
    fn unrelated_names_and_the_same_application_are_not_clashes() {
        let deployed = [claims(1, "a", "web", false, &["a.example"]), claims(1, "b", "web", false, &["b.example"])];
        assert!(clashes(&[claims(1, "c", "web", false, &["c.example"])], &deployed, 1).is_empty());
        // A deployment of the same application (being replaced) holds nothing against it.
        assert!(clashes(&[claims(1, "a", "web", false, &["a.example"])], &deployed, 1).is_empty());
        // Another tenant's application of the same id is another application.
        assert_eq!(clashes(&[claims(2, "a", "web", false, &["a.example"])], &deployed, 2).len(), 2);
    }

    #[test]
    fn multi_tenant_clusters_share_a_host_across_tenants_only() {
        let deployed = [claims(1, "a", "mt", true, &["shared.example"])];
        assert!(clashes(&[claims(2, "b", "mt", true, &["shared.example"])], &deployed, 2).is_empty());
        // The same tenant twice: /t/<tenant>/ on that host would have two owners.
        let same_tenant = clashes(&[claims(1, "b", "mt", true, &["shared.example"])], &deployed, 1);
        assert_eq!(same_tenant.len(), 1);
        assert!(same_tenant[0].message.contains("/t/"), "{}", same_tenant[0].message);
        // A single-tenant cluster never shares.
        assert_eq!(clashes(&[claims(2, "b", "st", false, &["shared.example"])], &deployed, 2).len(), 1);
    }

    #[test]
    fn colliding_cluster_ids_are_refused() {
        // x.y + z and x + y.z are both x.y.z.
        let deployed = [claims(1, "x.y", "z", false, &[])];
        let found = clashes(&[claims(1, "x", "y.z", false, &[])], &deployed, 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].on, ClashOn::ClusterId);
        assert!(found[0].message.contains("\"x.y.z\""), "{}", found[0].message);
        assert!(found[0].message.contains("\"x.y\""), "the owner is named to its tenant: {}", found[0].message);
        // Across tenants too (the topology is the platform's), without naming the owner.
        let found = clashes(&[claims(7, "x", "y.z", false, &[])], &deployed, 7);
        assert_eq!(found.len(), 1);
        assert!(!found[0].message.contains("\"x.y\""), "{}", found[0].message);
    }

    #[test]
    fn clusters_of_one_application_cannot_claim_the_same_name() {
        let app = [claims(1, "a", "one", false, &["dup.example"]), claims(1, "a", "two", false, &["Dup.example"])];
        let found = clashes(&app, &[], 1);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].alias.as_str(), &found[0].on), ("two", &ClashOn::HostName(0)));
    }

    #[test]
    fn claims_come_from_the_deployment() {
        let d = Deployment {
            application_id: "app".into(),
            tenant_id: 3,
            application_policy_id: "p".into(),
            status: crate::DeploymentStatus::Deployed,
            deployed_at: 0,
            clusters: vec![ClusterSpec {
                cluster_id: "app.web".into(),
                alias: "web".into(),
                cartridge_type: "php".into(),
                min: 1,
                max: 1,
                desired: 1,
                deployment_policy: "d".into(),
                autoscaling_policy: "a".into(),
                host_names: vec!["h.example".into()],
                artifact_repository: None,
                depends_on: vec![],
                revision: None,
            }],
            termination_behaviour: None,
            groups: vec![],
        };
        let php: Cartridge = serde_json::from_value(serde_json::json!({
            "type": "php", "category": "app", "provider": "p", "host": "h", "version": "1", "multiTenant": true,
            "portMapping": [{"protocol": "tcp", "port": 80, "proxyPort": 13306}],
            "iaasProvider": [{"type": "local", "imageId": "x"}]
        }))
        .unwrap();
        let c = ClusterClaims::of(&d, |spec| (spec.cartridge_type == "php").then_some(&php));
        assert_eq!(c, [with_ports(claims(3, "app", "web", true, &["h.example"]), &[(13306, ProxyKind::Tcp)])]);
    }
}
