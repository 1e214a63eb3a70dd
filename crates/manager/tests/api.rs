//! The REST API over real HTTP, on a real SQLite store and the embedded broker.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use stratos_bus::{AnyEvent, Bus, EmbeddedBroker};
use stratos_manager::{AppState, DEFAULT_BODY_LIMIT};
use stratos_store::{Record, Store};

struct Api {
    base: String,
    http: reqwest::Client,
    bus: Bus,
    /// The bus with the platform's credentials, for more connections.
    bus_url: String,
    store: Store,
    /// The first platform admin's token, sent with every request.
    token: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Api {
        Api::start_with(|_| {}).await
    }

    /// With the state set up by `setup` (the drivers a platform registered, ...).
    async fn start_with(setup: impl FnOnce(&mut AppState)) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("stratos.db")).await.unwrap();
        let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let bus =
            Bus::connect(&broker.platform_url(), &format!("manager-test-{}", dir.path().display())).await.unwrap();
        let mut state = AppState::new(store.clone(), Some(bus.clone()));
        setup(&mut state);
        let state = Arc::new(state);
        stratos_manager::bootstrap::first_admin(&store).await.unwrap();
        let token = stratos_manager::bootstrap::admin_token(&store, None).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(stratos_manager::serve(listener, state, DEFAULT_BODY_LIMIT, std::future::pending()));
        let bus_url = broker.platform_url();
        Api { base: format!("http://{addr}"), http: reqwest::Client::new(), bus, bus_url, store, token, _dir: dir }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<(&str, &str)>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some((content_type, text)) = body {
            req = req.header("content-type", content_type).body(text.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(("application/json", &body.to_string()))).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn add_examples(&self) {
        for (resource, file) in EXAMPLES {
            let (status, body) = self.post(&format!("/api/{resource}"), &example(file)).await;
            assert_eq!(status, StatusCode::CREATED, "{file}: {body}");
        }
    }
}

const EXAMPLES: &[(&str, &str)] = &[
    ("networkPartitions", "php-web/network-partition-np-local-1.json"),
    ("networkPartitions", "php-web/network-partition-np-local-2.json"),
    ("cartridges", "php-web/cartridge-php.json"),
    ("cartridges", "php-web/cartridge-python-api.json"),
    ("autoscalingPolicies", "php-web/autoscaling-policy-economy.json"),
    ("deploymentPolicies", "php-web/deployment-policy-web-bursting.json"),
    ("applicationPolicies", "php-web/application-policy-burst-local.json"),
    ("applications", "php-web/application-php-web.json"),
];

fn example(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(file);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn problem_paths(body: &Value) -> Vec<String> {
    body["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn definitions_crud_round_trip() {
    let api = Api::start().await;
    let mut events = api.bus.subscribe("application/#").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.add_examples().await;

    let (status, list) = api.get("/api/cartridges").await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["php", "python-api"]);
    let (status, one) = api.get("/api/applications/php-web").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, example("php-web/application-php-web.json").pipe(normalise::<stratos_model::Application>));

    let created = events
        .wait_for(Duration::from_secs(5), |e| match e {
            AnyEvent::ApplicationCreatedEvent(e) => Some(e.application_id),
            _ => None,
        })
        .await;
    assert_eq!(created.as_deref(), Some("php-web"));

    // Update by URL and by body (Stratos 4.1 style).
    let mut policy = example("php-web/autoscaling-policy-economy.json");
    policy["loadThresholds"]["requestsInFlight"]["threshold"] = json!(123.0);
    let (status, _) = api
        .send(reqwest::Method::PUT, "/api/autoscalingPolicies/economy", Some(("application/json", &policy.to_string())))
        .await;
    assert_eq!(status, StatusCode::OK);
    policy["loadThresholds"]["requestsInFlight"]["threshold"] = json!(124.0);
    let (status, _) = api
        .send(reqwest::Method::PUT, "/api/autoscalingPolicies", Some(("application/json", &policy.to_string())))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, stored) = api.get("/api/autoscalingPolicies/economy").await;
    assert_eq!(stored["loadThresholds"]["requestsInFlight"]["threshold"], json!(124.0));

    // Removal in dependency order works; each removed item is gone.
    for (resource, file) in EXAMPLES.iter().rev() {
        let def = example(file);
        let id = def.get("applicationId").or(def.get("id")).or(def.get("type")).unwrap().as_str().unwrap().to_string();
        let (status, body) = api.send(reqwest::Method::DELETE, &format!("/api/{resource}/{id}"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{resource}/{id}: {body}");
        assert_eq!(api.get(&format!("/api/{resource}/{id}")).await.0, StatusCode::NOT_FOUND);
    }
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for Value {}

/// What the server returns: the definition with defaults filled in.
fn normalise<D: serde::Serialize + serde::de::DeserializeOwned>(v: Value) -> Value {
    serde_json::to_value(serde_json::from_value::<D>(v).unwrap()).unwrap()
}

#[tokio::test]
async fn bad_input_gets_4xx_naming_the_field_and_stores_nothing() {
    let api = Api::start().await;
    api.add_examples().await;
    let before = api.get("/api/deploymentPolicies").await.1;

    // Syntax error.
    let (status, body) =
        api.send(reqwest::Method::POST, "/api/deploymentPolicies", Some(("application/json", "{\"id\": "))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Wrong type, with the path.
    let bad = json!({"id": "dp2", "networkPartitions": [{"id": "np-local-1", "partitionAlgo": "round-robin", "partitions": [{"id": "p1", "partitionMax": "ten"}]}]});
    let (status, body) = api.post("/api/deploymentPolicies", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem_paths(&body), ["networkPartitions[0].partitions[0].partitionMax"]);
    // Several problems at once, references included.
    let bad = json!({"id": "dp2", "networkPartitions": [
        {"id": "np-local-1", "partitionAlgo": "round-robin", "partitions": [{"id": "p1", "partitionMax": 2}, {"id": "nope", "partitionMax": 2}]},
        {"id": "np-missing", "partitionAlgo": "round-robin", "partitions": [{"id": "p1", "partitionMax": 2}, {"id": "p1", "partitionMax": 1}]}
    ]});
    let (status, body) = api.post("/api/deploymentPolicies", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let paths = problem_paths(&body);
    assert!(paths.contains(&"networkPartitions[1].partitions[1].id".to_string()), "{body}");
    assert!(paths.contains(&"networkPartitions[0].partitions[1].id".to_string()), "{body}");
    assert!(paths.contains(&"networkPartitions[1].id".to_string()), "{body}");
    assert!(body.to_string().contains("duplicate id \\\"p1\\\""), "{body}");
    // An application naming an unknown cartridge and policy.
    let mut app = example("php-web/application-php-web.json");
    app["applicationId"] = json!("other");
    app["components"]["cartridges"][0]["type"] = json!("ruby");
    app["components"]["cartridges"][0]["subscribableInfo"]["autoscalingPolicy"] = json!("nope");
    let (status, body) = api.post("/api/applications", &app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        problem_paths(&body),
        ["components.cartridges[0].type", "components.cartridges[0].subscribableInfo.autoscalingPolicy"]
    );
    assert_eq!(api.get("/api/applications/other").await.0, StatusCode::NOT_FOUND);
    // YAML works, and its errors carry paths too.
    let yaml = "id: yaml-policy\nloadThresholds:\n  memoryConsumption:\n    threshold: 120\n";
    let (status, body) =
        api.send(reqwest::Method::POST, "/api/autoscalingPolicies", Some(("application/yaml", yaml))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem_paths(&body), ["loadThresholds.memoryConsumption.threshold"]);
    let yaml = "id: yaml-policy\nloadThresholds:\n  memoryConsumption:\n    threshold: 70\n";
    let (status, body) =
        api.send(reqwest::Method::POST, "/api/autoscalingPolicies", Some(("application/yaml", yaml))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Unsupported media type, empty body, oversize body.
    let (status, _) = api.send(reqwest::Method::POST, "/api/cartridges", Some(("application/xml", "<x/>"))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = api.send(reqwest::Method::POST, "/api/cartridges", Some(("application/json", ""))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let huge = format!("{{\"id\": \"big\", \"description\": \"{}\"}}", "x".repeat(DEFAULT_BODY_LIMIT + 10));
    let (status, body) =
        api.send(reqwest::Method::POST, "/api/autoscalingPolicies", Some(("application/json", &huge))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    // Duplicates conflict; the stored one is unchanged.
    let mut dup = example("php-web/deployment-policy-web-bursting.json");
    dup["networkPartitions"][0]["partitions"][0]["partitionMax"] = json!(99);
    let (status, _) = api.post("/api/deploymentPolicies", &dup).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // An id that differs from the URL is refused.
    let (status, body) = api
        .send(reqwest::Method::PUT, "/api/deploymentPolicies/other", Some(("application/json", &dup.to_string())))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem_paths(&body), ["id"]);
    assert_eq!(api.get("/api/deploymentPolicies").await.1, before);
    // Unknown routes and ids are JSON 404s.
    let (status, body) = api.get("/api/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    assert_eq!(api.get("/api/cartridges/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn definitions_in_use_cannot_be_removed_or_broken() {
    let api = Api::start().await;
    api.add_examples().await;
    let (status, body) = api.send(reqwest::Method::DELETE, "/api/cartridges/php", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["error"].as_str().unwrap().contains("application \"php-web\""), "{body}");
    // Dropping partition p2 from np-local-1 would break the deployment policy that uses it.
    let mut np = example("php-web/network-partition-np-local-1.json");
    np["partitions"].as_array_mut().unwrap().retain(|p| p["id"] != "p2");
    let (status, body) = api
        .send(reqwest::Method::PUT, "/api/networkPartitions/np-local-1", Some(("application/json", &np.to_string())))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        problem_paths(&body)
            .iter()
            .any(|p| p.starts_with("deploymentPolicies/web-bursting: networkPartitions[0].partitions[1].id")),
        "{body}"
    );
    let (_, stored) = api.get("/api/networkPartitions/np-local-1").await;
    assert_eq!(
        stored,
        example("php-web/network-partition-np-local-1.json").pipe(normalise::<stratos_model::NetworkPartition>)
    );
}

#[tokio::test]
async fn openapi_document_describes_every_route() {
    let api = Api::start().await;
    let (status, doc) = api.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    for kind in stratos_model::Kind::ALL {
        let path = format!("/api/{}", kind.resource());
        assert!(doc["paths"][&path]["post"].is_object(), "{path}");
        assert!(doc["paths"][format!("{path}/{{id}}")]["delete"].is_object(), "{path}");
    }
    for path in [
        "/api/applications/{id}/deploy/{policy}",
        "/api/applications/{id}/undeploy",
        "/api/applications/{id}/runtime",
        "/api/topology",
        "/api/clusters/{id}/scalingHistory",
        "/api/applications/{id}/update",
        "/api/applications/{id}/rollout",
        "/api/applications/{id}/rollout/history",
        "/api/applications/{id}/rollout/undo",
        "/api/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Cartridge"]["properties"]["portMapping"].is_object(), "{schemas}");
    assert!(schemas["DeploymentPolicy"]["properties"]["networkPartitions"].is_object());
    // Every $ref resolves inside the document.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"").skip(1) {
        let target = part.split('"').next().unwrap();
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("foreign ref {target}"));
        assert!(schemas[name].is_object(), "dangling ref {target}");
    }
}

#[tokio::test]
async fn tenants_are_created_once_with_valid_domains() {
    let api = Api::start().await;
    let mut events = api.bus.subscribe("tenant/#").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, t) =
        api.post("/api/tenants", &json!({"tenantDomain": "example.com", "email": "ops@example.com"})).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(t["tenantId"], 1);
    let (status, t2) = api.post("/api/tenants", &json!({"tenantDomain": "other.org"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(t2["tenantId"], 2);
    assert_eq!(api.post("/api/tenants", &json!({"tenantDomain": "example.com"})).await.0, StatusCode::CONFLICT);
    let (status, body) = api.post("/api/tenants", &json!({"tenantDomain": "not a domain"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem_paths(&body), ["tenantDomain"]);
    assert_eq!(api.get("/api/tenants/example.com").await.1["email"], "ops@example.com");
    assert_eq!(api.get("/api/tenants").await.1.as_array().unwrap().len(), 2);
    let got = events
        .wait_for(Duration::from_secs(5), |e| match e {
            AnyEvent::TenantCreatedEvent(e) => Some(e.tenant.tenant_domain),
            _ => None,
        })
        .await;
    assert_eq!(got.as_deref(), Some("example.com"));
    // A consumer that subscribes afterwards gets every tenant from the retained snapshot.
    let late_bus = Bus::connect(&api.bus_url, "late-subscriber").await.unwrap();
    let mut late = late_bus.subscribe("tenant/#").await.unwrap();
    let snapshot = late
        .wait_for(Duration::from_secs(5), |e| match e {
            // The older snapshot may still be the retained one for a moment.
            AnyEvent::CompleteTenantEvent(e) if e.tenants.len() == 2 => {
                Some(e.tenants.into_iter().map(|t| t.tenant_domain).collect::<Vec<_>>())
            }
            _ => None,
        })
        .await;
    assert_eq!(snapshot, Some(vec!["example.com".to_string(), "other.org".to_string()]));
}

#[tokio::test]
async fn groups_are_deployed_as_a_tree_and_their_status_shown() {
    let api = Api::start().await;
    api.add_examples().await;
    let sub = |t: &str, alias: &str| {
        json!({"type": t, "cartridgeMin": 1, "cartridgeMax": 2,
            "subscribableInfo": {"alias": alias, "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}})
    };
    let group = json!({"name": "backend-group", "cartridges": ["python-api"],
        "groups": [{"name": "data-group", "cartridges": ["python-api"]}]});
    assert_eq!(api.post("/api/cartridgeGroups", &group).await.0, StatusCode::CREATED);
    // front; backend { api; data { worker } }: front starts once the whole backend is active.
    let app = json!({"applicationId": "grouped", "components": {
        "cartridges": [sub("php", "front")],
        "groups": [{"name": "backend-group", "alias": "backend", "groupMinInstances": 1, "groupMaxInstances": 2,
            "cartridges": [sub("python-api", "api")],
            "groups": [{"name": "data-group", "alias": "data", "cartridges": [sub("python-api", "worker")]}]}],
        "dependencies": {"startupOrders": [{"aliases": ["group.backend", "cartridge.front"]}]}
    }});
    let (status, body) = api.post("/api/applications", &app).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, deployment) = api.post("/api/applications/grouped/deploy/burst-local", &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deployment}");
    let groups = &deployment["groups"];
    assert_eq!(groups[0]["alias"], "backend");
    assert_eq!(groups[0]["clusters"], json!(["api"]));
    assert_eq!(groups[0]["groups"][0]["alias"], "data");
    assert_eq!(groups[0]["groups"][0]["clusters"], json!(["worker"]));
    let front = deployment["clusters"].as_array().unwrap().iter().find(|c| c["alias"] == "front").unwrap();
    assert_eq!(front["dependsOn"], json!(["api", "worker"]), "group.backend is every cluster of the group, nested too");

    // Before the autoscaler looked: every monitor is Created.
    let (_, runtime) = api.get("/api/applications/grouped/runtime").await;
    assert_eq!(runtime["applicationStatus"], "Created", "{runtime}");
    assert_eq!(runtime["groups"][0]["status"], "Created");
    assert_eq!(runtime["groups"][0]["groups"][0]["status"], "Created");
    let group_of = |runtime: &Value, alias: &str| {
        runtime["clusters"].as_array().unwrap().iter().find(|c| c["alias"] == alias).unwrap()["group"].clone()
    };
    assert_eq!(group_of(&runtime, "front"), Value::Null);
    assert_eq!(group_of(&runtime, "api"), "backend");
    assert_eq!(group_of(&runtime, "worker"), "data");

    // What the autoscaler's monitors recorded, for this deployment only.
    let record = |deployed_at: &Value| {
        json!({"applicationId": "grouped", "deployedAt": deployed_at, "status": "Inactive",
            "groups": {"backend": "Inactive", "data": "Active"}, "updatedAt": 1})
    };
    let tenant = stratos_model::SUPER_TENANT;
    let statuses = <stratos_model::ApplicationMonitorStatus as Record>::COLLECTION;
    api.store.put(tenant, statuses, "grouped", &record(&deployment["deployedAt"])).await.unwrap();
    let (_, runtime) = api.get("/api/applications/grouped/runtime").await;
    assert_eq!(runtime["applicationStatus"], "Inactive", "{runtime}");
    assert_eq!(runtime["groups"][0]["status"], "Inactive");
    assert_eq!(runtime["groups"][0]["groups"][0]["status"], "Active");
    api.store.put(tenant, statuses, "grouped", &record(&json!(1))).await.unwrap();
    let (_, runtime) = api.get("/api/applications/grouped/runtime").await;
    assert_eq!(runtime["applicationStatus"], "Created", "a record of an earlier deployment: {runtime}");
    assert!(runtime.get("errors").is_none(), "{runtime}");

    // Documents that cannot be read are named, never taken for absent.
    api.store.put(tenant, statuses, "grouped", &json!({"applicationId": "grouped", "status": 3})).await.unwrap();
    let scale = <stratos_model::ClusterScale as Record>::COLLECTION;
    api.store.put(tenant, scale, "grouped.api", &json!({"clusterId": "grouped.api", "desired": "two"})).await.unwrap();
    let (status, runtime) = api.get("/api/applications/grouped/runtime").await;
    assert_eq!(status, StatusCode::OK, "{runtime}");
    let errors = runtime["errors"].to_string();
    assert!(errors.contains("application-status/grouped") && errors.contains("cluster-scale/grouped.api"), "{runtime}");
    let api_cluster = runtime["clusters"].as_array().unwrap().iter().find(|c| c["alias"] == "api").unwrap();
    assert!(api_cluster["error"].as_str().unwrap().contains("cluster-scale/grouped.api"), "{runtime}");
    let deployments = <stratos_model::Deployment as Record>::COLLECTION;
    api.store.put(tenant, deployments, "grouped", &json!({"applicationId": "grouped"})).await.unwrap();
    let (status, runtime) = api.get("/api/applications/grouped/runtime").await;
    assert_eq!(status, StatusCode::OK, "{runtime}");
    assert_eq!(runtime["status"], "unreadable", "{runtime}");
    let errors = runtime["errors"].to_string();
    assert!(errors.contains("deployment/grouped") && errors.contains("tenant -1234"), "{runtime}");
    // Nor is it "not deployed": undeploying it is an error naming it.
    let (status, body) = api.post("/api/applications/grouped/undeploy", &json!({})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.to_string().contains("deployment/grouped"), "{body}");
}

/// An application of one php cluster `alias`, naming `hosts`.
fn php_app(id: &str, alias: &str, hosts: &[&str]) -> Value {
    json!({"applicationId": id, "components": {"cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 3,
        "subscribableInfo": {"alias": alias, "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting",
            "hostNames": hosts}}]}})
}

fn problems_text(body: &Value) -> String {
    body["problems"]
        .as_array()
        .map(|p| p.iter().map(|p| p["message"].as_str().unwrap_or("")).collect::<Vec<_>>().join("; "))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_host_name_of_a_deployed_application_cannot_be_claimed_again() {
    let api = Api::start().await;
    api.add_examples().await;
    // Added before php-web is deployed: nobody holds the name yet.
    let (status, body) = api.post("/api/applications", &php_app("early", "web", &["php-web.web.stratos.local"])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api.post("/api/applications/php-web/deploy/burst-local", &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Deploying the early claimant now: 409, at the field, naming the owner (same tenant).
    let (status, body) = api.post("/api/applications/early/deploy/burst-local", &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(problem_paths(&body), ["components.cartridges[0].subscribableInfo.hostNames[0]"]);
    assert!(problems_text(&body).contains("php-web"), "{body}");
    assert_eq!(api.get("/api/applications/early/runtime").await.1["status"], "not-deployed");

    // Adding or changing an application to claim it is refused too; case does not help.
    let (status, body) = api.post("/api/applications", &php_app("thief", "web", &["PHP-Web.web.stratos.local"])).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(problem_paths(&body), ["components.cartridges[0].subscribableInfo.hostNames[0]"]);
    assert_eq!(api.get("/api/applications/thief").await.0, StatusCode::NOT_FOUND, "nothing stored");
    let (status, body) = api.post("/api/applications", &php_app("thief", "web", &["thief.example"])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let claim = php_app("thief", "web", &["thief.example", "php-web.stratos.local"]);
    let (status, body) =
        api.send(reqwest::Method::PUT, "/api/applications/thief", Some(("application/json", &claim.to_string()))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(problem_paths(&body), ["components.cartridges[0].subscribableInfo.hostNames[1]"]);
    assert_eq!(
        api.get("/api/applications/thief").await.1["components"]["cartridges"][0]["subscribableInfo"]["hostNames"],
        json!(["thief.example"])
    );
    // The owner itself may change its definition.
    let (status, body) = api
        .send(
            reqwest::Method::PUT,
            "/api/applications/php-web",
            Some(("application/json", &example("php-web/application-php-web.json").to_string())),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn colliding_cluster_ids_are_refused() {
    let api = Api::start().await;
    api.add_examples().await;
    // x.y + z and x + y.z are both cluster x.y.z.
    for app in [php_app("x.y", "z", &[]), php_app("x", "y.z", &[])] {
        let (status, body) = api.post("/api/applications", &app).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = api.post("/api/applications/x.y/deploy/burst-local", &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = api.post("/api/applications/x/deploy/burst-local", &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(problem_paths(&body).contains(&"components.cartridges[0].subscribableInfo.alias".to_string()), "{body}");
    assert!(problems_text(&body).contains("\"x.y.z\"") && problems_text(&body).contains("\"x.y\""), "{body}");
    let deployed = api.store.list_records_all_tenants::<stratos_model::Deployment>().await.unwrap();
    assert_eq!(deployed.records.len(), 1, "only x.y is deployed");
}

#[tokio::test]
async fn ids_that_break_urls_topics_or_the_cli_are_refused_by_the_api_and_the_schema() {
    let api = Api::start().await;
    for bad in ["", ".", "..", "a/b", "a b", "a+b", "a#b"] {
        let policy = json!({"id": bad, "loadThresholds": {"requestsInFlight": {"threshold": 80}}});
        let (status, body) = api.post("/api/autoscalingPolicies", &policy).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        assert_eq!(problem_paths(&body), ["id"], "{bad:?}: {body}");
    }
    let (_, doc) = api.get("/api/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [("AutoscalingPolicy", "id"), ("Cartridge", "type"), ("Application", "applicationId")] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property["pattern"], stratos_model::ID_PATTERN, "{schema}.{field}: {property}");
        assert_eq!(property["minLength"], 1, "{schema}.{field}");
    }
    let param = &doc["paths"]["/api/cartridges/{id}"]["get"]["parameters"][0]["schema"];
    assert_eq!(param["pattern"], stratos_model::ID_PATTERN, "{param}");
}

/// A request body: (content type, text).
type Body<'a> = (&'a str, &'a str);

/// Whether `value` is what `schema` (with `$ref`s into `schemas`) describes: types,
/// required properties, properties and array items (what the error schema uses).
fn conforms(value: &Value, schema: &Value, schemas: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return conforms(value, &schemas[name], schemas, at);
    }
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
        return Err(format!("{at}: {value} is not of type {}", schema["type"]));
    }
    for field in schema["required"].as_array().into_iter().flatten() {
        let field = field.as_str().unwrap();
        if value.get(field).is_none() {
            return Err(format!("{at}: required property {field:?} is missing in {value}"));
        }
    }
    for (field, sub) in schema["properties"].as_object().into_iter().flatten() {
        if let Some(v) = value.get(field) {
            conforms(v, sub, schemas, &format!("{at}.{field}"))?;
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            conforms(v, items, schemas, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_error_body_matches_the_openapi_error_schema() {
    let api = Api::start().await;
    api.add_examples().await;
    let (_, doc) = api.get("/api/openapi.json").await;
    let schemas = doc["components"]["schemas"].clone();
    let error_schema = json!({"$ref": "#/components/schemas/ErrorBody"});
    assert!(schemas["ErrorBody"]["required"].as_array().unwrap().contains(&json!("problems")));
    let duplicate = example_text("php-web/cartridge-php.json");
    let big = format!("{{\"id\": \"{}\"}}", "x".repeat(DEFAULT_BODY_LIMIT + 1));
    let cases: Vec<(StatusCode, reqwest::Method, &str, Option<Body>)> = vec![
        (StatusCode::BAD_REQUEST, reqwest::Method::POST, "/api/cartridges", Some(("application/json", "{\"type\": "))),
        (StatusCode::NOT_FOUND, reqwest::Method::GET, "/api/cartridges/nope", None),
        (StatusCode::NOT_FOUND, reqwest::Method::GET, "/api/no-such-route", None),
        (StatusCode::METHOD_NOT_ALLOWED, reqwest::Method::DELETE, "/api/topology", None),
        (StatusCode::METHOD_NOT_ALLOWED, reqwest::Method::PATCH, "/api/cartridges/php", None),
        (StatusCode::CONFLICT, reqwest::Method::POST, "/api/cartridges", Some(("application/json", &duplicate))),
        (StatusCode::PAYLOAD_TOO_LARGE, reqwest::Method::POST, "/api/cartridges", Some(("application/json", &big))),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, reqwest::Method::POST, "/api/cartridges", Some(("text/html", "<p>"))),
    ];
    for (expected, method, path, body) in cases {
        let (status, body) = api.send(method.clone(), path, body).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        assert_eq!(body["status"], expected.as_u16(), "{method} {path}: {body}");
        conforms(&body, &error_schema, &schemas, "body").unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        // Each status is documented on the route's operations that can answer it.
        let documented = doc["paths"]["/api/cartridges"]["post"]["responses"].get(expected.as_str()).is_some();
        assert!(documented, "{expected} is not in the OpenAPI document");
    }
}

fn example_text(file: &str) -> String {
    example(file).to_string()
}

/// A small tmpfs, unmounted when dropped: a disk that can be filled.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// `None` where this process may not mount (not root).
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| SmallDisk(at.to_path_buf()))
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write_all(&[0u8; 4096]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn health_is_503_when_the_store_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk"), "2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let store = Store::open_sqlite(&disk.0.join("stratos.db")).await.unwrap();
    let reader = store.clone();
    let state = Arc::new(AppState::new(store, None));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(stratos_manager::serve(listener, state, DEFAULT_BODY_LIMIT, std::future::pending()));
    let health = || async {
        let res = reqwest::get(format!("{base}/api/health")).await.unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    let (status, body) = health().await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The disk fills up: reads still work, writes cannot; health says so (its probe's
    // outcome is kept a second).
    let filler = disk.fill();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = health().await;
        if status != StatusCode::OK || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(body["storeError"].as_str().unwrap().contains("full"), "{body}");
    assert!(reader.list(stratos_model::SUPER_TENANT, "cartridge").await.is_ok(), "reads go on");

    std::fs::remove_file(filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = health().await;
        if status == StatusCode::OK || std::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::OK, "the disk has room again: {body}");
}

#[tokio::test]
async fn cartridge_groups_are_definitions_that_applications_name() {
    let api = Api::start().await;
    api.add_examples().await;
    // 4.1's shape, nested three deep, with a comma-joined alias list; in YAML too.
    let group = json!({"name": "web-group", "cartridges": ["php"], "groupScalingEnabled": "true",
        "groups": [{"name": "api-group", "cartridges": ["python-api"],
            "groups": [{"name": "worker-group", "cartridges": ["python-api"]}]}],
        "dependencies": {"startupOrders": [{"aliases": ["group.api, cartridge.web"]}], "terminationBehaviour": "terminate-none"}});
    let (status, body) = api.post("/api/cartridgeGroups", &group).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, stored) = api.get("/api/cartridgeGroups/web-group").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["groups"][0]["groups"][0]["name"], "worker-group");
    assert_eq!(stored["groupScalingEnabled"], true);
    assert_eq!(stored["dependencies"]["startupOrders"][0]["aliases"], json!(["group.api", "cartridge.web"]));
    let yaml = "name: yaml-group\ncartridges: [php]\n";
    let (status, body) =
        api.send(reqwest::Method::POST, "/api/cartridgeGroups", Some(("application/yaml", yaml))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, list) = api.get("/api/cartridgeGroups").await;
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web-group", "yaml-group"]);
    assert_eq!(api.post("/api/cartridgeGroups", &group).await.0, StatusCode::CONFLICT);

    // Bad input: every problem at its path, nothing stored.
    let bad = json!({"name": "bad", "cartridges": ["nope"], "groups": [{"name": "empty"}]});
    let (status, body) = api.post("/api/cartridgeGroups", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(problem_paths(&body), ["groups[0].cartridges", "cartridges[0]"], "{body}");
    assert_eq!(api.get("/api/cartridgeGroups/bad").await.0, StatusCode::NOT_FOUND);

    // An application names a stored group; its nested components may name the group's nested ones.
    let sub = |t: &str, alias: &str| {
        json!({"type": t, "cartridgeMin": 1, "cartridgeMax": 1,
            "subscribableInfo": {"alias": alias, "autoscalingPolicy": "economy"}})
    };
    let app = |group_name: &str| {
        json!({"applicationId": "grouped", "components": {
            "groups": [{"name": group_name, "alias": "web", "deploymentPolicy": "web-bursting",
                "cartridges": [sub("php", "front")],
                "groups": [{"name": "api-group", "alias": "api-g", "cartridges": [sub("python-api", "api")],
                    "groups": [{"name": "worker-group", "alias": "worker-g", "cartridges": [sub("python-api", "worker")]}]}]}]}})
    };
    let (status, body) = api.post("/api/applications", &app("no-such-group")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(problem_paths(&body).contains(&"components.groups[0].name".to_string()), "{body}");
    let (status, body) = api.post("/api/applications", &app("web-group")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The group's deployment policy is every cluster's, three levels down; GET gives back what was posted.
    let (_, stored) = api.get("/api/applications/grouped").await;
    assert_eq!(stored, normalise::<stratos_model::Application>(app("web-group")));
    assert!(stored["components"]["groups"][0]["cartridges"][0]["subscribableInfo"].get("deploymentPolicy").is_none());
    let (status, deployment) = api.post("/api/applications/grouped/deploy/burst-local", &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deployment}");
    for cluster in deployment["clusters"].as_array().unwrap() {
        assert_eq!(cluster["deploymentPolicy"], "web-bursting", "{cluster}");
    }
    assert_eq!(deployment["clusters"].as_array().unwrap().len(), 3);

    // In use: its removal (and that of a cartridge it has) is refused, naming the users.
    let (status, body) = api.send(reqwest::Method::DELETE, "/api/cartridgeGroups/web-group", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains(r#"application "grouped""#), "{body}");
    let (status, body) = api.send(reqwest::Method::DELETE, "/api/cartridges/python-api", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains(r#"cartridge group "web-group""#), "{body}");
    // An update that drops a cartridge the application subscribes to would break it.
    let mut smaller = group.clone();
    smaller["groups"] = json!([]);
    let (status, body) = api
        .send(reqwest::Method::PUT, "/api/cartridgeGroups/web-group", Some(("application/json", &smaller.to_string())))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(problem_paths(&body).iter().any(|p| p.starts_with("applications/grouped: components.groups[0]")), "{body}");

    // Once nothing uses it, it goes.
    assert_eq!(api.post("/api/applications/grouped/undeploy", &json!({})).await.0, StatusCode::ACCEPTED);
    api.store.delete(stratos_model::SUPER_TENANT, "deployment", "grouped").await.unwrap();
    assert_eq!(api.send(reqwest::Method::DELETE, "/api/applications/grouped", None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(
        api.send(reqwest::Method::DELETE, "/api/cartridgeGroups/web-group", None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get("/api/cartridgeGroups/web-group").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_41_cartridge_field_comes_back_from_a_get() {
    let api = Api::start().await;
    let cartridge = json!({"type": "mysql", "category": "data",
        "deployment": {"baseDir": "/var/lib/mysql", "dir": ["data"]},
        "metadataKeys": ["url"],
        "persistence": {"isRequired": true, "volume": [{"id": "data", "size": 10, "mappingPath": "/var/lib/mysql",
            "device": "/dev/sdc", "removeOnTermination": true}]},
        "iaasProvider": [{"type": "docker", "imageId": "mysql:8",
            "networkInterfaces": [{"networkUuid": "net-1", "floatingNetworks": [{"name": "ext", "floatingIP": "203.0.113.9"}]}]}]});
    let (status, body) = api.post("/api/cartridges", &cartridge).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, stored) = api.get("/api/cartridges/mysql").await;
    for field in ["deployment", "metadataKeys", "persistence"] {
        assert_eq!(stored[field], cartridge[field], "{field}: {stored}");
    }
    assert_eq!(stored["iaasProvider"][0]["networkInterfaces"], cartridge["iaasProvider"][0]["networkInterfaces"]);
    let mut bad = cartridge.clone();
    bad["type"] = json!("bad");
    bad["persistence"]["volume"][0]["mappingPath"] = json!("relative");
    let (status, body) = api.post("/api/cartridges", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(problem_paths(&body), ["persistence.volume[0].mappingPath"]);
}

#[tokio::test]
async fn a_provider_without_a_driver_is_refused_at_deploy_and_warned_of_when_added() {
    let api = Api::start_with(|state| state.drivers = Some(vec!["local".into(), "simulated".into()])).await;
    api.add_examples().await;
    let np = json!({"id": "np-mock", "provider": "mock", "partitions": [{"id": "p1"}]});
    let (status, body) = api.post("/api/networkPartitions", &np).await;
    assert_eq!(status, StatusCode::CREATED, "stored all the same: {body}");
    let warning = body["warnings"][0].as_str().unwrap_or_else(|| panic!("no warning: {body}"));
    assert!(warning.contains(r#""mock""#) && warning.contains("its drivers: local, simulated"), "{warning}");
    // The stored definition is the network partition alone.
    assert!(api.get("/api/networkPartitions/np-mock").await.1.get("warnings").is_none());
    let (_, body) = api
        .post("/api/networkPartitions", &json!({"id": "np-ok", "provider": "local", "partitions": [{"id": "p1"}]}))
        .await;
    assert!(body.get("warnings").is_none(), "{body}");

    let mut cartridge = example("php-web/cartridge-php.json");
    cartridge["type"] = json!("php-mock");
    cartridge["iaasProvider"].as_array_mut().unwrap().push(json!({"type": "mock", "imageId": "x"}));
    let (status, body) = api.post("/api/cartridges", &cartridge).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let dp = json!({"id": "dp-mock", "networkPartitions": [{"id": "np-mock", "partitionAlgo": "round-robin", "partitions": [{"id": "p1", "partitionMax": 2}]}]});
    let (status, body) = api.post("/api/deploymentPolicies", &dp).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ap = json!({"id": "ap-mock", "algorithm": "one-after-another", "networkPartitions": ["np-mock"]});
    assert_eq!(api.post("/api/applicationPolicies", &ap).await.0, StatusCode::CREATED);
    let app = json!({"applicationId": "on-mock", "components": {"cartridges": [{"type": "php-mock", "cartridgeMin": 1, "cartridgeMax": 1,
        "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "dp-mock"}}]}});
    assert_eq!(api.post("/api/applications", &app).await.0, StatusCode::CREATED);
    let (status, body) = api.post("/api/applications/on-mock/deploy/ap-mock", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(problem_paths(&body), ["components.cartridges[0].subscribableInfo.deploymentPolicy"]);
    let message = body["problems"][0]["message"].as_str().unwrap();
    for needle in [r#"network partition "np-mock""#, r#"provider "mock""#, "its drivers: local, simulated"] {
        assert!(message.contains(needle), "{needle} not in {message}");
    }
    // Nothing was deployed.
    let deployments = <stratos_model::Deployment as Record>::COLLECTION;
    assert!(api.store.get(stratos_model::SUPER_TENANT, deployments, "on-mock").await.unwrap().is_none());
}

#[tokio::test]
async fn mock_iaas_patterns_are_replaced_whole_and_bad_ones_are_refused_at_their_field() {
    let api = Api::start().await;
    let (status, none) = api.get("/api/mockIaas").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none, json!({"cartridges": []}), "no patterns before any is set");
    let patterns = json!({"cartridges": [{"type": "php", "patterns": [
        {"factor": "load-average", "pattern": "step", "from": 10.0, "to": 90.0, "at": "30s"},
        {"factor": "memory-consumption", "mode": "loop", "sampleValues": "20,30,40", "sampleDuration": 60.0}
    ]}]});
    let put = |body: String, content_type: &'static str| {
        let api = &api;
        async move { api.send(reqwest::Method::PUT, "/api/mockIaas", Some((content_type, &body))).await }
    };
    let (status, body) = put(patterns.to_string(), "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.get("/api/mockIaas").await.1, patterns, "read back as written (4.1's comma-joined samples kept)");

    // Every problem at its field; what was stored stays.
    let bad = json!({"cartridges": [{"type": "php", "patterns": [
        {"factor": "load-average", "pattern": "sine", "mean": 50, "period": "0s"},
        {"factor": "load-average", "pattern": "constant", "value": -3}
    ]}]});
    let (status, body) = put(bad.to_string(), "application/json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        problem_paths(&body),
        [
            "cartridges[0].patterns[0].amplitude",
            "cartridges[0].patterns[0].period",
            "cartridges[0].patterns[1].factor",
            "cartridges[0].patterns[1].value"
        ],
        "{body}"
    );
    let (status, body) =
        put(r#"{"cartridges": [{"type": "php", "patterns": [{"factor": "cpu"}]}]}"#.into(), "application/json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(problem_paths(&body), ["cartridges[0].patterns[0].factor"], "{body}");
    assert_eq!(api.get("/api/mockIaas").await.1, patterns, "a refused change stores nothing");

    // YAML too; and an empty set of patterns clears them.
    let yaml = "cartridges:\n  - type: tomcat\n    patterns:\n      - factor: load-average\n        pattern: ramp\n        from: 0\n        to: 80\n        duration: 2m\n";
    let (status, body) = put(yaml.into(), "application/yaml").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cartridges"][0]["patterns"][0]["duration"], "2m");
    let (status, _) = put(r#"{"cartridges": []}"#.into(), "application/json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.get("/api/mockIaas").await.1, json!({"cartridges": []}));
}

/// `GET /api/metrics`: the platform admin and the scrape token read it; the token opens
/// nothing else; the API counts its requests by route template (an unmatched one as
/// `unmatched`, never its path).
#[tokio::test]
async fn metrics_are_served_to_platform_admins_and_the_scrape_token_only() {
    const SCRAPE: &str = "a-scrape-token-of-enough-length";
    let mut metrics = stratos_metrics::Builder::default();
    let api_metrics = metrics.api();
    let scrape = metrics.finish();
    let api = Api::start_with(|state| {
        state.metrics = Some(stratos_manager::metrics::ApiMetricsState {
            scrape,
            api: api_metrics,
            token: Some(stratos_metrics::ScrapeToken::new(SCRAPE)),
        })
    })
    .await;
    let (status, _) = api.get("/api/cartridges").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.get("/api/no-such-route/secret-looking-path").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let get = |token: Option<&'static str>, path: &'static str| {
        let (http, base) = (api.http.clone(), api.base.clone());
        async move {
            let mut req = http.get(format!("{base}{path}"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            (res.status(), res.text().await.unwrap())
        }
    };
    let res = api.http.get(format!("{}/api/metrics", api.base)).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the platform admin");
    let (status, text) = get(Some(SCRAPE), "/api/metrics").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains(r#"stratos_api_requests_total{method="GET",route="/api/cartridges",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#) && !text.contains("secret-looking"), "{text}");
    assert_eq!(get(None, "/api/metrics").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some("a-scrape-token-of-enough-lengtH"), "/api/metrics").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Some(SCRAPE), "/api/cartridges").await.0,
        StatusCode::UNAUTHORIZED,
        "the token opens /api/metrics only"
    );
}
