//! The API over real HTTP on a real SQLite store, with its users: a platform admin
//! and, in two tenants, users of every role.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stratos_manager::auth::{TokenRecord, UserRecord};
use stratos_manager::{ApiConfig, AppState, TenantQuota, DEFAULT_BODY_LIMIT};
use stratos_model::SUPER_TENANT;
use stratos_store::{Record, ScalingHistory, Store};

/// A password long enough for the API's rules.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Api {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub store: Store,
    /// The first platform admin's token.
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// What an API call answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Api {
    pub async fn start(config: ApiConfig) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("stratos.db")).await.unwrap();
        stratos_manager::bootstrap::first_admin(&store).await.unwrap().expect("a new store has no admin");
        let admin = stratos_manager::bootstrap::admin_token(&store, None).await.unwrap();
        let state = Arc::new(AppState::with_config(store.clone(), None, config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(stratos_manager::serve(listener, state, DEFAULT_BODY_LIMIT, std::future::pending()));
        Api { base: format!("http://{addr}"), addr, http: reqwest::Client::new(), store, admin, _dir: dir }
    }

    /// A request with optional token, JSON body and extra headers.
    pub async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let text = res.text().await.unwrap();
        Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    pub async fn get(&self, token: &str, path: &str) -> Answer {
        self.call(Some(token), Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Answer {
        self.call(Some(token), Method::POST, path, Some(body), &[]).await
    }

    /// POST that must answer `status`.
    pub async fn must(&self, token: &str, method: Method, path: &str, body: Option<&Value>, status: u16) -> Value {
        let a = self.call(Some(token), method.clone(), path, body, &[]).await;
        assert_eq!(a.status.as_u16(), status, "{method} {path}: {}", a.text);
        a.body
    }

    /// Logs in: the token.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let a = self
            .call(None, Method::POST, "/api/tokens", Some(&json!({"username": user, "password": password})), &[])
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "login {user}: {}", a.text);
        a.body["token"].as_str().unwrap().to_owned()
    }

    /// Creates a tenant (as the platform admin): its id.
    pub async fn tenant(&self, domain: &str) -> i64 {
        let body =
            self.must(&self.admin, Method::POST, "/api/tenants", Some(&json!({"tenantDomain": domain})), 201).await;
        body["tenantId"].as_i64().unwrap()
    }

    /// Creates a user (as `by`) and logs it in: its token.
    pub async fn user(&self, by: &str, name: &str, role: &str, tenant: Option<&str>) -> String {
        let mut body = json!({"username": name, "password": PASSWORD, "role": role});
        if let Some(t) = tenant {
            body["tenantDomain"] = json!(t);
        }
        self.must(by, Method::POST, "/api/users", Some(&body), 201).await;
        self.login(name, PASSWORD).await
    }

    /// Every stored document of the tenants and collections named, for "nothing changed".
    pub async fn snapshot(&self, tenants: &[i64]) -> Vec<(i64, String, Value)> {
        let mut out = Vec::new();
        for collection in COLLECTIONS {
            for (tenant, value) in self.store.list_all_tenants(collection).await.unwrap() {
                if tenants.contains(&tenant) || tenant == SUPER_TENANT {
                    out.push((tenant, collection.to_string(), value));
                }
            }
        }
        out
    }
}

/// Every collection the API writes.
pub const COLLECTIONS: &[&str] = &[
    "cartridge",
    "network-partition",
    "deployment-policy",
    "autoscaling-policy",
    "application-policy",
    "application",
    <stratos_model::Deployment as Record>::COLLECTION,
    ScalingHistory::COLLECTION,
    <stratos_model::Tenant as Record>::COLLECTION,
    TenantQuota::COLLECTION,
    UserRecord::COLLECTION,
    TokenRecord::COLLECTION,
];

pub fn example(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/php-web").join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Adds the platform's definitions as the admin: the php-web network partitions and
/// cartridges, and `economy` as a public autoscaling policy.
pub async fn platform_definitions(api: &Api) {
    for (resource, file) in [
        ("networkPartitions", "network-partition-np-local-1.json"),
        ("networkPartitions", "network-partition-np-local-2.json"),
        ("cartridges", "cartridge-php.json"),
        ("cartridges", "cartridge-python-api.json"),
    ] {
        api.must(&api.admin, Method::POST, &format!("/api/{resource}"), Some(&example(file)), 201).await;
    }
    let mut economy = example("autoscaling-policy-economy.json");
    economy["isPublic"] = json!(true);
    api.must(&api.admin, Method::POST, "/api/autoscalingPolicies", Some(&economy), 201).await;
}

/// A cartridge of the `docker` provider only (no command on the platform's host).
pub fn docker_cartridge(name: &str) -> Value {
    json!({"type": name, "category": "framework", "multiTenant": false,
        "portMapping": [{"name": "http", "protocol": "http", "port": 8080, "proxyPort": 8290}],
        "iaasProvider": [{"type": "docker", "imageId": format!("{name}:1")}]})
}

/// An application of one `php` cluster of `min..max` members, with its tenant's own policies.
pub fn php_app(id: &str, dp: &str, asp: &str, min: u32, max: u32) -> Value {
    json!({"applicationId": id, "components": {"cartridges": [{"type": "php", "cartridgeMin": min, "cartridgeMax": max,
        "subscribableInfo": {"alias": "web", "autoscalingPolicy": asp, "deploymentPolicy": dp}}]}})
}

pub fn deployment_policy(id: &str) -> Value {
    json!({"id": id, "networkPartitions": [{"id": "np-local-1", "partitionAlgo": "one-after-another",
        "partitions": [{"id": "p1", "partitionMax": 5}]}]})
}

pub fn application_policy(id: &str) -> Value {
    json!({"id": id, "algorithm": "one-after-another", "networkPartitions": ["np-local-1"]})
}
