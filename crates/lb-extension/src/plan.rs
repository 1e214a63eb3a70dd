//! What an external proxy must do, derived from the built-in load balancer's
//! [`RoutingTable`]: one frontend per proxy port, one backend per (port, cluster), and for
//! HTTP ports the ordered host and tenant-path rules. The routing decisions themselves
//! are asked of the table ([`PortRoutes::route`]), so HAProxy and nginx route exactly
//! as the built-in load balancer does; this module only names things safely for a
//! configuration file.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use stratos_lb::routing::{PortKind, PortRoutes, RoutingTable, Upstream};

/// Everything a proxy configuration is rendered from.
#[derive(Debug, Default)]
pub struct Plan {
    pub http: Vec<HttpFrontend>,
    pub tcp: Vec<TcpFrontend>,
    pub backends: Vec<Backend>,
    /// The table's warnings and what could not be expressed (bad addresses, IPv6 host names, ...).
    pub warnings: Vec<String>,
}

/// An HTTP proxy port.
#[derive(Debug)]
pub struct HttpFrontend {
    pub port: u16,
    /// Every host name a cluster on the port names, sorted.
    pub hosts: Vec<HostRoute>,
    /// For a host no cluster names: tenant path prefixes (`/t/<tenant>/`) that still route.
    pub tenant_paths: Vec<TenantRoute>,
}

/// Requests for one host name.
#[derive(Debug)]
pub struct HostRoute {
    pub host: String,
    /// Tenant paths that go to another cluster than [`HostRoute::backend`], checked first.
    pub tenant_paths: Vec<TenantRoute>,
    /// Index in [`Plan::backends`].
    pub backend: usize,
}

/// `/t/<tenant>` and `/t/<tenant>/...` go to `backend` (the tenant compared
/// case-insensitively, as the routing table does): see [`TenantRoute::path_regex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRoute {
    /// A tenant id or domain, lowercased.
    pub tenant: String,
    pub backend: usize,
}

impl TenantRoute {
    /// A PCRE matching the paths of the tenant: `^/t/(?i:acme\.com)(/|$)`.
    pub fn path_regex(&self) -> String {
        let escaped: String =
            self.tenant.chars().flat_map(|c| if c == '.' { vec!['\\', '.'] } else { vec![c] }).collect();
        format!("^/t/(?i:{escaped})(/|$)")
    }

    fn matches(&self, path: &str) -> bool {
        stratos_lb::routing::tenant_of_path(path).is_some_and(|t| t.eq_ignore_ascii_case(&self.tenant))
    }
}

/// A TCP proxy port: every connection goes to one cluster.
#[derive(Debug)]
pub struct TcpFrontend {
    pub port: u16,
    pub backend: usize,
}

/// One cluster behind one proxy port.
#[derive(Debug)]
pub struct Backend {
    /// Unique, `[A-Za-z0-9._-]` only: `http8280_app1.php`.
    pub name: String,
    pub cluster_id: String,
    /// The cluster id made safe for comments and error messages.
    pub label: String,
    pub kind: PortKind,
    pub proxy_port: u16,
    pub network_partitions: Vec<String>,
    /// The cluster's routable members; empty: HTTP answers 503.
    pub servers: Vec<Server>,
}

/// A member behind a backend.
#[derive(Debug)]
pub struct Server {
    /// Unique within the backend, `[A-Za-z0-9._-]` only.
    pub name: String,
    pub member_id: String,
    pub network_partition_id: String,
    /// An IP address or a host name (checked: nothing a config parser would misread).
    pub host: String,
    pub port: u16,
}

impl Server {
    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl Plan {
    /// Backend name → backend.
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Every member in service, by member id.
    pub fn members(&self) -> BTreeSet<&str> {
        self.backends.iter().flat_map(|b| b.servers.iter().map(|s| s.member_id.as_str())).collect()
    }
}

/// `[A-Za-z0-9._-]`, anything else replaced by `_`; never empty.
pub fn safe_name(raw: &str) -> String {
    let name: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    if name.is_empty() {
        "_".into()
    } else {
        name
    }
}

fn unique(name: String, used: &mut HashSet<String>) -> String {
    if used.insert(name.clone()) {
        return name;
    }
    (2..).map(|n| format!("{name}_{n}")).find(|candidate| used.insert(candidate.clone())).unwrap()
}

/// An address a configuration can carry as is: an IP, or a host name.
fn is_safe_address(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && !host.starts_with('-')
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
}

/// A tenant id or domain usable in a path rule.
fn is_safe_tenant(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Builds the plan of `table`; `tenants` (id → domain) names the tenant path prefixes.
pub fn plan(table: &RoutingTable, tenants: &BTreeMap<i64, String>) -> Plan {
    let mut plan = Plan { warnings: table.warnings.clone(), ..Plan::default() };
    let mut used_names = HashSet::new();
    for (&port, routes) in &table.ports {
        // Cluster id → backend index, for this port.
        let mut index: HashMap<&str, usize> = HashMap::new();
        for upstream in &routes.upstreams {
            index.insert(&upstream.cluster_id, plan.backends.len());
            let backend = backend(upstream, routes.kind, port, &mut used_names, &mut plan.warnings);
            plan.backends.push(backend);
        }
        match routes.kind {
            PortKind::Tcp => {
                if let Some(u) = routes.tcp_upstream() {
                    plan.tcp.push(TcpFrontend { port, backend: index[u.cluster_id.as_str()] });
                }
            }
            PortKind::Http => plan.http.push(http_frontend(port, routes, tenants, &index, &mut plan.warnings)),
        }
    }
    plan
}

fn backend(
    upstream: &Upstream,
    kind: PortKind,
    port: u16,
    used: &mut HashSet<String>,
    warnings: &mut Vec<String>,
) -> Backend {
    let name = unique(format!("{kind}{port}_{}", safe_name(&upstream.cluster_id)), used);
    let mut server_names = HashSet::new();
    let servers = upstream
        .members
        .iter()
        .filter_map(|m| {
            if !is_safe_address(&m.host) {
                warnings.push(format!(
                    "member {} of cluster {}: address {:?} is not an IP or host name; not routed",
                    m.member_id, upstream.cluster_id, m.host
                ));
                return None;
            }
            Some(Server {
                name: unique(safe_name(&m.member_id), &mut server_names),
                member_id: m.member_id.clone(),
                network_partition_id: m.network_partition_id.clone(),
                host: m.host.clone(),
                port: m.port,
            })
        })
        .collect();
    Backend {
        name,
        cluster_id: upstream.cluster_id.clone(),
        label: safe_name(&upstream.cluster_id),
        kind,
        proxy_port: port,
        network_partitions: upstream.network_partitions.clone(),
        servers,
    }
}

fn http_frontend(
    port: u16,
    routes: &PortRoutes,
    tenants: &BTreeMap<i64, String>,
    index: &HashMap<&str, usize>,
    warnings: &mut Vec<String>,
) -> HttpFrontend {
    // The tenant keys (id and domain) of the multi-tenant clusters on the port.
    let mut keys = BTreeSet::new();
    for u in routes.upstreams.iter().filter(|u| u.multi_tenant) {
        keys.insert(u.tenant_id.to_string());
        if let Some(domain) = tenants.get(&u.tenant_id) {
            let domain = domain.to_ascii_lowercase();
            if is_safe_tenant(&domain) {
                keys.insert(domain);
            } else {
                warnings.push(format!("tenant {}: domain {domain:?} cannot be a path rule; ignored", u.tenant_id));
            }
        }
    }
    let tenant_routes = |host: &str, except: Option<usize>| -> Vec<TenantRoute> {
        keys.iter()
            .filter_map(|key| {
                let u = routes.route(host, &format!("/t/{key}/"))?;
                let backend = index[u.cluster_id.as_str()];
                (Some(backend) != except).then(|| TenantRoute { tenant: key.clone(), backend })
            })
            .collect()
    };
    let mut hosts = Vec::new();
    for host in routes.host_names() {
        if host.starts_with('[') {
            warnings.push(format!("host {host} on port {port}: IPv6 literal host names are not routed by the proxy"));
            continue;
        }
        let Some(owner) = routes.route(host, "/") else { continue };
        let backend = index[owner.cluster_id.as_str()];
        hosts.push(HostRoute { host: host.to_string(), tenant_paths: tenant_routes(host, Some(backend)), backend });
    }
    // No host is empty: this asks for the tenant path alone.
    HttpFrontend { port, hosts, tenant_paths: tenant_routes("", None) }
}

/// Where the rules of `frontend` send a request, as HAProxy and nginx evaluate them:
/// the host's tenant paths, the host, then the tenant paths for any host.
pub fn evaluate(frontend: &HttpFrontend, host: &str, path: &str) -> Option<usize> {
    let matches = |t: &TenantRoute| t.matches(path);
    if let Some(h) = frontend.hosts.iter().find(|h| h.host == host) {
        return Some(h.tenant_paths.iter().find(|t| matches(t)).map_or(h.backend, |t| t.backend));
    }
    frontend.tenant_paths.iter().find(|t| matches(t)).map(|t| t.backend)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use stratos_lb::fixtures::{cluster, member, port, topology};
    use stratos_lb::routing::build;
    use stratos_lb::stats::Registry;
    use stratos_model::topology::{MemberStatus, ServiceType, Topology};
    use stratos_model::Protocol;

    pub(crate) fn sample() -> Topology {
        let http = |v| vec![port(Protocol::Http, v, 8280)];
        topology(vec![
            (
                "php",
                ServiceType::SingleTenant,
                vec![],
                vec![
                    cluster(
                        "app1.php",
                        -1234,
                        &["app1.test", "www.example.com", "[::1]"],
                        vec![
                            member("app1.php", "m1", MemberStatus::Active, "10.0.0.1", http(4001)),
                            member("app1.php", "m2!", MemberStatus::Active, "10.0.0.2", http(4002)),
                            member("app1.php", "m3", MemberStatus::Starting, "10.0.0.3", http(4003)),
                        ],
                    ),
                    cluster(
                        "app2.php",
                        -1234,
                        &["app2.test"],
                        vec![member("app2.php", "m4", MemberStatus::Starting, "10.0.0.4", http(4004))],
                    ),
                    cluster(
                        "evil\".php",
                        -1234,
                        &["evil.test"],
                        vec![member("evil\".php", "m5", MemberStatus::Active, "1.2.3.4; }", http(4005))],
                    ),
                ],
            ),
            (
                "mt",
                ServiceType::MultiTenant,
                vec![],
                vec![
                    cluster(
                        "a.mt",
                        5,
                        &["mt.test"],
                        vec![member("a.mt", "m6", MemberStatus::Active, "::1", http(4006))],
                    ),
                    cluster(
                        "b.mt",
                        6,
                        &["mt.test", "b.test"],
                        vec![member("b.mt", "m7", MemberStatus::Active, "h7", http(4007))],
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
                    vec![member("db.mysql", "m8", MemberStatus::Active, "10.0.0.8", vec![])],
                )],
            ),
        ])
    }

    pub(crate) fn sample_plan() -> (RoutingTable, Plan) {
        let mut tenants = BTreeMap::new();
        tenants.insert(6, "Acme.COM".to_string());
        let table = build(&sample(), &tenants, &Registry::default());
        let plan = plan(&table, &tenants);
        (table, plan)
    }

    #[test]
    fn names_are_safe_and_unique() {
        let (_, plan) = sample_plan();
        let names: Vec<&str> = plan.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "http8280_a.mt",
                "http8280_b.mt",
                "http8280_app1.php",
                "http8280_app2.php",
                "http8280_evil_.php",
                "tcp13306_db.mysql"
            ]
        );
        let app1 = plan.backend("http8280_app1.php").unwrap();
        let servers: Vec<(&str, &str, String)> =
            app1.servers.iter().map(|s| (s.name.as_str(), s.member_id.as_str(), s.authority())).collect();
        assert_eq!(servers, vec![("m1", "m1", "10.0.0.1:4001".into()), ("m2_", "m2!", "10.0.0.2:4002".into())]);
        assert_eq!(plan.backend("http8280_a.mt").unwrap().servers[0].authority(), "[::1]:4006");
        // An address that would inject configuration is left out, with a warning.
        assert!(plan.backend("http8280_evil_.php").unwrap().servers.is_empty());
        assert!(plan.warnings.iter().any(|w| w.contains("1.2.3.4; }")), "{:?}", plan.warnings);
        assert!(plan.warnings.iter().any(|w| w.contains("[::1]")), "{:?}", plan.warnings);
        assert_eq!(unique("a".into(), &mut HashSet::from(["a".to_string(), "a_2".to_string()])), "a_3");
        assert_eq!(safe_name(""), "_");
        assert_eq!(plan.tcp.len(), 1);
        assert_eq!(plan.backends[plan.tcp[0].backend].servers[0].authority(), "10.0.0.8:3306");
    }

    /// The rules route every request exactly as the built-in load balancer's table does.
    #[test]
    fn rules_route_like_the_routing_table() {
        let (table, plan) = sample_plan();
        let fe = &plan.http[0];
        let hosts = ["app1.test", "www.example.com", "app2.test", "mt.test", "b.test", "evil.test", "nobody.test", ""];
        let paths = [
            "/",
            "/x",
            "/t/5",
            "/t/5/x",
            "/t/6/",
            "/t/acme.com/a",
            "/T/ACME.com",
            "/t/ACME.com",
            "/t/7/",
            "/t/",
            "/t/55/",
        ];
        let mut checked = 0;
        for host in hosts {
            for path in paths {
                let expected = table.route_http(8280, host, path).map(|u| u.cluster_id.clone());
                let got = evaluate(fe, host, path).map(|b| plan.backends[b].cluster_id.clone());
                assert_eq!(got, expected, "host {host:?} path {path:?}");
                checked += 1;
            }
        }
        assert!(checked > 60);
        // Spot checks of what the rules say.
        let mt = fe.hosts.iter().find(|h| h.host == "mt.test").unwrap();
        assert_eq!(plan.backends[mt.backend].cluster_id, "a.mt");
        let b = |i: usize| plan.backends[i].cluster_id.as_str();
        assert_eq!(
            mt.tenant_paths.iter().map(|t| (t.tenant.as_str(), b(t.backend))).collect::<Vec<_>>(),
            vec![("6", "b.mt"), ("acme.com", "b.mt")]
        );
        assert_eq!(
            fe.tenant_paths.iter().map(|t| (t.tenant.as_str(), b(t.backend))).collect::<Vec<_>>(),
            vec![("5", "a.mt"), ("6", "b.mt"), ("acme.com", "b.mt")]
        );
        let app1 = fe.hosts.iter().find(|h| h.host == "app1.test").unwrap();
        assert!(app1.tenant_paths.is_empty(), "a single-tenant host keeps every path");
        assert_eq!(mt.tenant_paths[1].path_regex(), r"^/t/(?i:acme\.com)(/|$)");
    }
}
