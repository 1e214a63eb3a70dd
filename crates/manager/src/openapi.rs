//! The OpenAPI document, generated from the same types the API decodes, so it
//! cannot drift from what the server accepts.

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use stratos_model::{
    Application, ApplicationPolicy, AutoscalingPolicy, Cartridge, CartridgeGroup, DeploymentPolicy, NetworkPartition,
    Tenant,
};

use crate::auth::routes::{LoginAnswer, LoginRequest, NewPassword, NewUser, UserView, Whoami};
use crate::auth::{TokenView, PUBLIC_ROUTES};
use crate::definitions::Resource;
use crate::error::ErrorBody;
use crate::quota::Quota;
use crate::tenants::{NewTenant, QuotaView};

pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    add_resource::<Cartridge>(&mut generator, &mut paths);
    add_resource::<NetworkPartition>(&mut generator, &mut paths);
    add_resource::<DeploymentPolicy>(&mut generator, &mut paths);
    add_resource::<AutoscalingPolicy>(&mut generator, &mut paths);
    add_resource::<ApplicationPolicy>(&mut generator, &mut paths);
    add_resource::<CartridgeGroup>(&mut generator, &mut paths);
    add_resource::<Application>(&mut generator, &mut paths);
    let tenant = generator.subschema_for::<Tenant>();
    let new_tenant = generator.subschema_for::<NewTenant>();
    let error = generator.subschema_for::<ErrorBody>();
    let errors = error_responses(&error);
    paths.insert(
        "/api/tenants".into(),
        json!({
            "get": {"tags": ["tenants"], "operationId": "listTenants", "summary": "List tenants",
                    "responses": {"200": {"description": "Every tenant", "content": {"application/json": {"schema": {"type": "array", "items": tenant}}}}}},
            "post": {"tags": ["tenants"], "operationId": "createTenant", "summary": "Create a tenant",
                     "requestBody": {"required": true, "content": {"application/json": {"schema": new_tenant}}},
                     "responses": merge(json!({"201": {"description": "Created", "content": {"application/json": {"schema": tenant}}}}), &errors)}
        }),
    );
    paths.insert(
        "/api/tenants/{domain}".into(),
        json!({"get": {"tags": ["tenants"], "operationId": "getTenant", "summary": "Show a tenant",
            "parameters": [{"name": "domain", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": merge(json!({"200": {"description": "The tenant", "content": {"application/json": {"schema": tenant}}}}), &errors)}}),
    );
    let deployment = generator.subschema_for::<stratos_model::Deployment>();
    let runtime = generator.subschema_for::<crate::deployments::Runtime>();
    let topology = generator.subschema_for::<stratos_model::topology::Topology>();
    let string_param = |name: &str, what: &str| json!({"name": name, "in": "path", "required": true, "description": what, "schema": id_schema()});
    paths.insert(
        "/api/applications/{id}/deploy/{policy}".into(),
        json!({"post": {"tags": ["applications"], "operationId": "deployApplication",
            "summary": "Deploy an application with an application policy",
            "description": "Its clusters start with their minimum members, in startup order. Returns at once; follow progress with the runtime route.",
            "parameters": [string_param("id", "The application's applicationId"), string_param("policy", "An application policy id")],
            "responses": merge(json!({"202": {"description": "Accepted", "content": {"application/json": {"schema": deployment}}}}), &errors)}}),
    );
    paths.insert(
        "/api/applications/{id}/undeploy".into(),
        json!({"post": {"tags": ["applications"], "operationId": "undeployApplication",
            "summary": "Undeploy an application: members drain, then terminate",
            "parameters": [string_param("id", "The application's applicationId")],
            "responses": merge(json!({"202": {"description": "Accepted", "content": {"application/json": {"schema": deployment}}}}), &errors)}}),
    );
    paths.insert(
        "/api/applications/{id}/runtime".into(),
        json!({"get": {"tags": ["applications"], "operationId": "applicationRuntime",
            "summary": "A deployed application's clusters, members and errors",
            "parameters": [string_param("id", "The application's applicationId")],
            "responses": merge(json!({"200": {"description": "Runtime status", "content": {"application/json": {"schema": runtime}}}}), &errors)}}),
    );
    paths.insert(
        "/api/topology".into(),
        json!({"get": {"tags": ["platform"], "operationId": "topology", "summary": "Services, clusters and members as the cloud controller sees them",
            "responses": {"200": {"description": "The topology", "content": {"application/json": {"schema": topology}}}}}}),
    );
    paths.insert(
        "/api/clusters/{id}/scalingHistory".into(),
        json!({"get": {"tags": ["clusters"], "operationId": "scalingHistory",
            "summary": "The autoscaler's recent decisions for a cluster, each with its inputs",
            "parameters": [string_param("id", "Cluster id: <applicationId>.<alias>")],
            "responses": merge(json!({"200": {"description": "Oldest first", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}}}), &errors)}}),
    );
    let scale_request = generator.subschema_for::<crate::cluster_ops::ScaleRequest>();
    let bounds = generator.subschema_for::<crate::cluster_ops::ClusterBounds>();
    let restart = generator.subschema_for::<crate::cluster_ops::RestartStatus>();
    paths.insert(
        "/api/clusters/{id}/scale".into(),
        json!({"put": {"tags": ["clusters"], "operationId": "scaleCluster",
            "summary": "Set a deployed cluster's min and/or max members",
            "description": "Persisted in the deployment; the cluster is brought inside the new bounds at once and the autoscaler decides within them. Max is held to what the deployment policy's partitions hold (not to the application's cartridgeMax), the platform's largest cluster size and the tenant's quota.",
            "parameters": [string_param("id", "Cluster id: <applicationId>.<alias>")],
            "requestBody": {"required": true, "content": {"application/json": {"schema": scale_request}}},
            "responses": merge(json!({"200": {"description": "The bounds now in force", "content": {"application/json": {"schema": bounds}}}}), &errors)}}),
    );
    paths.insert(
        "/api/clusters/{id}/restart".into(),
        json!({
            "post": {"tags": ["clusters"], "operationId": "restartCluster",
                "summary": "Restart a cluster's members, one at a time",
                "description": "Each member is replaced by a new one, which is Active before the old one drains. 409 while a restart of the cluster runs.",
                "parameters": [string_param("id", "Cluster id: <applicationId>.<alias>")],
                "responses": merge(json!({"202": {"description": "Accepted", "content": {"application/json": {"schema": restart}}}}), &errors)},
            "get": {"tags": ["clusters"], "operationId": "clusterRestartStatus",
                "summary": "The progress of a cluster's last rolling restart",
                "parameters": [string_param("id", "Cluster id: <applicationId>.<alias>")],
                "responses": merge(json!({"200": {"description": "Members left to replace and their replacements", "content": {"application/json": {"schema": restart}}}}), &errors)}
        }),
    );
    let exec_request = generator.subschema_for::<crate::member_exec::ExecRequest>();
    paths.insert(
        "/api/members/{id}/exec".into(),
        json!({"post": {"tags": ["members"], "operationId": "execInMember",
            "summary": "Run a command in a member's environment, its output streamed",
            "description": "The answer is newline-delimited JSON as the command runs: {\"stdout\": text}, {\"stderr\": text}, and last {\"exit\": code} (null when a signal ended it). The command runs without the member's bus credentials. 409 when the member's driver cannot run it (mock members have no process).",
            "parameters": [string_param("id", "Member id")],
            "requestBody": {"required": true, "content": {"application/json": {"schema": exec_request}}},
            "responses": merge(json!({"200": {"description": "The command's output, then its exit code", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}), &errors)}}),
    );
    crate::app_config::openapi(&mut generator, &mut paths, &errors);
    let run_request = generator.subschema_for::<crate::tasks::RunRequest>();
    paths.insert(
        "/api/applications/{id}/run".into(),
        json!({"post": {"tags": ["applications"], "operationId": "runTask",
            "summary": "Run a one-off task in a new member of one of the application's clusters, its output streamed",
            "description": "The task member has the cluster's cartridge as deployed (image, env.* properties), no persistent volumes, no agent, no bus credentials; no load balancer routes to it and no autoscaler counts it. It is removed when the command ends or the client goes away. The answer is newline-delimited JSON as in execInMember: {\"stdout\": text}, {\"stderr\": text}, last {\"exit\": code}. 400 without cluster when the application has several; 409 when the cluster's driver cannot run tasks (local and docker do).",
            "parameters": [string_param("id", "Application id")],
            "requestBody": {"required": true, "content": {"application/json": {"schema": run_request}}},
            "responses": merge(json!({"200": {"description": "The command's output, then its exit code", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}), &errors)}}),
    );
    let volume_view = generator.subschema_for::<Vec<crate::workloads::VolumeView>>();
    paths.insert(
        "/api/volumes".into(),
        json!({"get": {"tags": ["volumes"], "operationId": "listVolumes",
            "summary": "The tenant's persistent volumes (cartridges' persistence), one per cluster, member slot and volume id",
            "description": "Each with the member of its slot now, if any. A volume with removeOnTermination is removed once its slot is not used for good (past the cluster's desired size with no member, or the application undeployed); one without is kept.",
            "parameters": [{"name": "application", "in": "query", "required": false, "schema": {"type": "string"}, "description": "Only this application's volumes"}],
            "responses": merge(json!({"200": {"description": "The volumes", "content": {"application/json": {"schema": volume_view}}}}), &errors)}}),
    );
    add_identity(&mut generator, &mut paths, &errors);
    add_rollouts(&mut generator, &mut paths, &errors);
    let quota = generator.subschema_for::<Quota>();
    let quota_view = generator.subschema_for::<QuotaView>();
    let domain = json!([{"name": "domain", "in": "path", "required": true, "schema": {"type": "string"}}]);
    paths.insert(
        "/api/tenants/{domain}/quota".into(),
        json!({
            "get": {"tags": ["tenants"], "operationId": "getTenantQuota", "summary": "A tenant's quota: as set, and in force", "parameters": domain,
                    "responses": merge(json!({"200": {"description": "The quota", "content": {"application/json": {"schema": quota_view}}}}), &errors)},
            "put": {"tags": ["tenants"], "operationId": "setTenantQuota", "summary": "Set a tenant's quota (platform admins); a field left out takes the platform's default",
                    "parameters": domain,
                    "requestBody": {"required": true, "content": {"application/json": {"schema": quota}}},
                    "responses": merge(json!({"200": {"description": "The quota", "content": {"application/json": {"schema": quota_view}}}}), &errors)}
        }),
    );
    for (verb, summary) in [
        ("activate", "Activate a tenant (platform admins): its users may log in again"),
        ("deactivate", "Deactivate a tenant (platform admins): its users cannot log in and its tokens are refused; its applications keep running"),
    ] {
        paths.insert(
            format!("/api/tenants/{{domain}}/{verb}"),
            json!({"post": {"tags": ["tenants"], "operationId": format!("{verb}Tenant"), "summary": summary, "parameters": domain,
                "responses": merge(json!({"200": {"description": "The tenant", "content": {"application/json": {"schema": tenant}}}}), &errors)}}),
        );
    }
    let mock_iaas = generator.subschema_for::<stratos_model::MockIaasConfig>();
    paths.insert(
        "/api/mockIaas".into(),
        json!({
            "get": {"tags": ["platform"], "operationId": "getMockIaas", "summary": "The mock IaaS's health-statistics patterns (platform admins)",
                    "responses": merge(json!({"200": {"description": "Every pattern, per cartridge type and factor", "content": {"application/json": {"schema": mock_iaas}}}}), &errors)},
            "put": {"tags": ["platform"], "operationId": "setMockIaas", "summary": "Replace the mock IaaS's patterns (platform admins)",
                    "description": "Running mock members follow the new patterns within a second; a pattern that changed starts its time then. Patterns: constant (value), ramp (from, to, duration), step (from, to, at), sine (mean, amplitude, period), samples (sampleValues, sampleDuration, mode loop|continue|stop), for the factors load-average and memory-consumption.",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": mock_iaas}, "application/yaml": {"schema": mock_iaas}}},
                    "responses": merge(json!({"200": {"description": "The patterns now in force", "content": {"application/json": {"schema": mock_iaas}}}}), &errors)}
        }),
    );
    paths.insert(
        "/api/backup".into(),
        json!({"get": {"tags": ["platform"], "operationId": "backup", "summary": "The platform's whole state, for `stratos restore` (platform admins)",
            "description": "JSON lines from one consistent snapshot of the store: a header ({\"format\":\"stratos-backup\",\"formatVersion\",\"schemaVersion\",\"platformId\",\"createdAt\",\"store\",\"documents\",\"collections\",\"tenants\"}), then one line per document ({\"collection\",\"tenant\",\"id\",\"body\"}) of every collection and tenant, as stored: passwords and tokens as their hashes, secrets encrypted. The data directory's key files are not in it.",
            "responses": merge(json!({"200": {"description": "The backup", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}), &errors)}}),
    );
    paths.insert(
        "/api/metrics".into(),
        json!({"get": {"tags": ["platform"], "operationId": "metrics", "summary": "Every component's Prometheus metrics (platform admins, or the scrape token)",
            "description": "The OpenMetrics text format: members by status per cluster, desired sizes, reconcile durations, scaling decisions by factor and direction, predicted and observed load, event-bus publishes, receipts and receive lag by event type, load-balancer requests, errors, latency and in flight per cluster, API requests by route template. A platform admin's token, or the token of `stratos up --metrics-token-file` (for Prometheus: it opens this route only). Tenants' users get 403: the series name every tenant's clusters.",
            "responses": merge(json!({"200": {"description": "The metrics", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}}}), &errors)}}),
    );
    paths.insert(
        "/api/health".into(),
        json!({"get": {"tags": ["platform"], "operationId": "health", "summary": "Whether the manager, its store and its bus answer",
            "responses": {"200": {"description": "Healthy: the store takes writes", "content": {"application/json": {"schema": {"type": "object"}}}},
                          "503": {"description": "The store fails; `storeError` says why", "content": {"application/json": {"schema": {"type": "object"}}}}}}}),
    );
    secure(&mut paths, &error);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Stratos manager API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Definitions, applications and tenants of a Stratos platform. Bodies are JSON (or YAML with Content-Type application/yaml) with Apache Stratos 4.1 field names. Errors are JSON with the path of every field at fault. Every route but logging in (POST /api/tokens), /api/health and this document takes a bearer token: `Authorization: Bearer <token>`."
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "A token from POST /api/tokens (`stratos login`), or the admin token file `stratos up` writes. Never read from cookies."}}
        }
    })
}

fn add_resource<D: Resource>(generator: &mut schemars::SchemaGenerator, paths: &mut Map<String, Value>) {
    let kind = D::KIND;
    let schema = generator.subschema_for::<D>();
    let error = generator.subschema_for::<ErrorBody>();
    let errors = error_responses(&error);
    let words = kind.words();
    let tag = kind.resource();
    let name = pascal(kind.name());
    let body = json!({"required": true, "content": {
        "application/json": {"schema": schema},
        "application/yaml": {"schema": schema}
    }});
    let one = json!({"application/json": {"schema": schema}});
    let id_param = json!([{"name": "id", "in": "path", "required": true, "description": format!("The {words}'s `{}`", kind.id_field()), "schema": id_schema()}]);
    paths.insert(
        format!("/api/{tag}"),
        json!({
            "get": {"tags": [tag], "operationId": format!("list{name}s"), "summary": format!("List every {words}"),
                    "responses": {"200": {"description": format!("Every {words}"), "content": {"application/json": {"schema": {"type": "array", "items": schema}}}}}},
            "post": {"tags": [tag], "operationId": format!("add{name}"), "summary": format!("Add a {words}"),
                     "description": "Validated on its own and against the definitions it names; nothing is stored when a problem is found. The answer is the definition as stored; when something valid will not work on this platform (a network partition whose provider has no driver here) it also carries `warnings`, a list of sentences.",
                     "requestBody": body,
                     "responses": merge(json!({"201": {"description": "Added", "content": one}}), &errors)},
            "put": {"tags": [tag], "operationId": format!("update{name}FromBody"), "summary": format!("Replace a {words} named by the body (Apache Stratos 4.1 style)"),
                    "requestBody": body,
                    "responses": merge(json!({"200": {"description": "Replaced", "content": one}}), &errors)}
        }),
    );
    paths.insert(
        format!("/api/{tag}/{{id}}"),
        json!({
            "get": {"tags": [tag], "operationId": format!("get{name}"), "summary": format!("Show a {words}"), "parameters": id_param,
                    "responses": merge(json!({"200": {"description": format!("The {words}"), "content": one}}), &errors)},
            "put": {"tags": [tag], "operationId": format!("update{name}"), "summary": format!("Replace a {words}"), "parameters": id_param,
                    "description": "Refused with 409 when the change would break a definition that names this one.",
                    "requestBody": body,
                    "responses": merge(json!({"200": {"description": "Replaced", "content": one}}), &errors)},
            "delete": {"tags": [tag], "operationId": format!("remove{name}"), "summary": format!("Remove a {words}"), "parameters": id_param,
                       "description": "Refused with 409 while another definition names it.",
                       "responses": merge(json!({"204": {"description": "Removed"}}), &errors)}
        }),
    );
}

/// Log in and out, tokens and users.
/// `stratos application update` and `stratos application rollout` (`rollouts.rs`).
fn add_rollouts(generator: &mut schemars::SchemaGenerator, paths: &mut Map<String, Value>, errors: &Value) {
    let request = generator.subschema_for::<crate::rollouts::UpdateRequest>();
    let outcome = generator.subschema_for::<crate::rollouts::UpdateOutcome>();
    let view = generator.subschema_for::<crate::rollouts::RolloutView>();
    let id = || json!({"name": "id", "in": "path", "required": true, "description": "The application's applicationId", "schema": id_schema()});
    paths.insert(
        "/api/applications/{id}/update".into(),
        json!({"post": {"tags": ["applications"], "operationId": "updateApplication",
            "summary": "Move a deployed application's changed clusters to new revisions, rolling",
            "description": "Each cluster whose cartridge or artifact repository changed since its revision gets a new revision, and its members are replaced: new members start up to the desired size plus maxSurge, an old member drains only while at least the desired size less maxUnavailable serve (Active, health checks passing). A rollout not done within its deadline, or whose new members fail 3 times in a row, fails: the new members drain and the clusters go back to the revisions they came from. 200 when nothing changed; 409 while a rollout of the application progresses. The body may be empty.",
            "parameters": [id()],
            "requestBody": {"required": false, "content": {"application/json": {"schema": request}}},
            "responses": merge(json!({
                "202": {"description": "A rollout started", "content": {"application/json": {"schema": outcome}}},
                "200": {"description": "Nothing changed", "content": {"application/json": {"schema": outcome}}}}), errors)}}),
    );
    paths.insert(
        "/api/applications/{id}/rollout".into(),
        json!({"get": {"tags": ["applications"], "operationId": "rolloutStatus",
            "summary": "The application's latest rollout: its status, reason, and members old and new per cluster",
            "parameters": [id()],
            "responses": merge(json!({"200": {"description": "The latest rollout (null: a deployed application with none yet)", "content": {"application/json": {"schema": view}}}}), errors)}}),
    );
    paths.insert(
        "/api/applications/{id}/rollout/history".into(),
        json!({"get": {"tags": ["applications"], "operationId": "rolloutHistory",
            "summary": "The application's rollouts, newest first",
            "parameters": [id()],
            "responses": merge(json!({"200": {"description": "Newest first", "content": {"application/json": {"schema": {"type": "array", "items": view}}}}}), errors)}}),
    );
    paths.insert(
        "/api/applications/{id}/rollout/undo".into(),
        json!({"post": {"tags": ["applications"], "operationId": "undoRollout",
            "summary": "Roll the latest rollout back: its clusters return to the revisions it came from, rolling",
            "description": "409 when the application has no rollout since it was deployed, or the latest failed (it went back already).",
            "parameters": [id()],
            "responses": merge(json!({"202": {"description": "A rollout back started", "content": {"application/json": {"schema": outcome}}}}), errors)}}),
    );
}

fn add_identity(generator: &mut schemars::SchemaGenerator, paths: &mut Map<String, Value>, errors: &Value) {
    let login = generator.subschema_for::<LoginRequest>();
    let answer = generator.subschema_for::<LoginAnswer>();
    let token = generator.subschema_for::<TokenView>();
    let whoami = generator.subschema_for::<Whoami>();
    let new_user = generator.subschema_for::<NewUser>();
    let user = generator.subschema_for::<UserView>();
    let new_password = generator.subschema_for::<NewPassword>();
    let json_of = |schema: &schemars::Schema| json!({"application/json": {"schema": schema}});
    let list_of =
        |schema: &schemars::Schema| json!({"application/json": {"schema": {"type": "array", "items": schema}}});
    let param = |name: &str, what: &str| json!([{"name": name, "in": "path", "required": true, "description": what, "schema": {"type": "string"}}]);
    paths.insert(
        "/api/tokens".into(),
        json!({
            "post": {"tags": ["identity"], "operationId": "login", "summary": "Log in: a user name and password for a bearer token",
                     "description": "The token is shown this once; only its SHA-256 is stored. Failed logins are limited per user name and per address (429 with Retry-After).",
                     "requestBody": {"required": true, "content": json_of(&login)},
                     "responses": merge(json!({"201": {"description": "A new token", "content": json_of(&answer)},
                                               "429": {"description": "Too many failed logins", "content": errors["400"]["content"]}}), errors)},
            "get": {"tags": ["identity"], "operationId": "listTokens", "summary": "Live tokens the caller may revoke (its own; its tenant's for a tenant admin; all for a platform admin), without secrets",
                    "responses": merge(json!({"200": {"description": "Tokens", "content": list_of(&token)}}), errors)}
        }),
    );
    paths.insert(
        "/api/tokens/current".into(),
        json!({
            "get": {"tags": ["identity"], "operationId": "whoami", "summary": "The caller: user, tenant and role",
                    "responses": merge(json!({"200": {"description": "The caller", "content": json_of(&whoami)}}), errors)},
            "delete": {"tags": ["identity"], "operationId": "logout", "summary": "Log out: revoke the token of this request",
                       "responses": merge(json!({"204": {"description": "Revoked"}}), errors)}
        }),
    );
    paths.insert(
        "/api/tokens/{id}".into(),
        json!({"delete": {"tags": ["identity"], "operationId": "revokeToken", "summary": "Revoke a token by its id", "parameters": param("id", "The token's id"),
                          "responses": merge(json!({"204": {"description": "Revoked"}}), errors)}}),
    );
    paths.insert(
        "/api/users".into(),
        json!({
            "get": {"tags": ["identity"], "operationId": "listUsers", "summary": "Users (tenant admins: their tenant's; platform admins: all), without passwords",
                    "responses": merge(json!({"200": {"description": "Users", "content": list_of(&user)}}), errors)},
            "post": {"tags": ["identity"], "operationId": "createUser", "summary": "Create a user with a role in a tenant (tenant admins: their own tenant)",
                     "requestBody": {"required": true, "content": json_of(&new_user)},
                     "responses": merge(json!({"201": {"description": "Created", "content": json_of(&user)}}), errors)}
        }),
    );
    paths.insert(
        "/api/users/{name}".into(),
        json!({
            "get": {"tags": ["identity"], "operationId": "getUser", "summary": "Show a user", "parameters": param("name", "User name"),
                    "responses": merge(json!({"200": {"description": "The user", "content": json_of(&user)}}), errors)},
            "delete": {"tags": ["identity"], "operationId": "removeUser", "summary": "Remove a user and revoke its tokens", "parameters": param("name", "User name"),
                       "responses": merge(json!({"204": {"description": "Removed"}}), errors)}
        }),
    );
    paths.insert(
        "/api/users/{name}/password".into(),
        json!({"put": {"tags": ["identity"], "operationId": "changePassword",
                       "summary": "Change a password (one's own with the current one; an admin's users' without); the user's other tokens are revoked",
                       "parameters": param("name", "User name"),
                       "requestBody": {"required": true, "content": json_of(&new_password)},
                       "responses": merge(json!({"204": {"description": "Changed"}}), errors)}}),
    );
}

/// Marks every operation but the public ones as needing a bearer token, with its 401 and 403.
fn secure(paths: &mut Map<String, Value>, error: &schemars::Schema) {
    let content = json!({"application/json": {"schema": error}});
    for (path, item) in paths.iter_mut() {
        for (method, operation) in item.as_object_mut().into_iter().flatten() {
            let public = PUBLIC_ROUTES.iter().any(|(m, p)| m.eq_ignore_ascii_case(method) && p == path);
            if public {
                operation["security"] = json!([]);
                continue;
            }
            operation["security"] = json!([{"bearer": []}]);
            let responses = operation["responses"].as_object_mut().expect("every operation has responses");
            responses.entry("401").or_insert_with(
                || json!({"description": "No token, or one expired, revoked or unknown", "content": content}),
            );
            responses.entry("403").or_insert_with(|| json!({"description": "The caller's role may not do this (a viewer's write, a tenant's change to a platform definition, a `local` cartridge by anyone but a platform admin, a quota exceeded, a deactivated tenant's user)", "content": content}));
        }
    }
}

fn error_responses(error: &schemars::Schema) -> Value {
    let content = json!({"application/json": {"schema": error}});
    json!({
        "400": {"description": "Malformed or invalid; `problems` names each field at fault", "content": content},
        "404": {"description": "No such definition (or one of another tenant), or no such route", "content": content},
        "405": {"description": "The route does not take this method", "content": content},
        "409": {"description": "Already exists, in use by another definition, or a host name, cluster id or proxy port that another deployed application holds", "content": content},
        "413": {"description": "Body larger than the limit", "content": content},
        "415": {"description": "Neither JSON nor YAML", "content": content}
    })
}

/// An id in a path: what the model accepts (`.`, `..`, `/`, whitespace and MQTT wildcards are not).
fn id_schema() -> Value {
    json!({"type": "string", "pattern": stratos_model::ID_PATTERN, "minLength": 1, "maxLength": 128})
}

fn merge(mut a: Value, b: &Value) -> Value {
    if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in b {
            a.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    a
}

fn pascal(name: &str) -> String {
    name.split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}
