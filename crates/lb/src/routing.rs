//! The routing table: a pure function of the topology (and the tenants' domains).
//!
//! Every proxy port of the topology gets routes. An HTTP port routes by the `Host`
//! header (without its port, lowercased) to the cluster whose `hostNames` name it, and
//! by a tenant path prefix `/t/<tenant domain or id>/` to a cluster of a multi-tenant
//! service; the prefix is kept when forwarding (tenant-aware apps expect it, as in
//! Apache Stratos). A TCP port (`tcp`, and `https`, passed through to the member,
//! which terminates TLS) belongs to one cluster. Only members that serve traffic
//! (`Active`) are endpoints; each carries its member's counters, which the
//! [`Registry`] keeps by member id across rebuilds.

use std::borrow::Cow;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use stratos_bus::events::{AnyEvent, MemberRef, TenantCreatedEvent, TenantUpdatedEvent};
use stratos_model::topology::{Cluster, Member, MemberStatus, Port, Service, ServiceType, Topology};
use stratos_model::Protocol;

use crate::stats::{ClusterStats, MemberStats, Registry};

/// What a proxy port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// HTTP/1.1 and h2c, routed by host name and tenant path.
    Http,
    /// Raw TCP (also `https`: TLS passes through to the member), one cluster per port.
    Tcp,
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortKind::Http => "http",
            PortKind::Tcp => "tcp",
        })
    }
}

/// A member the load balancer may send new requests to, on one port.
#[derive(Debug)]
pub struct Endpoint {
    pub member_id: String,
    pub network_partition_id: String,
    /// The member's private address (an IP, or a name to resolve).
    pub host: String,
    /// The port the member listens on for this proxy port.
    pub port: u16,
    /// The member's counters, shared by every table that names the member.
    pub stats: Arc<MemberStats>,
    /// [`Endpoint::authority`], made once: requests use it (and share it) as a pool key.
    authority: Arc<str>,
}

impl Endpoint {
    fn new(member_id: String, network_partition_id: String, host: String, port: u16, stats: Arc<MemberStats>) -> Self {
        let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        Endpoint { member_id, network_partition_id, host, port, stats, authority: authority.into() }
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        self.authority.to_string()
    }

    /// [`Endpoint::authority`], shared.
    pub(crate) fn authority_key(&self) -> &Arc<str> {
        &self.authority
    }
}

/// One cluster as seen from one proxy port.
#[derive(Debug)]
pub struct Upstream {
    pub cluster_id: String,
    pub service_name: String,
    pub tenant_id: i64,
    pub multi_tenant: bool,
    /// Lowercased, as matched against the `Host` header.
    pub host_names: Vec<String>,
    /// The network partitions the cluster has members in (any status).
    pub network_partitions: Vec<String>,
    /// Routable members, by member id.
    pub members: Vec<Endpoint>,
    pub stats: Arc<ClusterStats>,
}

/// The routes of one proxy port.
#[derive(Debug)]
pub struct PortRoutes {
    pub kind: PortKind,
    /// Every cluster exposed on the port, in topology order (service name, cluster id).
    pub upstreams: Vec<Arc<Upstream>>,
    /// Host name → index in `upstreams` (the first cluster that names it).
    hosts: HashMap<String, usize>,
    /// Tenant domain or id → indexes of the multi-tenant clusters serving it.
    tenants: HashMap<String, Vec<usize>>,
}

impl PortRoutes {
    fn new(kind: PortKind) -> PortRoutes {
        PortRoutes { kind, upstreams: Vec::new(), hosts: HashMap::new(), tenants: HashMap::new() }
    }

    /// The cluster for a request to `host` (normalised) with `path`.
    ///
    /// A tenant path (`/t/<tenant>/...`) naming a multi-tenant cluster on this port wins,
    /// unless the host names a single-tenant cluster; among several clusters serving the
    /// tenant, the one that also names the host is preferred.
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Upstream>> {
        let by_host = self.hosts.get(host).map(|&i| &self.upstreams[i]);
        if let Some(tenant) = tenant_of_path(path) {
            if let Some(candidates) = self.tenants.get(&tenant.to_ascii_lowercase()) {
                if by_host.is_none_or(|u| u.multi_tenant) {
                    let mut serving = candidates.iter().map(|&i| &self.upstreams[i]);
                    let preferred = serving.clone().find(|u| u.host_names.iter().any(|h| h == host));
                    return preferred.or_else(|| serving.next());
                }
            }
        }
        by_host
    }

    /// The cluster of a TCP port: the first one that claimed it.
    pub fn tcp_upstream(&self) -> Option<&Arc<Upstream>> {
        self.upstreams.first()
    }

    /// The host names routed on this port, sorted.
    pub fn host_names(&self) -> Vec<&str> {
        let mut hosts: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
        hosts.sort_unstable();
        hosts
    }
}

/// Routes for every proxy port, rebuilt from the topology on each change.
#[derive(Debug, Default)]
pub struct RoutingTable {
    pub ports: BTreeMap<u16, PortRoutes>,
    /// Conflicts met while building (a host claimed twice, a port of two kinds, ...).
    pub warnings: Vec<String>,
}

impl RoutingTable {
    /// The cluster for an HTTP request on `port`; `None` when nothing routes it.
    pub fn route_http(&self, port: u16, host: &str, path: &str) -> Option<&Arc<Upstream>> {
        let routes = self.ports.get(&port)?;
        if routes.kind != PortKind::Http {
            return None;
        }
        routes.route(host, path)
    }

    /// Every routable member: (cluster id, endpoint), each member once per port.
    pub fn endpoints(&self) -> impl Iterator<Item = (&Upstream, &Endpoint)> {
        self.ports.values().flat_map(|r| r.upstreams.iter()).flat_map(|u| u.members.iter().map(move |m| (&**u, m)))
    }

    /// Routable member id → cluster id.
    pub fn routable_members(&self) -> BTreeMap<&str, &str> {
        self.endpoints().map(|(u, m)| (m.member_id.as_str(), u.cluster_id.as_str())).collect()
    }

    /// Cluster id → its network partitions, for every cluster in the table.
    pub fn clusters(&self) -> BTreeMap<&str, &[String]> {
        self.ports
            .values()
            .flat_map(|r| r.upstreams.iter())
            .map(|u| (u.cluster_id.as_str(), u.network_partitions.as_slice()))
            .collect()
    }
}

/// `/t/<tenant>/...` or `/t/<tenant>` → the tenant.
pub fn tenant_of_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/t/")?;
    let tenant = rest.split('/').next()?;
    (!tenant.is_empty()).then_some(tenant)
}

/// The host of a `Host` header or `:authority`: without the port, lowercased, without a
/// trailing dot. `None` when it is not a host name or an IP address.
pub fn normalize_host(raw: &str) -> Option<String> {
    normalized_host(raw).map(Cow::into_owned)
}

/// [`normalize_host`], borrowing from `raw` when it can (as for every request).
pub(crate) fn normalized_host(raw: &str) -> Option<Cow<'_, str>> {
    let raw = raw.trim();
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return None;
        }
        return Some(Cow::Owned(format!("[{}]", inside.to_ascii_lowercase())));
    } else {
        match raw.split_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    if !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_') {
        return None;
    }
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.chars().all(|c| c.is_ascii_digit())
}

/// The port a member listens on behind `proxy` (its own ports, else its service's).
fn member_port(member: &Member, service: &Service, proxy: u16) -> Option<u16> {
    let ports: &[Port] = if member.ports.is_empty() { &service.ports } else { &member.ports };
    ports.iter().find(|p| p.proxy == u32::from(proxy)).and_then(|p| u16::try_from(p.value).ok()).filter(|&v| v != 0)
}

/// Builds the routing table of `topology`. `tenants` maps tenant ids to their domains
/// (for tenant path prefixes); `registry` hands out the counters of members and clusters.
pub fn build(topology: &Topology, tenants: &BTreeMap<i64, String>, registry: &Registry) -> RoutingTable {
    let mut table = RoutingTable::default();
    // Claims are taken in the order the clusters were created, so that a cluster
    // created later never takes a host name (or a TCP port) from one that has it,
    // whatever their names; the manager refuses such a deploy, this is the defence
    // behind it (a forged or legacy topology).
    let mut clusters: Vec<(&Service, &Cluster)> =
        topology.services.values().flat_map(|s| s.clusters.values().map(move |c| (s, c))).collect();
    // Ties (topologies saved before creation times were kept) in the order of old: by
    // service, then cluster id. The sort is stable and the input is in that order.
    clusters.sort_by_key(|(_, c)| c.created_at);
    for (service, cluster) in clusters {
        let multi_tenant = service.service_type == ServiceType::MultiTenant;
        {
            // The proxy ports the cluster exposes, from its service and its members.
            let mut ports: BTreeMap<u16, Protocol> = BTreeMap::new();
            for p in service.ports.iter().chain(cluster.members.values().flat_map(|m| m.ports.iter())) {
                if p.proxy == 0 {
                    continue;
                }
                match u16::try_from(p.proxy) {
                    Ok(port) => {
                        ports.entry(port).or_insert(p.protocol);
                    }
                    Err(_) => table.warnings.push(format!(
                        "cluster {}: proxy port {} is out of range, ignored",
                        cluster.cluster_id, p.proxy
                    )),
                }
            }
            let network_partitions: Vec<String> = cluster
                .members
                .values()
                .map(|m| m.network_partition_id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let host_names: Vec<String> = cluster
                .host_names
                .iter()
                .filter_map(|h| normalize_host(h))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for (port, protocol) in ports {
                let kind = match protocol {
                    Protocol::Http => PortKind::Http,
                    Protocol::Https | Protocol::Tcp => PortKind::Tcp,
                    Protocol::Udp => {
                        table.warnings.push(format!(
                            "cluster {}: proxy port {port} is UDP, which the load balancer does not proxy",
                            cluster.cluster_id
                        ));
                        continue;
                    }
                };
                let members: Vec<Endpoint> = cluster
                    .members
                    .values()
                    .filter(|m| m.status.serves_traffic())
                    .filter_map(|m| {
                        let host = m.default_private_ip.as_deref().filter(|ip| !ip.is_empty())?;
                        let member_port = member_port(m, service, port)?;
                        Some(Endpoint::new(
                            m.member_id.clone(),
                            m.network_partition_id.clone(),
                            host.to_string(),
                            member_port,
                            registry.member(&m.member_id, &cluster.cluster_id, &m.network_partition_id),
                        ))
                    })
                    .collect();
                let upstream = Arc::new(Upstream {
                    cluster_id: cluster.cluster_id.clone(),
                    service_name: service.service_name.clone(),
                    tenant_id: cluster.tenant_id,
                    multi_tenant,
                    host_names: host_names.clone(),
                    network_partitions: network_partitions.clone(),
                    members,
                    stats: registry.cluster(&cluster.cluster_id),
                });
                let routes = table.ports.entry(port).or_insert_with(|| PortRoutes::new(kind));
                if routes.kind != kind {
                    table.warnings.push(format!(
                        "cluster {}: proxy port {port} is already a {} port, cannot also be {kind}; ignored",
                        cluster.cluster_id, routes.kind
                    ));
                    continue;
                }
                let index = routes.upstreams.len();
                if kind == PortKind::Tcp && index > 0 {
                    table.warnings.push(format!(
                        "cluster {}: TCP proxy port {port} already belongs to cluster {}; ignored",
                        cluster.cluster_id, routes.upstreams[0].cluster_id
                    ));
                    continue;
                }
                if kind == PortKind::Http {
                    for host in &upstream.host_names {
                        match routes.hosts.get(host) {
                            None => {
                                routes.hosts.insert(host.clone(), index);
                            }
                            // Multi-tenant clusters of different tenants may share a host: the
                            // tenant path tells them apart.
                            Some(&other)
                                if multi_tenant
                                    && routes.upstreams[other].multi_tenant
                                    && routes.upstreams[other].tenant_id != cluster.tenant_id => {}
                            Some(&other) => table.warnings.push(format!(
                                "host {host} on port {port} is claimed by clusters {} and {}; the one created first keeps it",
                                routes.upstreams[other].cluster_id, cluster.cluster_id
                            )),
                        }
                    }
                    if multi_tenant {
                        let mut keys = vec![cluster.tenant_id.to_string()];
                        if let Some(domain) = tenants.get(&cluster.tenant_id) {
                            keys.push(domain.to_ascii_lowercase());
                        }
                        for key in keys {
                            routes.tenants.entry(key).or_default().push(index);
                        }
                    }
                }
                routes.upstreams.push(upstream);
            }
        }
    }
    table
}

fn new_member(r: &MemberRef, status: MemberStatus) -> Member {
    Member {
        service_name: r.service_name.clone(),
        cluster_id: r.cluster_id.clone(),
        member_id: r.member_id.clone(),
        network_partition_id: r.network_partition_id.clone(),
        partition_id: r.partition_id.clone(),
        status,
        default_private_ip: None,
        default_public_ip: None,
        ports: Vec::new(),
        init_time: 0,
        properties: Vec::new(),
    }
}

/// Sets a member's status (adding it to its cluster if unknown); its address and ports
/// too when given. `false` when the cluster is unknown.
fn set_member(
    topology: &mut Topology,
    r: &MemberRef,
    status: MemberStatus,
    ip: Option<&String>,
    ports: Option<&Vec<Port>>,
) -> bool {
    let Some(cluster) = topology.cluster_mut(&r.cluster_id) else {
        return false;
    };
    let member = cluster.members.entry(r.member_id.clone()).or_insert_with(|| new_member(r, status));
    member.status = status;
    if let Some(ip) = ip {
        member.default_private_ip = Some(ip.clone());
    }
    if let Some(ports) = ports.filter(|p| !p.is_empty()) {
        member.ports = ports.clone();
    }
    true
}

/// Applies one event to the load balancer's view of the topology and tenants.
/// Returns whether anything that routing depends on may have changed.
pub fn apply_event(topology: &mut Topology, tenants: &mut BTreeMap<i64, String>, event: &AnyEvent) -> bool {
    match event {
        AnyEvent::CompleteTopologyEvent(e) => {
            *topology = e.topology.clone();
            true
        }
        AnyEvent::ServiceCreatedEvent(e) => {
            let service = topology.services.entry(e.service_name.clone()).or_insert_with(|| Service {
                service_name: e.service_name.clone(),
                service_type: e.service_type,
                ports: Vec::new(),
                clusters: BTreeMap::new(),
            });
            service.service_type = e.service_type;
            service.ports = e.ports.clone();
            true
        }
        AnyEvent::ServiceRemovedEvent(e) => topology.services.remove(&e.service_name).is_some(),
        AnyEvent::ClusterCreatedEvent(e) => {
            let c = &e.cluster;
            let service = topology.services.entry(c.service_name.clone()).or_insert_with(|| Service {
                service_name: c.service_name.clone(),
                service_type: ServiceType::SingleTenant,
                ports: Vec::new(),
                clusters: BTreeMap::new(),
            });
            match service.clusters.entry(c.cluster_id.clone()) {
                Entry::Vacant(v) => {
                    v.insert(c.clone());
                }
                Entry::Occupied(mut o) => {
                    // A repeated announcement updates the cluster but keeps the members we know.
                    let members = std::mem::take(&mut o.get_mut().members);
                    let mut cluster = c.clone();
                    if cluster.members.is_empty() {
                        cluster.members = members;
                    }
                    o.insert(cluster);
                }
            }
            true
        }
        AnyEvent::ClusterRemovedEvent(e) => {
            if let Some(s) = topology.services.get_mut(&e.service_name) {
                if s.clusters.remove(&e.cluster_id).is_some() {
                    return true;
                }
            }
            topology.services.values_mut().any(|s| s.clusters.remove(&e.cluster_id).is_some())
        }
        AnyEvent::MemberCreatedEvent(e) => match topology.cluster_mut(&e.member.cluster_id) {
            Some(cluster) => {
                cluster.members.insert(e.member.member_id.clone(), e.member.clone());
                true
            }
            None => false,
        },
        AnyEvent::MemberInitializedEvent(e) => {
            set_member(topology, &e.member, MemberStatus::Initialized, e.default_private_ip.as_ref(), Some(&e.ports))
        }
        AnyEvent::MemberStartedEvent(e) => set_member(topology, &e.member, MemberStatus::Starting, None, None),
        AnyEvent::MemberActivatedEvent(e) => {
            set_member(topology, &e.member, MemberStatus::Active, e.default_private_ip.as_ref(), Some(&e.ports))
        }
        AnyEvent::MemberMaintenanceModeEvent(e) => {
            set_member(topology, &e.member, MemberStatus::InMaintenance, None, None)
        }
        AnyEvent::MemberReadyToShutdownEvent(e) => {
            set_member(topology, &e.member, MemberStatus::ReadyToShutdown, None, None)
        }
        // Its app stopped answering: out of rotation now, before the controller's
        // termination (which may take its grace period) removes it.
        AnyEvent::MemberSuspendedEvent(e) => set_member(topology, &e.member, MemberStatus::Suspended, None, None),
        AnyEvent::MemberTerminatedEvent(e) => match topology.cluster_mut(&e.member.cluster_id) {
            Some(cluster) => cluster.members.remove(&e.member.member_id).is_some(),
            None => false,
        },
        AnyEvent::TenantCreatedEvent(TenantCreatedEvent { tenant })
        | AnyEvent::TenantUpdatedEvent(TenantUpdatedEvent { tenant }) => {
            tenants.insert(tenant.tenant_id, tenant.tenant_domain.clone()) != Some(tenant.tenant_domain.clone())
        }
        AnyEvent::TenantRemovedEvent(e) => tenants.remove(&e.tenant_id).is_some(),
        AnyEvent::CompleteTenantEvent(e) => {
            let all: BTreeMap<i64, String> = e.tenants.iter().map(|t| (t.tenant_id, t.tenant_domain.clone())).collect();
            std::mem::replace(tenants, all) != *tenants
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{cluster, member, port, topology};
    use stratos_bus::events::{
        ClusterRemovedEvent, CompleteTopologyEvent, MemberActivatedEvent, MemberReadyToShutdownEvent,
        MemberSuspendedEvent, MemberTerminatedEvent,
    };

    fn http(value: u32) -> Vec<Port> {
        vec![port(Protocol::Http, value, 8280)]
    }

    fn sample() -> Topology {
        topology(vec![
            (
                "php",
                ServiceType::SingleTenant,
                vec![port(Protocol::Http, 80, 8280)],
                vec![
                    cluster(
                        "app1.php",
                        -1234,
                        &["app1.php.stratos.test", "WWW.Example.COM"],
                        vec![
                            member("app1.php", "m1", MemberStatus::Active, "10.0.0.1", http(4001)),
                            member("app1.php", "m2", MemberStatus::Starting, "10.0.0.2", http(4002)),
                            member("app1.php", "m3", MemberStatus::ReadyToShutdown, "10.0.0.3", http(4003)),
                        ],
                    ),
                    cluster(
                        "app2.php",
                        -1234,
                        &["app2.php.stratos.test"],
                        vec![member("app2.php", "m4", MemberStatus::Starting, "10.0.0.4", http(4004))],
                    ),
                ],
            ),
            (
                "mt",
                ServiceType::MultiTenant,
                vec![port(Protocol::Http, 80, 8280)],
                vec![
                    cluster(
                        "a.mt",
                        5,
                        &["mt.stratos.test"],
                        vec![member("a.mt", "m5", MemberStatus::Active, "10.0.0.5", http(4005))],
                    ),
                    cluster(
                        "b.mt",
                        6,
                        &["mt.stratos.test"],
                        vec![member("b.mt", "m6", MemberStatus::Active, "10.0.0.6", http(4006))],
                    ),
                ],
            ),
            (
                "mysql",
                ServiceType::SingleTenant,
                vec![port(Protocol::Tcp, 3306, 13306)],
                vec![cluster(
                    "db.mysql",
                    -1234,
                    &[],
                    vec![member(
                        "db.mysql",
                        "m7",
                        MemberStatus::Active,
                        "10.0.0.7",
                        vec![port(Protocol::Tcp, 5306, 13306)],
                    )],
                )],
            ),
        ])
    }

    fn ids(u: &Upstream) -> Vec<&str> {
        u.members.iter().map(|m| m.member_id.as_str()).collect()
    }

    #[test]
    fn routes_by_host_with_only_active_members() {
        let table = build(&sample(), &BTreeMap::new(), &Registry::default());
        assert_eq!(table.ports.keys().copied().collect::<Vec<_>>(), vec![8280, 13306]);
        let u = table.route_http(8280, "app1.php.stratos.test", "/").unwrap();
        assert_eq!(u.cluster_id, "app1.php");
        assert_eq!(ids(u), vec!["m1"]);
        assert_eq!(u.members[0].authority(), "10.0.0.1:4001");
        // Host names are matched lowercased.
        assert_eq!(table.route_http(8280, "www.example.com", "/x").unwrap().cluster_id, "app1.php");
        // A cluster without an active member is routed (the proxy answers 503 naming it).
        let u = table.route_http(8280, "app2.php.stratos.test", "/").unwrap();
        assert!(u.members.is_empty());
        assert!(table.route_http(8280, "nobody.test", "/").is_none());
        assert!(table.route_http(9999, "app1.php.stratos.test", "/").is_none());
        // A TCP port does not route HTTP.
        assert!(table.route_http(13306, "app1.php.stratos.test", "/").is_none());
    }

    #[test]
    fn routes_by_tenant_path() {
        let mut tenants = BTreeMap::new();
        tenants.insert(6, "Acme.com".to_string());
        let table = build(&sample(), &tenants, &Registry::default());
        assert_eq!(table.route_http(8280, "mt.stratos.test", "/t/5/index.php").unwrap().cluster_id, "a.mt");
        assert_eq!(table.route_http(8280, "mt.stratos.test", "/t/6/").unwrap().cluster_id, "b.mt");
        assert_eq!(table.route_http(8280, "mt.stratos.test", "/t/acme.com/x").unwrap().cluster_id, "b.mt");
        assert_eq!(table.route_http(8280, "mt.stratos.test", "/t/ACME.com").unwrap().cluster_id, "b.mt");
        // Any host, e.g. the load balancer's address, with a tenant path.
        assert_eq!(table.route_http(8280, "127.0.0.1", "/t/6/x").unwrap().cluster_id, "b.mt");
        // The shared host alone goes to the first cluster that named it.
        assert_eq!(table.route_http(8280, "mt.stratos.test", "/").unwrap().cluster_id, "a.mt");
        // A single-tenant host keeps its requests whatever the path.
        assert_eq!(table.route_http(8280, "app1.php.stratos.test", "/t/6/").unwrap().cluster_id, "app1.php");
        assert!(table.route_http(8280, "x.test", "/t/unknown/").is_none());
        assert!(table.warnings.is_empty(), "{:?}", table.warnings);
    }

    #[test]
    fn tcp_ports_have_one_cluster() {
        let mut topo = sample();
        let mut other = cluster(
            "db2.mysql",
            -1234,
            &[],
            vec![member("db2.mysql", "m8", MemberStatus::Active, "10.0.0.8", vec![port(Protocol::Tcp, 5307, 13306)])],
        );
        other.service_name = "mysql".into();
        topo.services.get_mut("mysql").unwrap().clusters.insert("db2.mysql".into(), other);
        let table = build(&topo, &BTreeMap::new(), &Registry::default());
        let routes = &table.ports[&13306];
        assert_eq!(routes.kind, PortKind::Tcp);
        let u = routes.tcp_upstream().unwrap();
        assert_eq!(u.cluster_id, "db.mysql");
        assert_eq!(u.members[0].authority(), "10.0.0.7:5306");
        assert_eq!(table.warnings.len(), 1, "{:?}", table.warnings);
    }

    #[test]
    fn conflicts_are_reported() {
        let mut topo = sample();
        // app2 also claims app1's host, and wants port 13306 as HTTP.
        let c = topo.services.get_mut("php").unwrap().clusters.get_mut("app2.php").unwrap();
        c.host_names.push("app1.php.stratos.test".into());
        c.members.get_mut("m4").unwrap().ports.push(port(Protocol::Http, 1, 13306));
        let table = build(&topo, &BTreeMap::new(), &Registry::default());
        assert_eq!(table.route_http(8280, "app1.php.stratos.test", "/").unwrap().cluster_id, "app1.php");
        assert_eq!(table.warnings.len(), 2, "{:?}", table.warnings);
    }

    #[test]
    fn a_host_name_stays_with_the_cluster_created_first() {
        // "aaa.thief" sorts before "app1.php" (and its service "aaa" before "php"), but
        // was created later: it takes neither the host nor the TCP port.
        let mut topo = sample();
        topo.services.get_mut("php").unwrap().clusters.get_mut("app1.php").unwrap().created_at = 100;
        let mut thief = cluster(
            "aaa.thief",
            -1234,
            &["app1.php.stratos.test"],
            vec![member("aaa.thief", "t1", MemberStatus::Active, "10.9.9.9", vec![port(Protocol::Http, 1, 8280)])],
        );
        thief.created_at = 200;
        let thieves = topology(vec![("aaa", ServiceType::SingleTenant, vec![], vec![thief])]);
        topo.services.extend(thieves.services);
        let table = build(&topo, &BTreeMap::new(), &Registry::default());
        assert_eq!(table.route_http(8280, "app1.php.stratos.test", "/").unwrap().cluster_id, "app1.php");
        assert!(table.warnings.iter().any(|w| w.contains("aaa.thief")), "{:?}", table.warnings);
    }

    #[test]
    fn multi_tenant_clusters_of_one_tenant_do_not_share_a_host() {
        let member_of = |c: &str, m: &str| member(c, m, MemberStatus::Active, "10.0.0.1", vec![]);
        let mut first = cluster("t1.first", 1, &["mt.example"], vec![member_of("t1.first", "a")]);
        first.created_at = 1;
        let mut second = cluster("t1.aaa", 1, &["mt.example"], vec![member_of("t1.aaa", "b")]);
        second.created_at = 2;
        let mut other_tenant = cluster("t2.x", 2, &["mt.example"], vec![member_of("t2.x", "c")]);
        other_tenant.created_at = 3;
        let ports = vec![port(Protocol::Http, 8080, 8280)];
        let topo = topology(vec![("mt", ServiceType::MultiTenant, ports, vec![first, second, other_tenant])]);
        let table = build(&topo, &BTreeMap::new(), &Registry::default());
        assert_eq!(table.route_http(8280, "mt.example", "/t/1/").unwrap().cluster_id, "t1.first");
        assert_eq!(table.route_http(8280, "mt.example", "/t/2/").unwrap().cluster_id, "t2.x");
        assert_eq!(table.warnings.len(), 1, "{:?}", table.warnings);
    }

    #[test]
    fn member_counters_survive_rebuilds() {
        let registry = Registry::default();
        let first = build(&sample(), &BTreeMap::new(), &registry);
        let guard = first.route_http(8280, "app1.php.stratos.test", "/").unwrap().members[0].stats.start();
        let second = build(&sample(), &BTreeMap::new(), &registry);
        let m1 = &second.route_http(8280, "app1.php.stratos.test", "/").unwrap().members[0];
        assert_eq!(m1.stats.in_flight(), 1);
        drop(guard);
        assert_eq!(m1.stats.in_flight(), 0);
    }

    #[test]
    fn member_without_address_or_port_is_not_routable() {
        let mut topo = sample();
        let c = topo.services.get_mut("php").unwrap().clusters.get_mut("app1.php").unwrap();
        c.members.get_mut("m1").unwrap().default_private_ip = None;
        let mut m = member("app1.php", "m9", MemberStatus::Active, "10.0.0.9", vec![port(Protocol::Http, 1, 9999)]);
        m.service_name = "php".into();
        c.members.insert("m9".into(), m);
        let table = build(&topo, &BTreeMap::new(), &Registry::default());
        let u = table.route_http(8280, "app1.php.stratos.test", "/").unwrap();
        assert!(u.members.is_empty());
        // m9 exposes 9999 only; 9999 routes app1's hosts to it.
        assert_eq!(ids(table.route_http(9999, "app1.php.stratos.test", "/").unwrap()), vec!["m9"]);
    }

    #[test]
    fn a_mock_or_simulated_member_is_never_routed_to() {
        // Such a member's address is its placement ("np/partition/service") and its ports
        // are 0: it has a cluster (answered 503 when alone), never an endpoint.
        let mut topo = sample();
        let c = topo.services.get_mut("php").unwrap().clusters.get_mut("app1.php").unwrap();
        c.members.clear();
        let mut m =
            member("app1.php", "mock-1", MemberStatus::Active, "np1/p1/php", vec![port(Protocol::Http, 0, 8280)]);
        m.service_name = "php".into();
        c.members.insert("mock-1".into(), m);
        let table = build(&topo, &BTreeMap::new(), &Registry::default());
        let u = table.route_http(8280, "app1.php.stratos.test", "/").unwrap();
        assert!(u.members.is_empty(), "{:?}", ids(u));
        assert!(table.warnings.is_empty(), "{:?}", table.warnings);
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normalize_host("Example.COM:8280").as_deref(), Some("example.com"));
        assert_eq!(normalize_host("example.com.").as_deref(), Some("example.com"));
        assert_eq!(normalize_host("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalize_host("[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(normalize_host("[::1]").as_deref(), Some("[::1]"));
        assert_eq!(normalize_host("a b"), None);
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host("host:port"), None);
        assert_eq!(normalize_host("a:1:2"), None);
        assert_eq!(normalize_host("[zz]:1"), None);
        assert_eq!(tenant_of_path("/t/acme.com/x"), Some("acme.com"));
        assert_eq!(tenant_of_path("/t/5"), Some("5"));
        assert_eq!(tenant_of_path("/t/"), None);
        assert_eq!(tenant_of_path("/tx/5/"), None);
    }

    fn mref(cluster: &str, id: &str) -> MemberRef {
        MemberRef {
            service_name: "php".into(),
            cluster_id: cluster.into(),
            member_id: id.into(),
            network_partition_id: "np1".into(),
            partition_id: "p1".into(),
        }
    }

    #[test]
    fn events_patch_the_topology() {
        let mut topo = Topology::default();
        let mut tenants = BTreeMap::new();
        let registry = Registry::default();
        assert!(apply_event(
            &mut topo,
            &mut tenants,
            &AnyEvent::CompleteTopologyEvent(CompleteTopologyEvent { topology: sample() })
        ));
        let activated = AnyEvent::MemberActivatedEvent(MemberActivatedEvent {
            member: mref("app2.php", "m4"),
            default_private_ip: Some("10.0.0.44".into()),
            ports: vec![],
        });
        assert!(apply_event(&mut topo, &mut tenants, &activated));
        let table = build(&topo, &tenants, &registry);
        let u = table.route_http(8280, "app2.php.stratos.test", "/").unwrap();
        assert_eq!(u.members[0].authority(), "10.0.0.44:4004", "ports kept from the earlier events");

        // A new member announced only by its activation.
        let new = AnyEvent::MemberActivatedEvent(MemberActivatedEvent {
            member: mref("app2.php", "m10"),
            default_private_ip: Some("10.0.0.10".into()),
            ports: http(4010),
        });
        assert!(apply_event(&mut topo, &mut tenants, &new));
        let table = build(&topo, &tenants, &registry);
        assert_eq!(ids(table.route_http(8280, "app2.php.stratos.test", "/").unwrap()), vec!["m10", "m4"]);

        let rts = AnyEvent::MemberReadyToShutdownEvent(MemberReadyToShutdownEvent { member: mref("app2.php", "m4") });
        assert!(apply_event(&mut topo, &mut tenants, &rts));
        let table = build(&topo, &tenants, &registry);
        assert_eq!(ids(table.route_http(8280, "app2.php.stratos.test", "/").unwrap()), vec!["m10"]);

        // A suspended member (its app stopped answering) leaves rotation at once.
        let suspended = AnyEvent::MemberSuspendedEvent(MemberSuspendedEvent {
            member: mref("app2.php", "m10"),
            reason: "unhealthy".into(),
        });
        assert!(apply_event(&mut topo, &mut tenants, &suspended));
        let table = build(&topo, &tenants, &registry);
        assert!(table.route_http(8280, "app2.php.stratos.test", "/").unwrap().members.is_empty());

        let gone = AnyEvent::MemberTerminatedEvent(MemberTerminatedEvent {
            member: mref("app2.php", "m10"),
            reason: "scale-down".into(),
        });
        assert!(apply_event(&mut topo, &mut tenants, &gone));
        assert!(!apply_event(&mut topo, &mut tenants, &gone));
        let table = build(&topo, &tenants, &registry);
        assert!(table.route_http(8280, "app2.php.stratos.test", "/").unwrap().members.is_empty());

        // Events about unknown clusters change nothing.
        let stray = AnyEvent::MemberActivatedEvent(MemberActivatedEvent {
            member: mref("nope", "m11"),
            default_private_ip: Some("10.0.0.11".into()),
            ports: http(1),
        });
        assert!(!apply_event(&mut topo, &mut tenants, &stray));

        let removed = AnyEvent::ClusterRemovedEvent(ClusterRemovedEvent {
            service_name: "php".into(),
            cluster_id: "app2.php".into(),
        });
        assert!(apply_event(&mut topo, &mut tenants, &removed));
        let table = build(&topo, &tenants, &registry);
        assert!(table.route_http(8280, "app2.php.stratos.test", "/").is_none());
    }
}
