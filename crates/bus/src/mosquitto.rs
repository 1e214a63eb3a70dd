//! The same trust boundary on an external Mosquitto 2: its dynamic-security plugin
//! holds a client and a role per member, which this provisioner creates when the
//! controller announces the member (`MemberCreatedEvent`, published before the
//! driver starts it) and deletes when it is terminated (Mosquitto then disconnects
//! it). The role's ACLs are [`member_acls`], the rules of `acl.rs`; the member's
//! credentials are the ones the controller issued ([`PlatformSecret::member_credentials`]),
//! so the two agree without talking.
//!
//! The platform's user is the dynamic-security admin (`mosquitto_ctrl dynsec init
//! <file> stratos <platform password>`); the provisioner gives it a role that may
//! publish and subscribe everywhere, once, at start.

use std::time::Duration;

use rumqttc::{AsyncClient, Event as MqttEvent, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use crate::acl::{valid_id, CLUSTER_RECEIVES, MEMBER_PUBLISHES, MEMBER_RECEIVES};
use crate::client::{parse_broker_url, split_credentials, BusError, MAX_PACKET_SIZE};
use crate::credentials::{Credentials, PlatformSecret};
use crate::events::{AnyEvent, CompleteTopologyEvent, Event, MemberCreatedEvent, MemberTerminatedEvent};

const CONTROL: &str = "$CONTROL/dynamic-security/v1";
const RESPONSES: &str = "$CONTROL/dynamic-security/v1/response";
/// The role of the platform's own user: every topic.
pub const PLATFORM_ROLE: &str = "stratos-platform";

/// Where Debian's and Ubuntu's `mosquitto` package installs the plugin.
pub const DYNSEC_PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

/// A `mosquitto.conf` for the platform: one listener, no anonymous clients, the
/// dynamic-security plugin keeping its clients and roles in `dynsec_file` (created
/// with `mosquitto_ctrl dynsec init <file> stratos`, the platform password).
pub fn mosquitto_conf(listener: &str, dynsec_file: &std::path::Path, plugin: &str) -> String {
    let (host, port) = listener.rsplit_once(':').unwrap_or(("", listener));
    format!(
        "# Generated for Stratos: members are confined by their dynamic-security roles.\n\
         listener {port} {host}\n\
         allow_anonymous false\n\
         per_listener_settings false\n\
         plugin {plugin}\n\
         plugin_opt_config_file {}\n\
         # Complete topologies of large platforms are tens of MB.\n\
         max_packet_size {MAX_PACKET_SIZE}\n",
        dynsec_file.display()
    )
}

/// The dynamic-security role name of a member.
pub fn member_role(member_id: &str) -> String {
    format!("stratos-member-{member_id}")
}

/// The ACLs of a member's role, in dynamic-security's terms: publish only on its own
/// status, health and log topics; subscribe only to what is addressed to it. (Mosquitto
/// cannot refuse a retained flag by ACL; consumers never trust members' topics for
/// state a retained message could replay.)
pub fn member_acls(cluster_id: &str, member_id: &str) -> Vec<Value> {
    let mut acls = Vec::new();
    for prefix in MEMBER_PUBLISHES {
        acls.push(json!({"acltype": "publishClientSend", "topic": format!("{prefix}/{member_id}/+"), "allow": true}));
    }
    let readable = MEMBER_PUBLISHES
        .iter()
        .chain(MEMBER_RECEIVES)
        .map(|prefix| format!("{prefix}/{member_id}/#"))
        .chain(CLUSTER_RECEIVES.iter().map(|prefix| format!("{prefix}/{cluster_id}/#")));
    for topic in readable {
        acls.push(json!({"acltype": "subscribePattern", "topic": topic, "allow": true}));
    }
    acls
}

/// The commands that give a member its client and role.
pub fn create_member_commands(credentials: &Credentials, cluster_id: &str, member_id: &str) -> Vec<Value> {
    let role = member_role(member_id);
    vec![
        json!({"command": "createRole", "rolename": role, "acls": member_acls(cluster_id, member_id)}),
        json!({
            "command": "createClient",
            "username": credentials.username,
            "password": credentials.password,
            "roles": [{"rolename": role}],
        }),
    ]
}

/// Creates and deletes members' clients on an external Mosquitto as the controller
/// starts and terminates them.
pub struct MosquittoProvisioner {
    client: AsyncClient,
    eventloop: EventLoop,
    secret: PlatformSecret,
    /// Events that arrived while [`MosquittoProvisioner::reconcile`] waited for its
    /// answers: `run` handles them first.
    pending: Vec<rumqttc::Publish>,
}

impl MosquittoProvisioner {
    /// Connects to the broker at `url` as the platform (the dynamic-security admin),
    /// gives the platform's user its role, and subscribes to member lifecycle events.
    /// Returns once the broker confirmed all of it.
    pub async fn connect(url: &str, platform: &Credentials, secret: PlatformSecret) -> Result<Self, BusError> {
        let (_, plain) = split_credentials(url);
        let (host, port) = parse_broker_url(&plain)?;
        let addr = format!("{host}:{port}");
        let mut options = MqttOptions::new(format!("stratos-dynsec-{}", std::process::id()), host, port);
        options.set_credentials(platform.username.clone(), platform.password.clone());
        options.set_max_packet_size(MAX_PACKET_SIZE, MAX_PACKET_SIZE);
        options.set_keep_alive(Duration::from_secs(15));
        let (ca_cert, name) = (crate::tls::ca_cert_from_env(), crate::tls::tls_name_from_env());
        crate::client::use_tls_if_asked(&mut options, &plain, ca_cert.as_deref(), name.as_deref())?;
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let setup = async {
            wait_for(&mut eventloop, |p| matches!(p, Packet::ConnAck(_))).await?;
            client.subscribe(RESPONSES, QoS::AtLeastOnce).await.map_err(|e| e.to_string())?;
            wait_for(&mut eventloop, |p| matches!(p, Packet::SubAck(_))).await?;
            let create_role = json!({"command": "createRole", "rolename": PLATFORM_ROLE, "acls": [
                {"acltype": "publishClientSend", "topic": "#", "allow": true},
                {"acltype": "publishClientReceive", "topic": "#", "allow": true},
                {"acltype": "subscribePattern", "topic": "#", "allow": true},
                {"acltype": "unsubscribePattern", "topic": "#", "allow": true},
            ]});
            let get_client = json!({"command": "getClient", "username": platform.username});
            send(&client, vec![create_role, get_client]).await.map_err(|e| e.to_string())?;
            let Packet::Publish(answer) =
                wait_for(&mut eventloop, |p| matches!(p, Packet::Publish(p) if p.topic == RESPONSES)).await?
            else {
                unreachable!("wait_for returns what it waits for")
            };
            let answer = answer.payload;
            // A restart finds the role already there.
            if let Some(error) = errors(&answer).into_iter().find(|e| !e.contains("already")) {
                return Err(format!("the platform user's role: {error}"));
            }
            // Mosquitto 2.0 answers "Internal error" to adding a role a client already
            // has: add it only when missing (the first start).
            if !client_roles(&answer).iter().any(|r| r == PLATFORM_ROLE) {
                let add = json!({"command": "addClientRole", "username": platform.username, "rolename": PLATFORM_ROLE});
                send(&client, vec![add]).await.map_err(|e| e.to_string())?;
                // Mosquitto disconnects a client whose roles change (to apply them): the
                // answer may be that, rather than the response.
                let kicked = loop {
                    match eventloop.poll().await {
                        Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == RESPONSES => {
                            if let Some(error) = errors(&p.payload).into_iter().next() {
                                return Err(format!("the platform user's role: {error}"));
                            }
                            break false;
                        }
                        Ok(_) => {}
                        Err(_) => break true,
                    }
                };
                if kicked {
                    wait_for(&mut eventloop, |p| matches!(p, Packet::ConnAck(_))).await?;
                    client.subscribe(RESPONSES, QoS::AtLeastOnce).await.map_err(|e| e.to_string())?;
                    wait_for(&mut eventloop, |p| matches!(p, Packet::SubAck(_))).await?;
                }
            }
            for filter in [MemberCreatedEvent::FILTER, MemberTerminatedEvent::FILTER, CompleteTopologyEvent::FILTER] {
                client.subscribe(filter, QoS::AtLeastOnce).await.map_err(|e| e.to_string())?;
                wait_for(&mut eventloop, |p| matches!(p, Packet::SubAck(s) if s.return_codes.iter().all(|c| !matches!(c, rumqttc::SubscribeReasonCode::Failure)))).await?;
            }
            Ok::<(), String>(())
        };
        tokio::time::timeout(Duration::from_secs(15), setup)
            .await
            .map_err(|_| BusError::Connect { addr: addr.clone(), reason: "no answer within 15 s".into() })?
            .map_err(|reason| BusError::Connect {
                addr: addr.clone(),
                reason: format!("setting up Mosquitto's dynamic security: {reason}"),
            })?;
        info!(broker = %plain, "provisioning members' credentials in Mosquitto's dynamic security");
        Ok(MosquittoProvisioner { client, eventloop, secret, pending: Vec::new() })
    }

    /// Deletes the dynamic-security clients and roles of members that are not in `live`
    /// (the stored topology at start): members that ended while the platform was down,
    /// or whose termination the provisioner missed, must not keep a way onto the bus.
    /// Returns how many it deleted, once Mosquitto confirmed it.
    pub async fn reconcile<'a>(
        &mut self,
        live: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<usize, BusError> {
        let live: std::collections::HashSet<(&str, &str)> = live.into_iter().collect();
        let fail = |reason: String| BusError::Connect { addr: "mosquitto".into(), reason };
        let listed =
            self.ask(vec![json!({"command": "listClients", "verbose": false, "count": -1})]).await.map_err(fail)?;
        // A snapshot retained from before the platform stopped names members that may have
        // ended since (Mosquitto sent it right after the SUBACK, so before this answer):
        // the stored topology is the truth now, and `stratos up` publishes it afresh.
        self.pending.retain(|p| {
            !matches!(AnyEvent::decode(&p.topic, &p.payload), Some(Ok(AnyEvent::CompleteTopologyEvent(_))))
        });
        let stale: Vec<(String, String)> = usernames(&listed)
            .iter()
            .filter_map(|u| member_of(u))
            .filter(|(c, m)| !live.contains(&(c.as_str(), m.as_str())))
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let mut commands = Vec::new();
        for (cluster_id, member_id) in &stale {
            let username = self.secret.member_credentials(cluster_id, member_id).username;
            commands.push(json!({"command": "deleteClient", "username": username}));
            commands.push(json!({"command": "deleteRole", "rolename": member_role(member_id)}));
        }
        let answer = self.ask(commands).await.map_err(fail)?;
        // A role already gone is no error here: the client was what let it in.
        for error in errors(&answer).into_iter().filter(|e| !e.contains("not found")) {
            warn!(%error, "Mosquitto's dynamic security refused to delete an ended member's client");
        }
        info!(deleted = stale.len(), "deleted the Mosquitto clients of members that are no longer live");
        Ok(stale.len())
    }

    /// Sends `commands` and waits (up to 15 s) for their response, keeping the events
    /// that arrive meanwhile for `run`.
    async fn ask(&mut self, commands: Vec<Value>) -> Result<Vec<u8>, String> {
        send(&self.client, commands).await.map_err(|e| e.to_string())?;
        let answer = async {
            loop {
                match self.eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == RESPONSES => {
                        return Ok(p.payload.to_vec())
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) => self.pending.push(p),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(15), answer)
            .await
            .map_err(|_| "Mosquitto's dynamic security did not answer within 15 s".to_string())?
    }

    /// Follows the topology for as long as the process lives: a client and role per
    /// member, created when it is, deleted when it is terminated.
    pub async fn run(self) {
        let MosquittoProvisioner { client, mut eventloop, secret, pending } = self;
        let members = Members { client, secret };
        for p in pending {
            members.handle(&p.topic, &p.payload).await;
        }
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == RESPONSES => {
                    for error in errors(&p.payload) {
                        // Creating what exists (a restart re-reads the topology) is fine.
                        if error.contains("already exists") {
                            debug!(%error, "dynamic security");
                        } else {
                            warn!(%error, "Mosquitto's dynamic security refused a command");
                        }
                    }
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => members.handle(&p.topic, &p.payload).await,
                Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) if !ack.session_present => {
                    warn!("reconnected to Mosquitto; subscribing again");
                    for filter in [
                        RESPONSES,
                        MemberCreatedEvent::FILTER,
                        MemberTerminatedEvent::FILTER,
                        CompleteTopologyEvent::FILTER,
                    ] {
                        let _ = members.client.try_subscribe(filter, QoS::AtLeastOnce);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "lost the connection to Mosquitto; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Members' clients and roles, asked of the dynamic-security plugin.
struct Members {
    client: AsyncClient,
    secret: PlatformSecret,
}

impl Members {
    /// A member lifecycle event: its client created or deleted.
    async fn handle(&self, topic: &str, payload: &[u8]) {
        match AnyEvent::decode(topic, payload) {
            Some(Ok(AnyEvent::MemberCreatedEvent(e))) => self.create(&e.member.cluster_id, &e.member.member_id).await,
            Some(Ok(AnyEvent::MemberTerminatedEvent(e))) => {
                self.delete(&e.member.member_id, &e.member.cluster_id).await
            }
            Some(Ok(AnyEvent::CompleteTopologyEvent(e))) => {
                for m in e.topology.members() {
                    self.create(&m.cluster_id, &m.member_id).await;
                }
            }
            _ => {}
        }
    }

    async fn create(&self, cluster_id: &str, member_id: &str) {
        if !valid_id(cluster_id) || !valid_id(member_id) {
            return warn!(
                cluster_id,
                member_id, "not giving bus credentials to a member whose ids are not topic levels"
            );
        }
        let credentials = self.secret.member_credentials(cluster_id, member_id);
        debug!(member_id, "creating the member's Mosquitto client");
        if let Err(e) = send(&self.client, create_member_commands(&credentials, cluster_id, member_id)).await {
            warn!(member_id, error = %e, "cannot ask Mosquitto for the member's client");
        }
    }

    async fn delete(&self, member_id: &str, cluster_id: &str) {
        let username = self.secret.member_credentials(cluster_id, member_id).username;
        let commands = vec![
            json!({"command": "deleteClient", "username": username}),
            json!({"command": "deleteRole", "rolename": member_role(member_id)}),
        ];
        debug!(member_id, "deleting the member's Mosquitto client");
        if let Err(e) = send(&self.client, commands).await {
            warn!(member_id, error = %e, "cannot ask Mosquitto to delete the member's client");
        }
    }
}

async fn send(client: &AsyncClient, commands: Vec<Value>) -> Result<(), rumqttc::ClientError> {
    let body = serde_json::to_vec(&json!({"commands": commands})).expect("JSON serialises");
    client.publish(CONTROL, QoS::AtLeastOnce, false, body).await
}

/// Polls until a packet `want` accepts arrives.
async fn wait_for(eventloop: &mut EventLoop, want: impl Fn(&Packet) -> bool) -> Result<Packet, String> {
    loop {
        match eventloop.poll().await {
            Ok(MqttEvent::Incoming(p)) if want(&p) => return Ok(p),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The usernames a `listClients` response names (plain names, or objects with a
/// `username` when verbose).
fn usernames(payload: &[u8]) -> Vec<String> {
    let Ok(body) = serde_json::from_slice::<Value>(payload) else { return Vec::new() };
    body["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["command"] == "listClients")
        .flat_map(|r| r["data"]["clients"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_str().or_else(|| c["username"].as_str()).map(str::to_string))
        .collect()
}

/// The roles a `getClient` response gives the client.
fn client_roles(payload: &[u8]) -> Vec<String> {
    let Ok(body) = serde_json::from_slice::<Value>(payload) else { return Vec::new() };
    body["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["command"] == "getClient")
        .flat_map(|r| r["data"]["client"]["roles"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["rolename"].as_str().map(str::to_string))
        .collect()
}

/// The (cluster id, member id) of a member's username, `member/<clusterId>/<memberId>`.
fn member_of(username: &str) -> Option<(String, String)> {
    let (cluster_id, member_id) = username.strip_prefix("member/")?.split_once('/')?;
    Some((cluster_id.to_string(), member_id.to_string()))
}

/// The errors in a dynamic-security response, as "command: error".
fn errors(payload: &[u8]) -> Vec<String> {
    let Ok(body) = serde_json::from_slice::<Value>(payload) else { return vec!["an unreadable response".into()] };
    body["responses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["error"].as_str().map(|e| format!("{}: {e}", r["command"].as_str().unwrap_or("?"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_members_role_is_the_gates_rules() {
        let acls = member_acls("app.php", "m1");
        let topics = |kind: &str| -> Vec<String> {
            acls.iter().filter(|a| a["acltype"] == kind).map(|a| a["topic"].as_str().unwrap().to_string()).collect()
        };
        assert_eq!(topics("publishClientSend"), ["instance/status/m1/+", "health/member/m1/+", "log/m1/+"]);
        assert_eq!(
            topics("subscribePattern"),
            [
                "instance/status/m1/#",
                "health/member/m1/#",
                "log/m1/#",
                "instance/notifier/member/m1/#",
                "topology/member/m1/#",
                "instance/notifier/cluster/app.php/#"
            ]
        );
        assert!(acls.iter().all(|a| a["allow"] == true));
    }

    #[test]
    fn members_are_read_from_a_client_list() {
        let body = br#"{"responses":[{"command":"listClients","data":{"totalCount":3,"clients":["stratos","member/app.php/m1",{"username":"member/app.php/m2"}]}}]}"#;
        let names = usernames(body);
        assert_eq!(names, ["stratos", "member/app.php/m1", "member/app.php/m2"]);
        let members: Vec<_> = names.iter().filter_map(|u| member_of(u)).collect();
        assert_eq!(members, [("app.php".to_string(), "m1".to_string()), ("app.php".to_string(), "m2".to_string())]);
        assert_eq!(member_of("stratos"), None);
        assert_eq!(member_of("member/nocluster"), None);
    }

    #[test]
    fn roles_are_read_from_a_client() {
        let body = br#"{"responses":[{"command":"createRole","error":"Role already exists"},{"command":"getClient","data":{"client":{"username":"stratos","roles":[{"rolename":"stratos-platform"}]}}}]}"#;
        assert_eq!(client_roles(body), ["stratos-platform"]);
        assert!(client_roles(br#"{"responses":[{"command":"getClient","data":{"client":{"username":"stratos"}}}]}"#)
            .is_empty());
    }

    #[test]
    fn errors_are_read_from_responses() {
        let body =
            br#"{"responses":[{"command":"createRole"},{"command":"createClient","error":"Client already exists"}]}"#;
        assert_eq!(errors(body), ["createClient: Client already exists"]);
        assert!(errors(br#"{"responses":[{"command":"deleteClient"}]}"#).is_empty());
    }
}
