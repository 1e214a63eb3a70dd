//! Identity and tenant isolation over real HTTP: every route of the OpenAPI document
//! called with no token, an expired one, a revoked one, a viewer's and another
//! tenant's; login limits; browser refusals; platform definitions; quotas.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stratos_manager::auth::rate_limit::LoginLimits;
use stratos_manager::ApiConfig;
use support::*;

/// acme.test's objects, which the matrix aims at, and the callers it uses.
struct World {
    api: Api,
    acme: i64,
    other: i64,
    acme_dev: String,
    acme_dev_token_id: String,
    viewer: String,
    /// A tenant admin of other.test: the strongest caller outside acme.test.
    foreign: String,
    expired: String,
    revoked: String,
}

async fn world() -> World {
    let api = Api::start(ApiConfig::default()).await;
    platform_definitions(&api).await;
    let acme = api.tenant("acme.test").await;
    let other = api.tenant("other.test").await;
    let acme_admin = api.user(&api.admin, "acme-admin", "tenant-admin", Some("acme.test")).await;
    let acme_dev = api.user(&acme_admin, "acme-dev", "developer", None).await;
    let viewer = api.user(&acme_admin, "acme-viewer", "viewer", None).await;
    let foreign = api.user(&api.admin, "other-admin", "tenant-admin", Some("other.test")).await;

    // acme's own definitions, and its application deployed.
    api.must(&acme_admin, Method::POST, "/api/cartridges", Some(&docker_cartridge("acme-cart")), 201).await;
    let np = json!({"id": "acme-np", "provider": "docker", "partitions": [{"id": "p1"}]});
    api.must(&acme_admin, Method::POST, "/api/networkPartitions", Some(&np), 201).await;
    let asp = json!({"id": "acme-asp", "loadThresholds": {"requestsInFlight": {"threshold": 50}}});
    api.must(&acme_dev, Method::POST, "/api/autoscalingPolicies", Some(&asp), 201).await;
    api.must(&acme_dev, Method::POST, "/api/deploymentPolicies", Some(&deployment_policy("acme-dp")), 201).await;
    api.must(&acme_dev, Method::POST, "/api/applicationPolicies", Some(&application_policy("acme-ap")), 201).await;
    let group = json!({"name": "acme-group", "cartridges": ["acme-cart"]});
    api.must(&acme_dev, Method::POST, "/api/cartridgeGroups", Some(&group), 201).await;
    api.must(
        &acme_dev,
        Method::POST,
        "/api/applications",
        Some(&php_app("acme-app", "acme-dp", "acme-asp", 1, 2)),
        201,
    )
    .await;
    api.must(&acme_dev, Method::POST, "/api/applications/acme-app/deploy/acme-ap", None, 202).await;
    let history = stratos_store::ScalingHistory { cluster_id: "acme-app.web".into(), decisions: vec![] };
    api.store.put_record(acme, &history).await.unwrap();
    // What the controller would have made: acme's cluster with a member, and one of the platform's.
    let member = |cluster: &str, id: &str| {
        json!({"serviceName": "php", "clusterId": cluster, "memberId": id, "networkPartitionId": "np-local-1",
            "partitionId": "p1", "status": "Active", "initTime": 1})
    };
    let cluster = |id: &str, app: &str, tenant: i64, member_id: &str| {
        json!({"clusterId": id, "serviceName": "php", "appId": app, "alias": "web", "tenantId": tenant,
            "hostNames": [format!("{app}.web.stratos.local")], "autoscalePolicyName": "economy",
            "deploymentPolicyName": "dp", "status": "Active", "members": {member_id: member(id, member_id)}})
    };
    let topology: stratos_model::topology::Topology = serde_json::from_value(json!({"services": {"php": {
        "serviceName": "php", "serviceType": "SingleTenant", "clusters": {
            "acme-app.web": cluster("acme-app.web", "acme-app", acme, "acme-member-1"),
            "platform-app.web": cluster("platform-app.web", "platform-app", stratos_model::SUPER_TENANT, "platform-member-1"),
        }}}}))
    .unwrap();
    api.store.save_topology(&topology).await.unwrap();

    let acme_dev_token_id = acme_dev.split('_').nth(1).unwrap().to_owned();
    let expired =
        stratos_manager::bootstrap::issue(&api.store, "acme-dev", Duration::from_millis(1), "expires at once")
            .await
            .unwrap();
    let until = stratos_bus::now_millis() + 2;
    while stratos_bus::now_millis() <= until {
        tokio::task::yield_now().await;
    }
    let revoked = api.login("acme-dev", PASSWORD).await;
    api.must(&revoked, Method::DELETE, "/api/tokens/current", None, 204).await;
    World { api, acme, other, acme_dev, acme_dev_token_id, viewer, foreign, expired, revoked }
}

/// The path with acme's objects in its parameters.
fn fill(template: &str, w: &World) -> String {
    let id = match template.split('/').nth(2).unwrap_or("") {
        "cartridges" => "acme-cart",
        "networkPartitions" => "acme-np",
        "deploymentPolicies" => "acme-dp",
        "autoscalingPolicies" => "acme-asp",
        "applicationPolicies" => "acme-ap",
        "applications" => "acme-app",
        "cartridgeGroups" => "acme-group",
        "clusters" => "acme-app.web",
        "members" => "acme-member-1",
        "tokens" => &w.acme_dev_token_id,
        _ => "",
    };
    template
        .replace("{id}", id)
        .replace("{policy}", "acme-ap")
        .replace("{domain}", "acme.test")
        .replace("{name}", "acme-dev")
}

/// A body that would change acme's object if the call went through.
async fn body_for(w: &World, method: &str, template: &str) -> Option<Value> {
    if method == "GET" || method == "DELETE" {
        return None;
    }
    Some(match template {
        "/api/users" => {
            json!({"username": "intruder", "password": PASSWORD, "role": "developer", "tenantDomain": "acme.test"})
        }
        "/api/users/{name}/password" => json!({"password": "an intruder's password", "currentPassword": PASSWORD}),
        "/api/tenants" => json!({"tenantDomain": "intruder.test"}),
        "/api/tenants/{domain}/quota" => json!({"maxMembers": 1000}),
        "/api/mockIaas" => json!({"cartridges": [{"type": "acme-cart", "patterns": []}]}),
        "/api/clusters/{id}/scale" => json!({"min": 2, "max": 2}),
        "/api/members/{id}/exec" => json!({"command": ["true"]}),
        "/api/applications/{id}/run" => json!({"command": ["true"]}),
        t if t.contains("/deploy/")
            || t.ends_with("/undeploy")
            || t.ends_with("activate")
            || t.ends_with("/restart")
            || t == "/api/config/rotate-key" =>
        {
            return None
        }
        t => {
            let resource = t.split('/').nth(2).unwrap();
            let kind: stratos_model::Kind = resource.parse().unwrap();
            let id = fill(&format!("/api/{resource}/{{id}}"), w).rsplit('/').next().unwrap().to_owned();
            let mut def = w.api.store.get(w.acme, kind.name(), &id).await.unwrap().unwrap();
            def["description"] = json!("changed by an intruder");
            if kind == stratos_model::Kind::Cartridge {
                def["displayName"] = json!("intruded");
            }
            def
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    NoToken,
    Expired,
    Revoked,
    Viewer,
    Foreign,
}

/// The status `caller` must get; `None`: a status the caller may get by acting in its
/// own tenant (checked only for leaving acme unchanged and unnamed).
fn expected(caller: Caller, method: &str, template: &str) -> Option<u16> {
    let item = template.contains('{');
    match caller {
        Caller::NoToken | Caller::Expired | Caller::Revoked => Some(401),
        Caller::Viewer => match (method, template) {
            ("GET", "/api/users") | ("GET", "/api/mockIaas") | ("GET", "/api/backup") | ("GET", "/api/metrics") => {
                Some(403)
            }
            ("GET", "/api/users/{name}") => Some(404),
            ("GET", _) => Some(200),
            // Self-service routes pass the viewer check; acme-dev's token and user are not the viewer's.
            ("DELETE", "/api/tokens/{id}") | ("PUT", "/api/users/{name}/password") => Some(404),
            _ => Some(403),
        },
        Caller::Foreign => match (method, template) {
            (_, _) if item => Some(404),
            // The platform's own settings: a tenant's admin is told it may not.
            (_, "/api/mockIaas") | (_, "/api/backup") | (_, "/api/metrics") => Some(403),
            ("GET", _) => Some(200),
            ("POST", "/api/tenants") => Some(403),
            ("POST", "/api/users") => Some(404),
            ("PUT", _) => Some(404),
            _ => None,
        },
    }
}

#[tokio::test]
async fn every_route_refuses_the_wrong_callers_and_changes_nothing() {
    let w = world().await;
    let doc = w.api.get(&w.admin_token(), "/api/openapi.json").await.body;
    let acme_names = [
        "acme-cart",
        "acme-np",
        "acme-dp",
        "acme-asp",
        "acme-ap",
        "acme-app",
        "acme-group",
        "acme.test",
        "acme-dev",
        "acme-member-1",
    ];
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let public = operation["security"] == json!([]);
            if public {
                assert!(
                    stratos_manager::auth::PUBLIC_ROUTES.contains(&(method.as_str(), template.as_str())),
                    "{method} {template} is documented as public but is not"
                );
                continue;
            }
            assert_eq!(operation["security"], json!([{"bearer": []}]), "{method} {template} documents its token");
            assert!(operation["responses"]["401"].is_object(), "{method} {template} documents its 401");
            // Logging out is the caller's own business; tested on its own.
            if template == "/api/tokens/current" && method == "DELETE" {
                continue;
            }
            let path = fill(template, &w);
            let body = body_for(&w, &method, template).await;
            // What another tenant adds lands in its own tenant: under a name of its own,
            // so that acme's names keep meaning acme's objects.
            let mut foreign_body = body.clone();
            if let Some(b) = foreign_body.as_mut().filter(|_| method == "POST" && !template.contains('{')) {
                for field in ["id", "type", "applicationId", "name"] {
                    if b.get(field).is_some() {
                        b[field] = json!("foreign-copy");
                    }
                }
            }
            for caller in [Caller::NoToken, Caller::Expired, Caller::Revoked, Caller::Viewer, Caller::Foreign] {
                let token = match caller {
                    Caller::NoToken => None,
                    Caller::Expired => Some(w.expired.as_str()),
                    Caller::Revoked => Some(w.revoked.as_str()),
                    Caller::Viewer => Some(w.viewer.as_str()),
                    Caller::Foreign => Some(w.foreign.as_str()),
                };
                let before = w.api.snapshot(&[w.acme]).await;
                let m = Method::from_bytes(method.as_bytes()).unwrap();
                let body = if caller == Caller::Foreign { &foreign_body } else { &body };
                let a = w.api.call(token, m, &path, body.as_ref(), &[]).await;
                let at = format!("{caller:?} {method} {path}");
                if let Some(status) = expected(caller, &method, template) {
                    assert_eq!(a.status.as_u16(), status, "{at}: {}", a.text);
                }
                if a.status == StatusCode::UNAUTHORIZED {
                    assert!(a.headers.contains_key("www-authenticate"), "{at}: no challenge");
                }
                if caller == Caller::Foreign && a.status.is_success() && method == "GET" {
                    for name in acme_names.iter().chain([&w.acme_dev_token_id.as_str()]) {
                        assert!(!a.text.contains(name), "{at} shows {name:?} of another tenant: {}", a.text);
                    }
                }
                let after = w.api.snapshot(&[w.acme]).await;
                assert!(before == after, "{at} changed the store");
                checked += 1;
            }
        }
    }
    assert!(checked > 250, "only {checked} calls");
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
    // The foreign tenant wrote into its own tenant only, if anywhere.
    let _ = w.other;
}

impl World {
    fn admin_token(&self) -> String {
        self.api.admin.clone()
    }
}

#[tokio::test]
async fn the_callers_own_tenant_works_and_logout_revokes() {
    let w = world().await;
    // The viewer reads, the developer writes.
    let a = w.api.get(&w.viewer, "/api/applications/acme-app/runtime").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let apps = w.api.get(&w.viewer, "/api/applications").await.body;
    assert_eq!(apps.as_array().unwrap().len(), 1);
    // Platform definitions are listed beside the tenant's own; a private policy of the platform is not.
    let carts: Vec<String> = w
        .api
        .get(&w.viewer, "/api/cartridges")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(carts, ["acme-cart", "php", "python-api"]);
    w.api
        .must(
            &w.api.admin,
            Method::POST,
            "/api/autoscalingPolicies",
            Some(&json!({"id": "private", "loadThresholds": {"loadAverage": {"threshold": 5}}})),
            201,
        )
        .await;
    assert_eq!(w.api.get(&w.viewer, "/api/autoscalingPolicies/private").await.status, StatusCode::NOT_FOUND);
    assert_eq!(w.api.get(&w.viewer, "/api/autoscalingPolicies/economy").await.status, StatusCode::OK);
    // The topology (members) of the caller's tenant only; all of it for a platform admin.
    let topology = w.api.get(&w.viewer, "/api/topology").await.text;
    assert!(topology.contains("acme-member-1") && !topology.contains("platform-member-1"), "{topology}");
    let topology = w.api.get(&w.api.admin, "/api/topology").await.text;
    assert!(topology.contains("acme-member-1") && topology.contains("platform-member-1"), "{topology}");
    let runtime = w.api.get(&w.viewer, "/api/applications/acme-app/runtime").await.body;
    assert_eq!(runtime["clusters"][0]["members"][0]["memberId"], "acme-member-1", "{runtime}");
    // A token is never cached on the way.
    let a = w
        .api
        .call(None, Method::POST, "/api/tokens", Some(&json!({"username": "acme-viewer", "password": PASSWORD})), &[])
        .await;
    assert_eq!(a.headers["cache-control"], "no-store");
    // Whoami, then logout: the token stops working at once.
    let me = w.api.get(&w.acme_dev, "/api/tokens/current").await.body;
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str(), me["tenantDomain"].as_str()),
        (Some("acme-dev"), Some("developer"), Some("acme.test"))
    );
    w.api.must(&w.acme_dev, Method::DELETE, "/api/tokens/current", None, 204).await;
    let a = w.api.get(&w.acme_dev, "/api/applications").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.text.contains("revoked"), "{}", a.text);
}

#[tokio::test]
async fn secrets_never_show_in_lists() {
    let w = world().await;
    let users = w.api.get(&w.api.admin, "/api/users").await;
    assert_eq!(users.status, StatusCode::OK);
    assert!(!users.text.contains("argon2") && !users.text.to_lowercase().contains("password"), "{}", users.text);
    let tokens = w.api.get(&w.api.admin, "/api/tokens").await;
    let secret = w.acme_dev.rsplit('_').next().unwrap();
    assert!(tokens.text.contains(&w.acme_dev_token_id), "the admin lists acme-dev's token: {}", tokens.text);
    assert!(
        !tokens.text.contains(secret) && !tokens.text.contains("sha256") && !tokens.text.contains("Sha256"),
        "{}",
        tokens.text
    );
    // The store keeps hashes only.
    let stored = w.api.snapshot(&[w.acme]).await;
    let text = format!("{stored:?}");
    assert!(!text.contains(secret) && !text.contains(PASSWORD), "a secret is stored in clear");
    // A tenant admin lists its tenant's users only.
    let acme_admin = w.api.login("acme-admin", PASSWORD).await;
    let names: Vec<String> = w
        .api
        .get(&acme_admin, "/api/users")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["acme-admin", "acme-dev", "acme-viewer"]);
}

#[tokio::test]
async fn removing_a_user_or_changing_its_password_kills_its_tokens() {
    let w = world().await;
    let acme_admin = w.api.login("acme-admin", PASSWORD).await;
    let second = w.api.login("acme-dev", PASSWORD).await;
    // A wrong current password is refused; the right one changes it and revokes the other tokens.
    let change = json!({"password": "a brand new password", "currentPassword": "wrong wrong wrong"});
    w.api.must(&second, Method::PUT, "/api/users/acme-dev/password", Some(&change), 403).await;
    let change = json!({"password": "a brand new password", "currentPassword": PASSWORD});
    w.api.must(&second, Method::PUT, "/api/users/acme-dev/password", Some(&change), 204).await;
    assert_eq!(w.api.get(&w.acme_dev, "/api/applications").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(w.api.get(&second, "/api/applications").await.status, StatusCode::OK, "the caller's own token stays");
    w.api.login("acme-dev", "a brand new password").await;
    // A tenant admin cannot create a platform admin, nor users of another tenant.
    let body = json!({"username": "boss", "password": PASSWORD, "role": "platform-admin"});
    w.api.must(&acme_admin, Method::POST, "/api/users", Some(&body), 400).await;
    let body = json!({"username": "spy", "password": PASSWORD, "role": "viewer", "tenantDomain": "other.test"});
    w.api.must(&acme_admin, Method::POST, "/api/users", Some(&body), 404).await;
    let body = json!({"username": "weak", "password": "short", "role": "viewer"});
    let a = w.api.must(&acme_admin, Method::POST, "/api/users", Some(&body), 400).await;
    assert_eq!(a["problems"][0]["path"], "password");
    // Removing the user ends its sessions.
    w.api.must(&acme_admin, Method::DELETE, "/api/users/acme-dev", None, 204).await;
    assert_eq!(w.api.get(&second, "/api/applications").await.status, StatusCode::UNAUTHORIZED);
    // The last platform admin stays.
    w.api.must(&w.api.admin, Method::DELETE, "/api/users/admin", None, 409).await;
}

#[tokio::test]
async fn failed_logins_are_limited_per_user_and_per_address() {
    let config = ApiConfig {
        login_limits: LoginLimits { per_user: 3, per_peer: 6, window: Duration::from_secs(600) },
        ..ApiConfig::default()
    };
    let api = Api::start(config).await;
    let login = |user: &'static str, password: &'static str| {
        let api = &api;
        async move {
            api.call(None, Method::POST, "/api/tokens", Some(&json!({"username": user, "password": password})), &[])
                .await
        }
    };
    api.user(&api.admin, "ann", "developer", None).await;
    for _ in 0..3 {
        assert_eq!(login("ann", "not the password").await.status, StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password is refused, with a Retry-After.
    let a = login("ann", PASSWORD).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 600, "{retry}");
    // Unknown names count against the address too: 3 more failures lock it for everyone.
    for n in ["nobody1", "nobody2", "nobody3"] {
        assert_eq!(login(n, "whatever it is").await.status, StatusCode::UNAUTHORIZED);
    }
    let a = login("admin", "whatever it is").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert!(!a.text.contains("whatever"), "the password is not echoed");
}

#[tokio::test]
async fn browsers_cannot_be_turned_against_the_api() {
    let api = Api::start(ApiConfig {
        allowed_origins: vec!["https://console.example".into()],
        names: vec!["stratos.example".into()],
        ..ApiConfig::default()
    })
    .await;
    let before = api.snapshot(&[]).await;
    let cartridge = docker_cartridge("web-page-cart");
    // A web page's cross-origin POST, even with a token (which a browser would not have).
    let a = api
        .call(Some(&api.admin), Method::POST, "/api/cartridges", Some(&cartridge), &[("origin", "http://evil.example")])
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    // A simple request: text/plain or a form, which needs no preflight.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let req = api
            .http
            .post(format!("{}/api/cartridges", api.base))
            .bearer_auth(&api.admin)
            .header("content-type", content_type)
            .body(cartridge.to_string());
        assert_eq!(req.send().await.unwrap().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
    }
    // DNS rebinding: a name that is not the API's.
    let a = api.call(Some(&api.admin), Method::GET, "/api/cartridges", None, &[("host", "rebound.evil.example")]).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{}", a.text);
    // A token in a cookie is no token.
    let a = api
        .call(
            None,
            Method::GET,
            "/api/cartridges",
            None,
            &[("cookie", &format!("token={}; Authorization=Bearer {}", api.admin, api.admin))],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.snapshot(&[]).await, before, "nothing was stored");
    // The allowed origin and the configured name pass.
    let a = api
        .call(
            Some(&api.admin),
            Method::POST,
            "/api/cartridges",
            Some(&cartridge),
            &[("origin", "https://console.example"), ("host", "stratos.example:9443")],
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    // The public routes answer without a token.
    for path in ["/api/health", "/api/openapi.json"] {
        assert_eq!(api.call(None, Method::GET, path, None, &[]).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_local_cartridge_is_a_platform_admins_alone() {
    let api = Api::start(ApiConfig::default()).await;
    platform_definitions(&api).await;
    api.tenant("acme.test").await;
    let acme_admin = api.user(&api.admin, "acme-admin", "tenant-admin", Some("acme.test")).await;
    let dev = api.user(&acme_admin, "acme-dev", "developer", None).await;
    let mut local = example("cartridge-php.json");
    local["type"] = json!("my-php");
    let a = api.call(Some(&acme_admin), Method::POST, "/api/cartridges", Some(&local), &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert!(a.text.contains("local"), "{}", a.text);
    // A docker cartridge is the tenant admin's to add, not a developer's; turning it local is refused.
    api.must(&dev, Method::POST, "/api/cartridges", Some(&docker_cartridge("mine")), 403).await;
    api.must(&acme_admin, Method::POST, "/api/cartridges", Some(&docker_cartridge("mine")), 201).await;
    let mut turned = docker_cartridge("mine");
    turned["iaasProvider"] = local["iaasProvider"].clone();
    api.must(&acme_admin, Method::PUT, "/api/cartridges/mine", Some(&turned), 403).await;
    let stored = api.get(&acme_admin, "/api/cartridges/mine").await.body;
    assert_eq!(stored["iaasProvider"][0]["type"], "docker");
    // The platform's cartridges are read-only for tenants.
    api.must(&acme_admin, Method::PUT, "/api/cartridges/php", Some(&example("cartridge-php.json")), 403).await;
    api.must(&acme_admin, Method::DELETE, "/api/cartridges/php", None, 403).await;
    api.must(&acme_admin, Method::POST, "/api/cartridges", Some(&docker_cartridge("php")), 409).await;
    // The platform admin adds a local one.
    api.must(&api.admin, Method::POST, "/api/cartridges", Some(&local), 201).await;
}

#[tokio::test]
async fn quotas_and_the_cluster_cap_are_checked_at_deploy() {
    let mut config = ApiConfig::default();
    config.limits.max_cluster_size = 6;
    let api = Api::start(config).await;
    platform_definitions(&api).await;
    api.tenant("acme.test").await;
    let acme_admin = api.user(&api.admin, "acme-admin", "tenant-admin", Some("acme.test")).await;
    let dev = api.user(&acme_admin, "acme-dev", "developer", None).await;
    api.must(&dev, Method::POST, "/api/deploymentPolicies", Some(&deployment_policy("dp")), 201).await;
    api.must(&dev, Method::POST, "/api/applicationPolicies", Some(&application_policy("ap")), 201).await;
    for (id, max) in [("big", 10), ("a", 4), ("b", 4)] {
        api.must(&dev, Method::POST, "/api/applications", Some(&php_app(id, "dp", "economy", 1, max)), 201).await;
    }
    // Above the platform's cap: 400 naming the field.
    let a = api.must(&dev, Method::POST, "/api/applications/big/deploy/ap", None, 400).await;
    assert_eq!(a["problems"][0]["path"], "components.cartridges[0].cartridgeMax", "{a}");
    // Tenant quota: 6 members; `a` takes 4, `b` would make 8.
    let q =
        api.must(&api.admin, Method::PUT, "/api/tenants/acme.test/quota", Some(&json!({"maxMembers": 6})), 200).await;
    assert_eq!((q["maxMembers"].as_u64(), q["maxClusters"].as_u64()), (Some(6), Some(20)));
    api.must(&acme_admin, Method::PUT, "/api/tenants/acme.test/quota", Some(&json!({"maxMembers": 600})), 403).await;
    api.must(&dev, Method::POST, "/api/applications/a/deploy/ap", None, 202).await;
    let a = api.must(&dev, Method::POST, "/api/applications/b/deploy/ap", None, 403).await;
    assert_eq!(a["problems"][0]["path"], "members", "{a}");
    assert_eq!(api.get(&dev, "/api/applications/b/runtime").await.body["status"], "not-deployed");
    // The platform admin removing what a tenant uses is refused, naming the tenant.
    let a = api.must(&api.admin, Method::DELETE, "/api/cartridges/php", None, 409).await;
    assert!(a.to_string().contains("tenants/acme.test/applications/a"), "{a}");
}

#[tokio::test]
async fn records_of_tokens_dead_for_a_week_are_deleted_at_the_next_login() {
    let api = Api::start(ApiConfig::default()).await;
    let now = stratos_bus::now_millis();
    let week = 7 * 24 * 3600 * 1000;
    let (_, old) = stratos_manager::auth::TokenRecord::issue(
        "admin",
        stratos_model::SUPER_TENANT,
        1000,
        "old".into(),
        now - 2 * week,
    );
    let (_, recent) = stratos_manager::auth::TokenRecord::issue(
        "admin",
        stratos_model::SUPER_TENANT,
        1000,
        "recent".into(),
        now - week / 2,
    );
    stratos_manager::auth::save_token(&api.store, &old).await.unwrap();
    stratos_manager::auth::save_token(&api.store, &recent).await.unwrap();
    // A login (of a user of its own: the admin's password is not known here) purges.
    api.user(&api.admin, "ops", "viewer", None).await;
    let ids: Vec<String> =
        stratos_manager::auth::all_tokens(&api.store).await.unwrap().into_iter().map(|t| t.id).collect();
    assert!(!ids.contains(&old.id), "a token dead for two weeks is gone");
    assert!(ids.contains(&recent.id), "a token dead for half a week is kept, to say it expired");
}

/// A deactivated tenant's users cannot log in and their tokens are refused, saying why;
/// its deployment stays (its applications keep running); only a platform admin
/// deactivates and activates, and activation lets the same users (and live tokens) in again.
#[tokio::test]
async fn a_deactivated_tenant_is_shut_out_and_its_applications_stay() {
    let api = Api::start(ApiConfig::default()).await;
    platform_definitions(&api).await;
    api.tenant("acme.test").await;
    api.tenant("other.test").await;
    let acme_admin = api.user(&api.admin, "acme-admin", "tenant-admin", Some("acme.test")).await;
    let dev = api.user(&acme_admin, "acme-dev", "developer", None).await;
    let other_admin = api.user(&api.admin, "other-admin", "tenant-admin", Some("other.test")).await;
    api.must(&dev, Method::POST, "/api/deploymentPolicies", Some(&deployment_policy("dp")), 201).await;
    api.must(&dev, Method::POST, "/api/applicationPolicies", Some(&application_policy("ap")), 201).await;
    api.must(&dev, Method::POST, "/api/applications", Some(&php_app("a", "dp", "economy", 1, 2)), 201).await;
    api.must(&dev, Method::POST, "/api/applications/a/deploy/ap", None, 202).await;

    // Only a platform admin deactivates: the tenant's own admin is refused, another tenant's does not see it.
    api.must(&acme_admin, Method::POST, "/api/tenants/acme.test/deactivate", None, 403).await;
    api.must(&other_admin, Method::POST, "/api/tenants/acme.test/deactivate", None, 404).await;
    let t = api.must(&api.admin, Method::POST, "/api/tenants/acme.test/deactivate", None, 200).await;
    assert_eq!(t["active"], false, "{t}");
    assert_eq!(api.get(&api.admin, "/api/tenants/acme.test").await.body["active"], false);

    // Its tokens are refused, with the reason; so is a login with the right password.
    for token in [&dev, &acme_admin] {
        let a = api.get(token, "/api/applications").await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        assert!(a.text.contains("acme.test") && a.text.contains("deactivated"), "{}", a.text);
    }
    let a = api.call(Some(&dev), Method::POST, "/api/applications/a/undeploy", None, &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    let login = json!({"username": "acme-dev", "password": PASSWORD});
    let a = api.call(None, Method::POST, "/api/tokens", Some(&login), &[]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert!(a.text.contains("deactivated") && a.body.get("token").is_none(), "{}", a.text);
    // A wrong password still reads as one (nothing about the tenant to a guesser).
    let wrong = json!({"username": "acme-dev", "password": "not the password"});
    let a = api.call(None, Method::POST, "/api/tokens", Some(&wrong), &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    assert!(!a.text.contains("deactivated"), "{}", a.text);
    // Other tenants go on.
    assert_eq!(api.get(&other_admin, "/api/applications").await.status, StatusCode::OK);

    // The deployment stays: its applications keep running.
    let acme = api.get(&api.admin, "/api/tenants/acme.test").await.body["tenantId"].as_i64().unwrap();
    assert!(api.store.get(acme, "deployment", "a").await.unwrap().is_some(), "the deployment was removed");

    // Activated again: the live tokens work, and logging in does.
    api.must(&api.admin, Method::POST, "/api/tenants/acme.test/activate", None, 200).await;
    assert_eq!(api.get(&dev, "/api/applications").await.status, StatusCode::OK);
    api.login("acme-dev", PASSWORD).await;
}

/// A TCP proxy port belongs to one cluster: another application claiming it (at add or
/// deploy, of another tenant or the same) is a 409 at the subscription's `type`, naming
/// the owner only to its own tenant; a port the platform listens on is nobody's.
#[tokio::test]
async fn tcp_proxy_ports_and_the_platforms_ports_are_claims() {
    let config = ApiConfig {
        reserved_ports: vec![stratos_model::claims::ReservedPort { port: 1883, what: "the event bus".into() }],
        ..ApiConfig::default()
    };
    let api = Api::start(config).await;
    platform_definitions(&api).await;
    // Platform cartridges: one passing TCP through on 13306, one mapping the bus's port.
    for (name, protocol, proxy) in [("tcpdb", "tcp", 13306), ("busy", "http", 1883)] {
        let mut c = example("cartridge-php.json");
        c["type"] = json!(name);
        c["portMapping"] = json!([{"protocol": protocol, "port": 3306, "proxyPort": proxy}]);
        api.must(&api.admin, Method::POST, "/api/cartridges", Some(&c), 201).await;
    }
    let app = |id: &str, cartridge: &str| {
        json!({"applicationId": id, "components": {"cartridges": [{"type": cartridge, "cartridgeMin": 1, "cartridgeMax": 1,
            "subscribableInfo": {"alias": "db", "autoscalingPolicy": "economy", "deploymentPolicy": "dp"}}]}})
    };
    let mut devs = Vec::new();
    for (domain, user) in [("acme.test", "acme-admin"), ("other.test", "other-admin")] {
        api.tenant(domain).await;
        let admin = api.user(&api.admin, user, "tenant-admin", Some(domain)).await;
        api.must(&admin, Method::POST, "/api/deploymentPolicies", Some(&deployment_policy("dp")), 201).await;
        api.must(&admin, Method::POST, "/api/applicationPolicies", Some(&application_policy("ap")), 201).await;
        devs.push(admin);
    }
    let (acme, other) = (&devs[0], &devs[1]);
    // Added before anyone deploys it: fine. Deployed by acme: the port is acme's.
    api.must(other, Method::POST, "/api/applications", Some(&app("late", "tcpdb")), 201).await;
    api.must(acme, Method::POST, "/api/applications", Some(&app("db", "tcpdb")), 201).await;
    api.must(acme, Method::POST, "/api/applications/db/deploy/ap", None, 202).await;

    // Another tenant: refused at deploy and at add, the owner unnamed.
    for (method, path, body) in [
        (Method::POST, "/api/applications/late/deploy/ap", None),
        (Method::POST, "/api/applications", Some(app("thief", "tcpdb"))),
    ] {
        let a = api.must(other, method, path, body.as_ref(), 409).await;
        assert_eq!(a["problems"][0]["path"], "components.cartridges[0].type", "{a}");
        let message = a["problems"][0]["message"].as_str().unwrap();
        assert!(message.contains("13306") && message.contains("another tenant"), "{a}");
        assert!(!a.to_string().contains("\"db\"") && !a.to_string().contains("acme"), "the owner leaked: {a}");
    }
    assert_eq!(api.get(other, "/api/applications/late/runtime").await.body["status"], "not-deployed");
    // The same tenant: refused, naming its own application.
    let a = api.must(acme, Method::POST, "/api/applications", Some(&app("db2", "tcpdb")), 409).await;
    assert!(a["problems"][0]["message"].as_str().unwrap().contains("application \"db\""), "{a}");
    // The platform's own port: refused for everyone, the platform admin included.
    api.must(&api.admin, Method::POST, "/api/deploymentPolicies", Some(&deployment_policy("dp")), 201).await;
    for token in [acme, &api.admin] {
        let a = api.must(token, Method::POST, "/api/applications", Some(&app("bus-thief", "busy")), 409).await;
        assert_eq!(a["problems"][0]["path"], "components.cartridges[0].type", "{a}");
        assert!(a.to_string().contains("the event bus"), "{a}");
    }
}

/// `GET /api/backup` is the platform admins' alone: a tenant admin (of its own tenant)
/// and a viewer get 403; the platform admin gets every document of every tenant as
/// stored, password and token hashes included, no password or token in clear.
#[tokio::test]
async fn backup_is_a_platform_admins_alone() {
    let w = world().await;
    let acme_admin = w.api.login("acme-admin", PASSWORD).await;
    for (who, token) in [("tenant admin", acme_admin.as_str()), ("viewer", &w.viewer), ("foreign admin", &w.foreign)] {
        let a = w.api.get(token, "/api/backup").await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{who}: {}", a.text);
        assert!(a.text.contains("back up the platform") && a.text.contains("platform-admin"), "{who}: {}", a.text);
    }
    let a = w.api.get(&w.admin_token(), "/api/backup").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.headers["content-type"], "application/x-ndjson");
    assert!(a.headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"stratos-backup-"));
    let (header, documents) = stratos_store::backup::read(a.text.as_bytes()).unwrap();
    assert_eq!(documents, w.api.store.snapshot().await.unwrap(), "every document, as stored");
    assert_eq!(header.store, "sqlite");
    assert!(header.tenants >= 2, "{header:?}");
    assert!(header.collections["user"] >= 5 && header.collections["api-token"] >= 5, "{header:?}");
    assert!(documents.iter().any(|d| d.collection == "cartridge" && d.tenant == w.acme), "acme's own definitions");
    assert!(!a.text.contains(PASSWORD), "a password in clear");
    for token in [&w.api.admin, &w.viewer, &w.foreign, &acme_admin] {
        assert!(!a.text.contains(token.as_str()), "a token in clear");
    }
}
