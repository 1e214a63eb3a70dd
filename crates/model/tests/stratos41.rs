//! Definitions written for Apache Stratos 4.1, in its exact JSON shape (taken
//! from 4.1's samples and REST beans), load unchanged: fields Stratos does not
//! use are ignored, quoted numbers and booleans (`"port": "80"`,
//! `"multiTenant": "false"`, as 4.1's own sample cartridges write them) are read.

mod common;

use common::dedent;
use serde::de::DeserializeOwned;
use serde_json::Value;
use stratos_model::*;

const AUTOSCALING_POLICY: &str = r#"{
    "id": "autoscaling-policy-1",
    "loadThresholds": {
        "requestsInFlight": { "threshold": 80 },
        "memoryConsumption": { "threshold": 90 },
        "loadAverage": { "threshold": 50 }
    }
}"#;

const NETWORK_PARTITION: &str = r#"{
    "id": "network-partition-1",
    "provider": "mock",
    "partitions": [
        {
            "id": "partition-1",
            "property": [
                { "name": "region", "value": "default" }
            ]
        },
        {
            "id": "partition-2",
            "description": "second zone",
            "property": [
                { "name": "region", "value": "default" },
                { "name": "zone", "value": "RegionTwo" }
            ]
        }
    ],
    "properties": [
        { "name": "network", "value": "private" }
    ]
}"#;

const DEPLOYMENT_POLICY: &str = r#"{
    "id": "deployment-policy-1",
    "networkPartitions": [
        {
            "id": "network-partition-1",
            "partitionAlgo": "one-after-another",
            "partitions": [
                { "id": "partition-1", "partitionMax": 20 },
                { "id": "partition-2", "partitionMax": 10 }
            ]
        }
    ]
}"#;

const APPLICATION_POLICY: &str = r#"{
    "id": "application-policy-1",
    "algorithm": "one-after-another",
    "networkPartitions": [
        "network-partition-1"
    ],
    "properties": [
        { "name": "key-1", "value": "value-1" },
        { "name": "key-2", "value": "value-2" }
    ]
}"#;

/// samples/cartridges/mock/php.json of Stratos 4.1, plus loadBalancingIPType.
const CARTRIDGE_PHP: &str = r#"{
    "type": "php",
    "provider": "apache",
    "category": "framework",
    "host": "php.stratos.org",
    "displayName": "php",
    "description": "php Cartridge",
    "version": "7",
    "multiTenant": "false",
    "loadBalancingIPType": "private",
    "portMapping": [
        {
            "protocol": "http",
            "port": "80",
            "proxyPort": "8280"
        },
        {
            "protocol": "tcp",
            "port": "22",
            "proxyPort": "8222"
        }
    ],
    "deployment": {
    },
    "iaasProvider": [
        {
            "type": "mock",
            "imageId": "RegionOne/b4ca55e3-58ab-4937-82ce-817ebd10240e",
            "networkInterfaces": [
                {
                    "networkUuid": "b55f009a-1cc6-4b17-924f-4ae0ee18db5e"
                }
            ],
            "property": [
                { "name": "instanceType", "value": "RegionOne/aa5f45a2-c6d6-419d-917a-9dd2e3888594" },
                { "name": "keyPair", "value": "reka" },
                { "name": "securityGroups", "value": "default" }
            ]
        }
    ],
    "metadataKeys": ["url"]
}"#;

/// A 4.1 Kubernetes cartridge: bare numbers and booleans, Kubernetes-only fields.
const CARTRIDGE_TOMCAT: &str = r#"{
    "type": "tomcat",
    "category": "framework",
    "provider": "apache",
    "host": "stratos.org",
    "displayName": "Tomcat",
    "description": "Tomcat Cartridge",
    "version": "7",
    "multiTenant": false,
    "portMapping": [
        {
            "name": "http-8080",
            "protocol": "http",
            "port": 8080,
            "proxyPort": 0,
            "kubernetesPortType": "NodePort"
        }
    ],
    "iaasProvider": [
        {
            "type": "kubernetes",
            "imageId": "stratos/tomcat:4.1.0",
            "networkInterfaces": [],
            "property": []
        }
    ],
    "property": [
        { "name": "payload_parameter.LOG_LEVEL", "value": "DEBUG" }
    ],
    "persistence": { "isRequired": false, "volume": [] }
}"#;

const APPLICATION_SINGLE: &str = r#"{
    "applicationId": "single-cartridge-app",
    "alias": "single-cartridge-app",
    "components": {
        "cartridges": [
            {
                "type": "php",
                "cartridgeMin": 1,
                "cartridgeMax": 5,
                "subscribableInfo": {
                    "alias": "my-php",
                    "autoscalingPolicy": "autoscaling-policy-1",
                    "deploymentPolicy": "deployment-policy-1",
                    "artifactRepository": {
                        "privateRepo": false,
                        "repoUrl": "https://github.com/imesh/stratos-php-applications.git",
                        "repoUsername": "",
                        "repoPassword": ""
                    }
                }
            }
        ]
    }
}"#;

/// Groups, startup orders, scaling dependents and termination behaviour, in
/// 4.1's shape (after samples/applications/complex of Stratos 4.1).
const APPLICATION_COMPOSITE: &str = r#"{
    "alias": "mycompositeapp",
    "applicationId": "my-compositeapp",
    "components": {
        "groups": [
            {
                "name": "app-group",
                "alias": "my-appgroup",
                "cartridges": [
                    {
                        "type": "tomcat",
                        "cartridgeMax": 2,
                        "cartridgeMin": 1,
                        "subscribableInfo": {
                            "alias": "my-tomcat",
                            "artifactRepository": {
                                "alias": "my-tomcat",
                                "privateRepo": true,
                                "repoPassword": "password",
                                "repoUrl": "http://xxx:10080/git/default.git",
                                "repoUsername": "user"
                            },
                            "autoscalingPolicy": "autoscaling-policy-1",
                            "deploymentPolicy": "deployment-policy-1"
                        }
                    },
                    {
                        "type": "php",
                        "cartridgeMax": 2,
                        "cartridgeMin": 1,
                        "subscribableInfo": {
                            "alias": "my-php",
                            "autoscalingPolicy": "autoscaling-policy-1",
                            "deploymentPolicy": "deployment-policy-1"
                        }
                    }
                ],
                "groupMaxInstances": 2,
                "groupMinInstances": 1,
                "groupScalingEnabled": true
            }
        ],
        "cartridges": [
            {
                "type": "php",
                "cartridgeMax": 2,
                "cartridgeMin": 1,
                "subscribableInfo": {
                    "alias": "my-front",
                    "autoscalingPolicy": "autoscaling-policy-1",
                    "deploymentPolicy": "deployment-policy-1",
                    "minMembers": 1,
                    "maxMembers": 2
                }
            }
        ],
        "dependencies": {
            "scalingDependents": [
                { "aliases": ["group.my-appgroup", "cartridge.my-front"] }
            ],
            "startupOrders": [
                { "aliases": ["group.my-appgroup", "cartridge.my-front"] }
            ],
            "terminationBehaviour": "terminate-none"
        }
    },
    "status": "Created",
    "signUpsExist": false
}"#;

/// samples/cartridge-groups/app-group.json of Stratos 4.1: a group's dependencies name
/// the aliases applications give its cartridges.
const CARTRIDGE_GROUP_APP: &str = r#"{
    "name": "app-group",
    "cartridges": [
        "tomcat",
        "php"
    ],
    "dependencies": {
        "terminationBehaviour": "terminate-all",
        "startupOrders": [
            {
                "aliases": [
                    "cartridge.my-php",
                    "cartridge.my-tomcat"
                ]
            }
        ]
    },
    "groupScalingEnabled": true
}"#;

/// After samples/cartridge-groups/n-level-nesting.json: groups nested three deep, with
/// 4.1's comma-joined aliases inside.
const CARTRIDGE_GROUP_NESTED: &str = r#"{
    "name": "level-one-group",
    "cartridges": ["php"],
    "groups": [
        {
            "name": "level-two-group",
            "cartridges": ["tomcat"],
            "groups": [
                {
                    "name": "level-three-group",
                    "cartridges": ["php", "tomcat"],
                    "dependencies": {
                        "startupOrders": [ { "aliases": ["cartridge.deep-php, cartridge.deep-tomcat"] } ],
                        "terminationBehaviour": "terminate-dependents"
                    }
                }
            ]
        }
    ],
    "dependencies": {
        "scalingDependents": [ { "aliases": ["group.two, cartridge.one-php"] } ]
    },
    "groupScalingEnabled": "false",
    "groupInstanceMonitoringEnabled": "true"
}"#;

/// An application on the nested group: the top group gives the deployment policy of every
/// cartridge under it, three levels down; the dependencies are 4.1's comma-joined strings.
const APPLICATION_NESTED: &str = r#"{
    "applicationId": "nested-app",
    "components": {
        "groups": [
            {
                "name": "level-one-group",
                "alias": "one",
                "deploymentPolicy": "deployment-policy-1",
                "groupMinInstances": 1,
                "groupMaxInstances": 1,
                "cartridges": [
                    { "type": "php", "cartridgeMin": 1, "cartridgeMax": 2,
                      "subscribableInfo": { "alias": "one-php", "autoscalingPolicy": "autoscaling-policy-1" } }
                ],
                "groups": [
                    {
                        "name": "level-two-group",
                        "alias": "two",
                        "cartridges": [
                            { "type": "tomcat", "cartridgeMin": 1, "cartridgeMax": 1,
                              "subscribableInfo": { "alias": "two-tomcat", "autoscalingPolicy": "autoscaling-policy-1" } }
                        ],
                        "groups": [
                            {
                                "name": "level-three-group",
                                "alias": "three",
                                "cartridges": [
                                    { "type": "php", "cartridgeMin": 1, "cartridgeMax": 1,
                                      "subscribableInfo": { "alias": "deep-php", "autoscalingPolicy": "autoscaling-policy-1" } },
                                    { "type": "tomcat", "cartridgeMin": 1, "cartridgeMax": 1,
                                      "subscribableInfo": { "alias": "deep-tomcat", "autoscalingPolicy": "autoscaling-policy-1" } }
                                ]
                            }
                        ]
                    }
                ]
            }
        ],
        "cartridges": [
            { "type": "php", "cartridgeMin": 1, "cartridgeMax": 1,
              "subscribableInfo": { "alias": "front", "autoscalingPolicy": "autoscaling-policy-1",
                                    "deploymentPolicy": "deployment-policy-1" } }
        ],
        "dependencies": {
            "startupOrders": [ { "aliases": ["group.one, cartridge.front"] } ],
            "scalingDependents": [ { "aliases": ["group.three,cartridge.front", " cartridge.one-php "] } ]
        }
    }
}"#;

/// Every field of 4.1's `CartridgeBean`, `IaasProviderBean`, `NetworkInterfaceBean`,
/// `PersistenceBean` and `VolumeBean` (quoted scalars as Jackson took them).
const CARTRIDGE_EVERY_FIELD: &str = r#"{
    "type": "mysql",
    "provider": "data",
    "category": "data",
    "host": "mysql.stratos.org",
    "displayName": "MySQL",
    "description": "MySQL Cartridge",
    "version": "5.7",
    "multiTenant": "false",
    "loadBalancingIPType": "private",
    "deployment": { "baseDir": "/var/lib/mysql", "dir": ["data", "logs"] },
    "portMapping": [ { "name": "mysql", "protocol": "tcp", "port": "3306", "proxyPort": "13306" } ],
    "metadataKeys": ["url", "password-hash"],
    "iaasProvider": [
        {
            "type": "openstack",
            "imageId": "RegionOne/mysql",
            "networkInterfaces": [
                {
                    "networkUuid": "b55f009a-1cc6-4b17-924f-4ae0ee18db5e",
                    "fixedIp": "10.0.0.5",
                    "portUuid": "port-1",
                    "floatingNetworks": [ { "name": "public", "networkUuid": "ext-net", "floatingIP": "203.0.113.7" } ]
                }
            ],
            "property": [ { "name": "instanceType", "value": "m1.small" } ]
        }
    ],
    "persistence": {
        "isRequired": "true",
        "volume": [
            { "id": "data", "size": "10", "mappingPath": "/var/lib/mysql", "device": "/dev/sdc", "removeOnTermination": "false" },
            { "id": "restored", "snapshotId": "snap-1", "mappingPath": "/restore", "removeOnTermination": true },
            { "id": "existing", "volumeId": "vol-9", "mappingPath": "/existing" }
        ]
    },
    "property": [ { "name": "payload_parameter.MYSQL_ROOT", "value": "x" } ]
}"#;

#[test]
fn cartridge_groups_load_nested_with_their_dependencies() {
    let g: CartridgeGroup = load(CARTRIDGE_GROUP_APP);
    assert_eq!(
        (g.name.as_str(), g.cartridges.as_slice(), g.group_scaling_enabled),
        ("app-group", &["tomcat".to_string(), "php".to_string()][..], true)
    );
    let deps = g.dependencies.as_ref().unwrap();
    assert_eq!(deps.startup_orders[0].aliases, ["cartridge.my-php", "cartridge.my-tomcat"]);
    assert_eq!(deps.termination_behaviour, TerminationBehaviour::TerminateAll);

    let g: CartridgeGroup = load(CARTRIDGE_GROUP_NESTED);
    assert!(!g.group_scaling_enabled && g.group_instance_monitoring_enabled);
    let three = g.nested("level-three-group").expect("the third level");
    assert_eq!(
        three.dependencies.as_ref().unwrap().startup_orders[0].aliases,
        ["cartridge.deep-php", "cartridge.deep-tomcat"]
    );
    assert_eq!(g.dependencies.as_ref().unwrap().scaling_dependents[0].aliases, ["group.two", "cartridge.one-php"]);
    assert_eq!(g.all_cartridges(), ["php", "tomcat", "php", "tomcat"]);
    // Written back split, under 4.1's names.
    let json = serde_json::to_value(&g).unwrap();
    assert_eq!(
        json["groups"][0]["groups"][0]["dependencies"]["startupOrders"][0]["aliases"][1],
        "cartridge.deep-tomcat"
    );
    assert_eq!(json["groupInstanceMonitoringEnabled"], true);
    assert_eq!(serde_json::from_value::<CartridgeGroup>(json).unwrap(), g);
}

#[test]
fn a_groups_deployment_policy_reaches_every_cartridge_under_it() {
    let a: Application = load(APPLICATION_NESTED);
    let placed: Vec<(String, &str, &str)> = a
        .subscriptions_with_policy()
        .into_iter()
        .map(|(at, s, policy)| (at, s.subscribable_info.alias.as_str(), policy))
        .collect();
    assert_eq!(
        placed,
        [
            ("components.cartridges[0]".to_string(), "front", "deployment-policy-1"),
            ("components.groups[0].cartridges[0]".to_string(), "one-php", "deployment-policy-1"),
            ("components.groups[0].groups[0].cartridges[0]".to_string(), "two-tomcat", "deployment-policy-1"),
            ("components.groups[0].groups[0].groups[0].cartridges[0]".to_string(), "deep-php", "deployment-policy-1"),
            (
                "components.groups[0].groups[0].groups[0].cartridges[1]".to_string(),
                "deep-tomcat",
                "deployment-policy-1"
            ),
        ]
    );
    assert_eq!(
        a.deployment_policy_field("components.groups[0].groups[0].groups[0].cartridges[1]").as_deref(),
        Some("components.groups[0].deploymentPolicy")
    );
    assert_eq!(a.deployment_policy_field("components.cartridges[0]"), None);
    let deps = a.components.dependencies.as_ref().unwrap();
    assert_eq!(deps.startup_orders[0].aliases, ["group.one", "cartridge.front"]);
    assert_eq!(deps.scaling_dependents[0].aliases, ["group.three", "cartridge.front", "cartridge.one-php"]);
    // The group's policy and the group names are what the application uses.
    let refs = a.references();
    assert!(refs.contains(&(Kind::DeploymentPolicy, "deployment-policy-1".into())));
    for name in ["level-one-group", "level-two-group", "level-three-group"] {
        assert!(refs.contains(&(Kind::CartridgeGroup, name.into())), "{name}: {refs:?}");
    }
    // A GET gives back what was posted: the policy on the group, none on its cartridges.
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["components"]["groups"][0]["deploymentPolicy"], "deployment-policy-1");
    assert!(json["components"]["groups"][0]["cartridges"][0]["subscribableInfo"].get("deploymentPolicy").is_none());
    assert_eq!(serde_json::from_value::<Application>(json).unwrap(), a);

    // The nested groups must match their definitions: a cartridge the definition lacks is refused.
    let mut defs = catalog();
    let mut wrong = serde_json::to_value(&a).unwrap();
    wrong["components"]["groups"][0]["groups"][0]["cartridges"][0]["type"] = "mysql".into();
    let wrong: Application = serde_json::from_value(wrong).unwrap();
    let problems = wrong.check(&defs).unwrap_err();
    // ... and one it has that the group subscribes to nowhere (tomcat at levels two and three: still at three).
    assert!(problems.iter().all(|p| !p.message.contains("subscribes to nowhere")), "{problems}");
    assert!(
        problems.iter().any(|p| p.path == "components.groups[0].groups[0].cartridges[0].type"
            && p.message.contains(r#"cartridge "mysql" is not in cartridge group "level-two-group""#)),
        "{problems}"
    );
    defs.cartridge_groups.clear();
    let problems = a.check(&defs).unwrap_err();
    assert!(
        problems.iter().any(|p| p.path == "components.groups[0].name" && p.message.contains("is not defined")),
        "{problems}"
    );
}

#[test]
fn every_41_cartridge_field_is_kept() {
    let c: Cartridge = load(CARTRIDGE_EVERY_FIELD);
    let deployment = c.deployment.as_ref().unwrap();
    assert_eq!(
        (deployment.base_dir.as_deref(), deployment.dir.as_slice()),
        (Some("/var/lib/mysql"), &["data".to_string(), "logs".to_string()][..])
    );
    assert_eq!(c.metadata_keys, ["url", "password-hash"]);
    let p = c.persistence.as_ref().unwrap();
    assert!(p.is_required);
    assert_eq!(p.volume.len(), 3);
    let v = &p.volume[0];
    assert_eq!(
        (v.id.as_str(), v.size, v.mapping_path.as_deref(), v.device.as_deref(), v.remove_on_termination),
        ("data", Some(10), Some("/var/lib/mysql"), Some("/dev/sdc"), false)
    );
    assert_eq!((p.volume[1].snapshot_id.as_deref(), p.volume[1].remove_on_termination), (Some("snap-1"), true));
    assert_eq!(p.volume[2].volume_id.as_deref(), Some("vol-9"));
    let nic = &c.iaas_provider[0].network_interfaces[0];
    assert_eq!(
        (nic.network_uuid.as_deref(), nic.fixed_ip.as_deref(), nic.port_uuid.as_deref()),
        (Some("b55f009a-1cc6-4b17-924f-4ae0ee18db5e"), Some("10.0.0.5"), Some("port-1"))
    );
    assert_eq!(nic.floating_networks[0].floating_ip.as_deref(), Some("203.0.113.7"));

    // Round trip: every field comes back under 4.1's name, and reads back the same.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["deployment"]["baseDir"], "/var/lib/mysql");
    assert_eq!(json["metadataKeys"][1], "password-hash");
    assert_eq!(json["persistence"]["isRequired"], true);
    assert_eq!(json["persistence"]["volume"][0]["mappingPath"], "/var/lib/mysql");
    assert_eq!(json["persistence"]["volume"][0]["size"], 10);
    assert_eq!(json["persistence"]["volume"][0]["removeOnTermination"], false);
    assert_eq!(json["iaasProvider"][0]["networkInterfaces"][0]["floatingNetworks"][0]["floatingIP"], "203.0.113.7");
    assert_eq!(json["iaasProvider"][0]["networkInterfaces"][0]["portUuid"], "port-1");
    assert_eq!(serde_json::from_value::<Cartridge>(json).unwrap(), c);
    // 4.1's sample php cartridge: an empty `deployment`, `networkInterfaces`, `metadataKeys` kept too.
    let php: Cartridge = load(CARTRIDGE_PHP);
    let json = serde_json::to_value(&php).unwrap();
    assert_eq!(json["deployment"], serde_json::json!({}));
    assert_eq!(json["metadataKeys"], serde_json::json!(["url"]));
    assert_eq!(json["iaasProvider"][0]["networkInterfaces"][0]["networkUuid"], "b55f009a-1cc6-4b17-924f-4ae0ee18db5e");
}

fn load<T: DeserializeOwned>(text: &str) -> T {
    parse(text, Format::Json).unwrap_or_else(|p| panic!("a Stratos 4.1 definition does not load:\n{p}\n{text}"))
}

/// The same definition written as YAML (via a JSON value, so quoted scalars stay quoted).
fn as_yaml(text: &str) -> String {
    let value: Value = serde_json::from_str(text).unwrap();
    serde_norway::to_string(&value).unwrap()
}

fn catalog() -> Definitions {
    let mut defs = Definitions::default();
    let np: NetworkPartition = load(NETWORK_PARTITION);
    defs.network_partitions.insert(np.id.clone(), np);
    for text in [CARTRIDGE_PHP, CARTRIDGE_TOMCAT, CARTRIDGE_EVERY_FIELD] {
        let c: Cartridge = load(text);
        defs.cartridges.insert(c.cartridge_type.clone(), c);
    }
    let asp: AutoscalingPolicy = load(AUTOSCALING_POLICY);
    defs.autoscaling_policies.insert(asp.id.clone(), asp);
    let dp: DeploymentPolicy = load(DEPLOYMENT_POLICY);
    defs.deployment_policies.insert(dp.id.clone(), dp);
    let ap: ApplicationPolicy = load(APPLICATION_POLICY);
    defs.application_policies.insert(ap.id.clone(), ap);
    for text in [CARTRIDGE_GROUP_APP, CARTRIDGE_GROUP_NESTED] {
        let g: CartridgeGroup = load(text);
        defs.cartridge_groups.insert(g.name.clone(), g);
    }
    for text in [APPLICATION_SINGLE, APPLICATION_COMPOSITE, APPLICATION_NESTED] {
        let a: Application = load(text);
        defs.applications.insert(a.application_id.clone(), a);
    }
    defs
}

#[test]
fn autoscaling_policy_loads() {
    let p: AutoscalingPolicy = load(AUTOSCALING_POLICY);
    assert_eq!(p.id, "autoscaling-policy-1");
    assert_eq!(p.load_thresholds.requests_in_flight, Some(Threshold { threshold: 80.0 }));
    assert_eq!(p.load_thresholds.memory_consumption, Some(Threshold { threshold: 90.0 }));
    assert_eq!(p.load_thresholds.load_average, Some(Threshold { threshold: 50.0 }));
}

#[test]
fn network_partition_loads() {
    let np: NetworkPartition = load(NETWORK_PARTITION);
    assert_eq!(np.provider.as_deref(), Some("mock"));
    assert_eq!(np.partitions.len(), 2);
    assert_eq!(np.partitions[0].region(), Some("default"));
    assert_eq!(np.partitions[1].zone(), Some("RegionTwo"));
    assert_eq!(np.partitions[1].description.as_deref(), Some("second zone"));
    assert_eq!(np.property, [property_of("network", "private")], "4.1's `properties` is read");
}

#[test]
fn deployment_policy_loads() {
    let p: DeploymentPolicy = load(DEPLOYMENT_POLICY);
    let np = &p.network_partitions[0];
    assert_eq!(np.id, "network-partition-1");
    assert_eq!(np.partition_algo, PartitionAlgorithm::OneAfterAnother);
    assert_eq!(
        np.partitions.iter().map(|x| (x.id.as_str(), x.partition_max)).collect::<Vec<_>>(),
        [("partition-1", 20), ("partition-2", 10)]
    );
    let rr: DeploymentPolicy = load(&DEPLOYMENT_POLICY.replace("one-after-another", "round-robin"));
    assert_eq!(rr.network_partitions[0].partition_algo, PartitionAlgorithm::RoundRobin);
}

#[test]
fn application_policy_loads() {
    let p: ApplicationPolicy = load(APPLICATION_POLICY);
    assert_eq!(p.algorithm, ApplicationAlgorithm::OneAfterAnother);
    assert_eq!(p.network_partitions, ["network-partition-1"]);
    assert_eq!(p.properties.len(), 2);
    let p: ApplicationPolicy = load(&APPLICATION_POLICY.replace("one-after-another", "all-at-once"));
    assert_eq!(p.algorithm, ApplicationAlgorithm::AllAtOnce);
}

#[test]
fn cartridge_with_quoted_numbers_and_booleans_loads() {
    let c: Cartridge = load(CARTRIDGE_PHP);
    assert_eq!(c.cartridge_type, "php");
    assert!(!c.multi_tenant);
    assert_eq!(c.load_balancing_ip_type.as_deref(), Some("private"));
    assert_eq!(
        c.port_mapping.iter().map(|m| (m.protocol, m.port, m.proxy_port)).collect::<Vec<_>>(),
        [(Protocol::Http, 80, 8280), (Protocol::Tcp, 22, 8222)]
    );
    let mock = c.iaas("mock").unwrap();
    assert_eq!(mock.image_id.as_deref(), Some("RegionOne/b4ca55e3-58ab-4937-82ce-817ebd10240e"));
    assert_eq!(property(&mock.property, "keyPair"), Some("reka"));

    // Written back canonically, under the same names.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["multiTenant"], Value::Bool(false));
    assert_eq!(json["portMapping"][0]["port"], 80);
    assert_eq!(json["loadBalancingIPType"], "private");

    let multi: Cartridge = load(&CARTRIDGE_PHP.replace(r#""multiTenant": "false""#, r#""multiTenant": "true""#));
    assert!(multi.multi_tenant);
}

#[test]
fn kubernetes_cartridge_loads() {
    let c: Cartridge = load(CARTRIDGE_TOMCAT);
    assert_eq!(c.port_mapping[0].name.as_deref(), Some("http-8080"));
    assert_eq!(c.port_mapping[0].proxy_port, 0);
    assert_eq!(c.iaas("kubernetes").unwrap().image_id.as_deref(), Some("stratos/tomcat:4.1.0"));
    assert_eq!(property(&c.property, "payload_parameter.LOG_LEVEL"), Some("DEBUG"));
}

#[test]
fn applications_load() {
    let a: Application = load(APPLICATION_SINGLE);
    let (at, sub) = &a.subscriptions()[0];
    assert_eq!(at, "components.cartridges[0]");
    assert_eq!((sub.cartridge_type.as_str(), sub.cartridge_min, sub.cartridge_max), ("php", 1, 5));
    let info = &sub.subscribable_info;
    assert_eq!(info.alias, "my-php");
    assert_eq!(info.autoscaling_policy, "autoscaling-policy-1");
    assert_eq!(info.deployment_policy, "deployment-policy-1");
    let repo = info.artifact_repository.as_ref().unwrap();
    assert!(!repo.private_repo);
    assert_eq!(repo.repo_url, "https://github.com/imesh/stratos-php-applications.git");
    assert_eq!(repo.repo_username.as_deref(), Some(""));

    let a: Application = load(APPLICATION_COMPOSITE);
    let group = &a.components.groups[0];
    assert_eq!((group.name.as_str(), group.alias.as_str()), ("app-group", "my-appgroup"));
    assert_eq!((group.group_min, group.group_max, group.group_scaling_enabled), (1, 2, true));
    assert_eq!(
        a.subscriptions().iter().map(|(at, s)| (at.as_str(), s.subscribable_info.alias.as_str())).collect::<Vec<_>>(),
        [
            ("components.cartridges[0]", "my-front"),
            ("components.groups[0].cartridges[0]", "my-tomcat"),
            ("components.groups[0].cartridges[1]", "my-php"),
        ]
    );
    let deps = a.components.dependencies.as_ref().unwrap();
    assert_eq!(deps.startup_orders[0].aliases, ["group.my-appgroup", "cartridge.my-front"]);
    assert_eq!(deps.scaling_dependents[0].aliases, ["group.my-appgroup", "cartridge.my-front"]);
    assert_eq!(deps.termination_behaviour, TerminationBehaviour::TerminateNone);

    // Written back with 4.1's group field names.
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["components"]["groups"][0]["groupMinInstances"], 1);
    assert_eq!(json["components"]["groups"][0]["groupMaxInstances"], 2);
    assert_eq!(json["components"]["groups"][0]["groupScalingEnabled"], true);

    for (text, behaviour) in [
        ("terminate-all", TerminationBehaviour::TerminateAll),
        ("terminate-dependents", TerminationBehaviour::TerminateDependents),
    ] {
        let a: Application = load(&APPLICATION_COMPOSITE.replace("terminate-none", text));
        assert_eq!(a.components.dependencies.unwrap().termination_behaviour, behaviour);
    }
}

#[test]
fn every_41_definition_is_valid_against_the_others() {
    let defs = catalog();
    macro_rules! check_all {
        ($map:expr) => {
            for (id, def) in &$map {
                def.check(&defs).unwrap_or_else(|p| panic!("{id}:\n{p}"));
            }
        };
    }
    check_all!(defs.cartridges);
    check_all!(defs.network_partitions);
    check_all!(defs.deployment_policies);
    check_all!(defs.autoscaling_policies);
    check_all!(defs.application_policies);
    check_all!(defs.cartridge_groups);
    check_all!(defs.applications);
}

#[test]
fn the_same_definitions_load_from_yaml() {
    fn same<T: DeserializeOwned + PartialEq + std::fmt::Debug>(json: &str) {
        let yaml = as_yaml(json);
        let from_yaml: T = parse(&yaml, Format::Yaml).unwrap_or_else(|p| panic!("{p}\n{yaml}"));
        assert_eq!(from_yaml, load::<T>(json), "{yaml}");
    }
    same::<AutoscalingPolicy>(AUTOSCALING_POLICY);
    same::<NetworkPartition>(NETWORK_PARTITION);
    same::<DeploymentPolicy>(DEPLOYMENT_POLICY);
    same::<ApplicationPolicy>(APPLICATION_POLICY);
    same::<Cartridge>(CARTRIDGE_PHP);
    same::<Cartridge>(CARTRIDGE_TOMCAT);
    same::<Application>(APPLICATION_SINGLE);
    same::<Application>(APPLICATION_COMPOSITE);
    same::<Application>(APPLICATION_NESTED);
    same::<Cartridge>(CARTRIDGE_EVERY_FIELD);
    same::<CartridgeGroup>(CARTRIDGE_GROUP_APP);
    same::<CartridgeGroup>(CARTRIDGE_GROUP_NESTED);
}

/// YAML written by hand leaves scalars unquoted: `value: 8080`, `version: 7`.
#[test]
fn yaml_plain_scalars_are_read_as_text_where_text_is_expected() {
    let yaml = dedent(
        "
        type: php
        category: framework
        version: 7
        multiTenant: 'false'
        portMapping:
          - { protocol: http, port: '80', proxyPort: 8280 }
        iaasProvider:
          - type: mock
            imageId: image-1
            property:
              - { name: instanceType, value: 42 }
        ",
    );
    let c: Cartridge = parse_valid(&yaml, Format::Yaml).unwrap();
    assert_eq!(c.version.as_deref(), Some("7"));
    assert_eq!(c.port_mapping[0].port, 80);
    assert_eq!(property(&c.iaas("mock").unwrap().property, "instanceType"), Some("42"));
}

fn property_of(name: &str, value: &str) -> Property {
    Property { name: name.into(), value: value.into() }
}
