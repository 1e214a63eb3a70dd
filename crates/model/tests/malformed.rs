//! A table of malformed definitions, each with every problem it must produce:
//! the exact field path and a piece of the message. Parse errors, validation
//! and references (checked against the catalog of `examples/`) alike; a
//! definition with three mistakes gives exactly three problems.

mod common;

use common::{check_text, dedent, example_defs};
use stratos_model::{Definitions, Format, Kind, Problem};

use Format::{Json, Yaml};
use Kind::*;

struct Case {
    name: &'static str,
    kind: Kind,
    format: Format,
    text: &'static str,
    /// `(exact path, piece of the message)`, one per expected problem.
    expect: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    // ---- syntax -------------------------------------------------------------
    Case {
        name: "JSON cut short",
        kind: NetworkPartition,
        format: Json,
        text: r#"{"id": "np-x", "provider": "local", "partitions": [{"id": "p1"}"#,
        expect: &[("partitions", "EOF while parsing a list")],
    },
    Case {
        name: "JSON with a trailing comma",
        kind: ApplicationPolicy,
        format: Json,
        text: r#"{"id": "ap", "algorithm": "one-after-another", "networkPartitions": ["np-local-1"],}"#,
        expect: &[("", "trailing comma")],
    },
    Case {
        name: "YAML with a bad indentation",
        kind: AutoscalingPolicy,
        format: Yaml,
        text: "
            id: asp
            loadThresholds:
              loadAverage:
                threshold: 70
             memoryConsumption: {threshold: 80}
            ",
        expect: &[("", "did not find expected key")],
    },
    Case {
        name: "YAML flow sequence never closed",
        kind: ApplicationPolicy,
        format: Yaml,
        text: "
            id: ap
            algorithm: one-after-another
            networkPartitions: [np-local-1, np-local-2
            ",
        expect: &[("networkPartitions", "did not find expected ',' or ']'")],
    },
    // ---- wrong types ----------------------------------------------------------
    Case {
        name: "partitionMax is a word",
        kind: DeploymentPolicy,
        format: Json,
        text: r#"{"id": "dp", "networkPartitions": [{"id": "np-local-1", "partitionAlgo": "one-after-another",
                 "partitions": [{"id": "p1", "partitionMax": "ten"}]}]}"#,
        expect: &[("networkPartitions[0].partitions[0].partitionMax", r#"invalid value: string "ten", expected a whole number"#)],
    },
    Case {
        name: "partitions is a string (YAML)",
        kind: NetworkPartition,
        format: Yaml,
        text: "
            id: np-x
            provider: local
            partitions: p1
            ",
        expect: &[("partitions", "invalid type: string \"p1\", expected a sequence")],
    },
    Case {
        name: "negative cartridgeMin (YAML)",
        kind: Application,
        format: Yaml,
        text: "
            applicationId: app
            components:
              cartridges:
                - type: php
                  cartridgeMin: -1
                  cartridgeMax: 2
                  subscribableInfo: {alias: web, autoscalingPolicy: economy, deploymentPolicy: web-bursting}
            ",
        expect: &[("components.cartridges[0].cartridgeMin", "invalid value: integer `-1`, expected a whole number")],
    },
    Case {
        name: "threshold is a word",
        kind: AutoscalingPolicy,
        format: Json,
        text: r#"{"id": "asp", "loadThresholds": {"loadAverage": {"threshold": "high"}}}"#,
        expect: &[("loadThresholds.loadAverage.threshold", r#"invalid value: string "high", expected a number"#)],
    },
    Case {
        name: "multiTenant is neither true nor false (YAML)",
        kind: Cartridge,
        format: Yaml,
        text: "
            type: php
            category: framework
            multiTenant: maybe
            ",
        expect: &[("multiTenant", "expected true or false")],
    },
    Case {
        name: "networkPartitions of an application policy are objects",
        kind: ApplicationPolicy,
        format: Json,
        text: r#"{"id": "ap", "algorithm": "all-at-once", "networkPartitions": [{"id": "np-local-1"}]}"#,
        expect: &[("networkPartitions[0]", "invalid type: map, expected a string")],
    },
    // ---- unknown enum values --------------------------------------------------
    Case {
        name: "partitionAlgo random",
        kind: DeploymentPolicy,
        format: Json,
        text: r#"{"id": "dp", "networkPartitions": [{"id": "np-local-1", "partitionAlgo": "random",
                 "partitions": [{"id": "p1", "partitionMax": 1}]}]}"#,
        expect: &[("networkPartitions[0].partitionAlgo", "unknown variant `random`, expected `one-after-another` or `round-robin`")],
    },
    Case {
        name: "application policy algorithm round-robin (YAML)",
        kind: ApplicationPolicy,
        format: Yaml,
        text: "
            id: ap
            algorithm: round-robin
            networkPartitions: [np-local-1]
            ",
        expect: &[("algorithm", "unknown variant `round-robin`, expected `one-after-another` or `all-at-once`")],
    },
    Case {
        name: "protocol ftp",
        kind: Cartridge,
        format: Json,
        text: r#"{"type": "ftp", "category": "data", "portMapping": [{"protocol": "ftp", "port": 21}]}"#,
        expect: &[("portMapping[0].protocol", "unknown variant `ftp`")],
    },
    Case {
        name: "health checks out of range (YAML)",
        kind: Cartridge,
        format: Yaml,
        text: "
            type: redis
            category: data
            healthCheck: {intervalSeconds: 0}
            portMapping:
              - {protocol: tcp, port: 6379, healthCheck: {path: /ping, intervalSeconds: 4, timeoutSeconds: 9, send: PING}}
              - {protocol: udp, port: 53, healthCheck: {kind: http, failureThreshold: 101}}
            ",
        expect: &[
            ("portMapping[0].healthCheck.path", "only an http check has a path"),
            ("portMapping[0].healthCheck.timeoutSeconds", "9 is longer than the interval (4 s)"),
            ("portMapping[1].healthCheck.kind", "a UDP port cannot be checked"),
            ("portMapping[1].healthCheck.failureThreshold", "101 is not between 1 and 100"),
            ("healthCheck.intervalSeconds", "0 is not between 1 and 3600"),
        ],
    },
    Case {
        name: "health check kind unknown",
        kind: Cartridge,
        format: Json,
        text: r#"{"type": "web", "category": "framework", "healthCheck": {"kind": "ping"}}"#,
        expect: &[("healthCheck.kind", "unknown variant `ping`")],
    },
    Case {
        name: "terminationBehaviour terminate-some",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {
                   "cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 2,
                     "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}}],
                   "dependencies": {"terminationBehaviour": "terminate-some"}}}"#,
        expect: &[("components.dependencies.terminationBehaviour", "unknown variant `terminate-some`")],
    },
    // ---- missing required fields ----------------------------------------------
    Case {
        name: "network partition without partitions",
        kind: NetworkPartition,
        format: Json,
        text: r#"{"id": "np-x", "provider": "local"}"#,
        expect: &[("", "missing field `partitions`")],
    },
    Case {
        name: "deployment policy without partitionAlgo (YAML)",
        kind: DeploymentPolicy,
        format: Yaml,
        text: "
            id: dp
            networkPartitions:
              - id: np-local-1
                partitions: [{id: p1, partitionMax: 2}]
            ",
        expect: &[("networkPartitions[0]", "missing field `partitionAlgo`")],
    },
    Case {
        name: "subscription without subscribableInfo.deploymentPolicy",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {"cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 2,
                 "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy"}}]}}"#,
        expect: &[("components.cartridges[0].subscribableInfo.deploymentPolicy", "missing: name a deployment policy here or on a group")],
    },
    Case {
        name: "autoscaling policy without loadThresholds",
        kind: AutoscalingPolicy,
        format: Json,
        text: r#"{"id": "asp", "description": "nothing to scale on"}"#,
        expect: &[("", "missing field `loadThresholds`")],
    },
    // ---- ids --------------------------------------------------------------------
    Case {
        name: "empty network partition id and no partitions",
        kind: NetworkPartition,
        format: Json,
        text: r#"{"id": "", "provider": "local", "partitions": []}"#,
        expect: &[("id", "must not be empty"), ("partitions", "at least one partition")],
    },
    Case {
        name: "bad characters in ids",
        kind: DeploymentPolicy,
        format: Json,
        text: r#"{"id": "my policy", "networkPartitions": [{"id": "np/1", "partitionAlgo": "round-robin",
                 "partitions": [{"id": "p#1", "partitionMax": 1}]}]}"#,
        expect: &[
            ("id", r#""my policy" contains ' '"#),
            ("networkPartitions[0].id", r#""np/1" contains '/'"#),
            ("networkPartitions[0].partitions[0].id", r#""p#1" contains '#'"#),
            // The reference check still runs, and np/1 is not a network partition.
            ("networkPartitions[0].id", r#"network partition "np/1" is not defined"#),
        ],
    },
    Case {
        name: "id longer than 128 characters (YAML)",
        kind: AutoscalingPolicy,
        format: Yaml,
        text: "
            id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
            loadThresholds: {loadAverage: {threshold: 70}}
            ",
        expect: &[("id", "at most 128 characters, found 129")],
    },
    Case {
        name: "duplicate partition ids in a network partition, and no provider anywhere",
        kind: NetworkPartition,
        format: Json,
        text: r#"{"id": "np-x", "partitions": [{"id": "p1"}, {"id": "p1"}]}"#,
        expect: &[
            ("partitions[0].provider", "no provider here nor on the network partition"),
            ("partitions[1].provider", "no provider here nor on the network partition"),
            ("partitions[1].id", r#"duplicate id "p1""#),
        ],
    },
    Case {
        name: "duplicate partition in a deployment policy, partitionMax 0",
        kind: DeploymentPolicy,
        format: Json,
        text: r#"{"id": "dp", "networkPartitions": [
                   {"id": "np-local-1", "partitionAlgo": "one-after-another", "partitions": [{"id": "p1", "partitionMax": 2}]},
                   {"id": "np-local-2", "partitionAlgo": "one-after-another",
                    "partitions": [{"id": "p1", "partitionMax": 2}, {"id": "p1", "partitionMax": 0}]}]}"#,
        expect: &[
            ("networkPartitions[1].partitions[1].partitionMax", "must be at least 1"),
            ("networkPartitions[1].partitions[1].id", r#"duplicate id "p1""#),
        ],
    },
    Case {
        name: "the same network partition twice in a deployment policy (YAML)",
        kind: DeploymentPolicy,
        format: Yaml,
        text: "
            id: dp
            networkPartitions:
              - {id: np-local-1, partitionAlgo: round-robin, partitions: [{id: p1, partitionMax: 1}]}
              - {id: np-local-1, partitionAlgo: round-robin, partitions: []}
            ",
        expect: &[
            ("networkPartitions[1].partitions", "needs at least one partition"),
            ("networkPartitions[1].id", r#"duplicate id "np-local-1""#),
        ],
    },
    Case {
        name: "partition rules in a network partition (YAML)",
        kind: NetworkPartition,
        format: Yaml,
        text: "
            id: np-x
            provider: local
            partitions:
              - id: p1
                partitionMax: 0
                property:
                  - {name: region, value: a}
                  - {name: region, value: b}
                  - {name: ' ', value: c}
            ",
        expect: &[
            ("partitions[0].partitionMax", "must be at least 1"),
            ("partitions[0].property[1].name", r#"duplicate property "region""#),
            ("partitions[0].property[2].name", "must not be empty"),
        ],
    },
    // ---- values out of range ------------------------------------------------------
    Case {
        name: "memory threshold 120",
        kind: AutoscalingPolicy,
        format: Json,
        text: r#"{"id": "asp", "loadThresholds": {"memoryConsumption": {"threshold": 120}}}"#,
        expect: &[("loadThresholds.memoryConsumption.threshold", "is a percentage and must be above 0 and below 100, found 120")],
    },
    Case {
        name: "no thresholds at all",
        kind: AutoscalingPolicy,
        format: Json,
        text: r#"{"id": "asp", "loadThresholds": {}}"#,
        expect: &[("loadThresholds", "needs at least one of requestsInFlight, memoryConsumption, loadAverage")],
    },
    Case {
        name: "every threshold wrong, and the id empty (YAML)",
        kind: AutoscalingPolicy,
        format: Yaml,
        text: "
            id: ''
            loadThresholds:
              requestsInFlight: {threshold: -5}
              memoryConsumption: {threshold: 0}
              loadAverage: {threshold: 0}
            ",
        expect: &[
            ("id", "must not be empty"),
            ("loadThresholds.requestsInFlight.threshold", "must be a number above 0, found -5"),
            ("loadThresholds.loadAverage.threshold", "must be a number above 0, found 0"),
            ("loadThresholds.memoryConsumption.threshold", "found 0"),
        ],
    },
    Case {
        name: "port 70000",
        kind: Cartridge,
        format: Json,
        text: r#"{"type": "php", "category": "framework",
                 "portMapping": [{"protocol": "http", "port": 70000, "proxyPort": 70001}]}"#,
        expect: &[
            ("portMapping[0].port", "70000 is not a port (1-65535)"),
            ("portMapping[0].proxyPort", "70001 is not a port (0-65535)"),
        ],
    },
    Case {
        name: "port mapped twice, name used twice, no category, bad type",
        kind: Cartridge,
        format: Json,
        text: r#"{"type": "php 7", "category": " ",
                 "portMapping": [{"name": "http", "protocol": "http", "port": 0},
                                 {"name": "web", "protocol": "http", "port": 8080},
                                 {"name": "web", "protocol": "https", "port": 8080}]}"#,
        expect: &[
            ("type", r#""php 7" contains ' '"#),
            ("category", "must not be empty"),
            ("portMapping[0].port", "0 is not a port"),
            ("portMapping[2].port", "port 8080 is mapped twice"),
            ("portMapping[2].name", r#"duplicate port name "web""#),
        ],
    },
    Case {
        name: "IaaS entries the drivers cannot use",
        kind: Cartridge,
        format: Json,
        text: r#"{"type": "php", "category": "framework", "iaasProvider": [
                   {"type": "local"},
                   {"type": "docker", "imageId": ""},
                   {"type": "kubernetes", "imageId": "php:8"},
                   {"type": "kubernetes", "imageId": "php:8"},
                   {"type": "simulated", "command": ["  ", "x"]},
                   {"type": ""}]}"#,
        expect: &[
            ("iaasProvider[0].command", "the local driver needs the command"),
            ("iaasProvider[1].imageId", "the docker driver needs an image"),
            ("iaasProvider[3].type", r#"IaaS "kubernetes" is configured twice"#),
            ("iaasProvider[4].command[0]", "the program must not be empty"),
            ("iaasProvider[5].type", "must not be empty"),
        ],
    },
    Case {
        name: "container limits and volumes that do not parse",
        kind: Cartridge,
        format: Json,
        text: r#"{"type": "php", "category": "framework",
                 "property": [{"name": "KUBERNETES_CONTAINER_MEMORY", "value": "lots"}],
                 "iaasProvider": [
                   {"type": "docker", "imageId": "php:8", "cpu": "half",
                    "volumes": [{"source": "", "target": "data"},
                                {"source": "/srv/a", "target": "/.stratos/x"},
                                {"source": "../up", "target": "/b"}]},
                   {"type": "kubernetes", "imageId": "php:8",
                    "property": [{"name": "KUBERNETES_CONTAINER_CPU", "value": "-2"}]}]}"#,
        expect: &[
            ("iaasProvider[0].cpu", r#""half" is not a CPU amount"#),
            ("property[0].value", r#""lots" is not a memory size"#),
            ("iaasProvider[0].volumes[0].source", "must not be empty"),
            ("iaasProvider[0].volumes[0].target", "must be an absolute path in the container"),
            ("iaasProvider[0].volumes[1].target", r#""/.stratos/x" is the platform's"#),
            ("iaasProvider[0].volumes[2].source", "must be an absolute host path or a volume name"),
            ("iaasProvider[1].property[0].value", r#""-2" is not a CPU amount"#),
        ],
    },
    // ---- application policies -----------------------------------------------------
    Case {
        name: "application policy: empty list",
        kind: ApplicationPolicy,
        format: Json,
        text: r#"{"id": "ap", "algorithm": "one-after-another", "networkPartitions": [],
                 "properties": [{"name": "", "value": "x"}]}"#,
        expect: &[
            ("networkPartitions", "needs at least one network partition"),
            ("properties[0].name", "must not be empty"),
        ],
    },
    Case {
        name: "application policy: duplicate and unknown network partitions",
        kind: ApplicationPolicy,
        format: Json,
        text: r#"{"id": "ap", "algorithm": "one-after-another",
                 "networkPartitions": ["np-local-1", "np-local-1", "np-mars"]}"#,
        expect: &[
            ("networkPartitions[1]", r#"duplicate id "np-local-1""#),
            ("networkPartitions[2]", r#"network partition "np-mars" is not defined"#),
        ],
    },
    // ---- applications ---------------------------------------------------------------
    Case {
        name: "cartridgeMax below cartridgeMin, cartridgeMin 0",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {"cartridges": [
                   {"type": "php", "cartridgeMin": 3, "cartridgeMax": 2,
                    "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}},
                   {"type": "python-api", "cartridgeMin": 0, "cartridgeMax": 2,
                    "subscribableInfo": {"alias": "api", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}}]}}"#,
        expect: &[
            ("components.cartridges[0].cartridgeMax", "2 is below cartridgeMin 3"),
            ("components.cartridges[1].cartridgeMin", "must be at least 1"),
        ],
    },
    Case {
        name: "duplicate alias, across a group too (YAML)",
        kind: Application,
        format: Yaml,
        text: "
            applicationId: app
            components:
              cartridges:
                - type: php
                  cartridgeMin: 1
                  cartridgeMax: 2
                  subscribableInfo: {alias: web, autoscalingPolicy: economy, deploymentPolicy: web-bursting}
                - type: python-api
                  cartridgeMin: 1
                  cartridgeMax: 2
                  subscribableInfo: {alias: web, autoscalingPolicy: economy, deploymentPolicy: web-bursting}
              groups:
                - name: backend
                  alias: web
                  cartridges:
                    - type: tcp-echo
                      cartridgeMin: 1
                      cartridgeMax: 1
                      subscribableInfo: {alias: echo, autoscalingPolicy: tcp-load, deploymentPolicy: echo-round-robin}
            ",
        expect: &[
            ("components.cartridges[1].subscribableInfo.alias", r#"duplicate id "web""#),
            ("components.groups[0].alias", r#"duplicate id "web""#),
            ("components.groups[0].name", r#"cartridge group "backend" is not defined"#),
        ],
    },
    Case {
        name: "dependencies naming unknown and malformed aliases",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {
                   "cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 2,
                     "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}}],
                   "dependencies": {
                     "startupOrders": [{"aliases": ["cartridge.web", "cartridge.db"]}, {"aliases": ["cartridge.web"]}],
                     "scalingDependents": [{"aliases": ["web", "group.web"]}],
                     "terminationBehaviour": "terminate-all"}}}"#,
        expect: &[
            ("components.dependencies.startupOrders[0].aliases[1]", r#""cartridge.db" names no component of this application"#),
            ("components.dependencies.startupOrders[1].aliases", "needs at least two components"),
            ("components.dependencies.scalingDependents[0].aliases[0]", r#""web" must be "cartridge.<alias>" or "group.<alias>""#),
            ("components.dependencies.scalingDependents[0].aliases[1]", r#""group.web" names no component"#),
        ],
    },
    Case {
        name: "bad host names",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {"cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 2,
                 "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting",
                   "hostNames": ["shop.example.com", "bad_host!", "-dash.example.com", "a..b"]}}]}}"#,
        expect: &[
            ("components.cartridges[0].subscribableInfo.hostNames[1]", r#""bad_host!" is not a host name"#),
            ("components.cartridges[0].subscribableInfo.hostNames[2]", r#""-dash.example.com" is not a host name"#),
            ("components.cartridges[0].subscribableInfo.hostNames[3]", r#""a..b" is not a host name"#),
        ],
    },
    Case {
        name: "artifact repositories on the platform's machine, git helpers",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {"cartridges": [
                 {"type": "php", "cartridgeMin": 1, "cartridgeMax": 1,
                  "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting",
                    "artifactRepository": {"repoUrl": "file:///srv/repos/app.git"}}},
                 {"type": "php", "cartridgeMin": 1, "cartridgeMax": 1,
                  "subscribableInfo": {"alias": "api", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting",
                    "artifactRepository": {"repoUrl": "ext::sh -c id"}}}]}}"#,
        expect: &[
            ("components.cartridges[0].subscribableInfo.artifactRepository.repoUrl", "--allow-local-repos"),
            ("components.cartridges[1].subscribableInfo.artifactRepository.repoUrl", "contains ' '"),
        ],
    },
    Case {
        name: "application without cartridges",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {}}"#,
        expect: &[("components", "an application needs at least one cartridge")],
    },
    Case {
        name: "subscription with empty fields",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {"cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 1,
                 "subscribableInfo": {"alias": "", "autoscalingPolicy": "", "deploymentPolicy": "",
                   "artifactRepository": {"repoUrl": " "}}}]}}"#,
        expect: &[
            ("components.cartridges[0].subscribableInfo.alias", "must not be empty"),
            ("components.cartridges[0].subscribableInfo.autoscalingPolicy", "must not be empty"),
            ("components.cartridges[0].subscribableInfo.deploymentPolicy", "missing: name a deployment policy"),
            ("components.cartridges[0].subscribableInfo.artifactRepository.repoUrl", "must not be empty"),
        ],
    },
    Case {
        name: "groups: max below min, empty group, bad name",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {
                   "cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 1,
                     "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}}],
                   "groups": [{"name": "my group", "alias": "g1", "groupMinInstances": 3, "groupMaxInstances": 2,
                               "groups": [{"name": "inner", "alias": "g2"}]}]}}"#,
        expect: &[
            ("components.groups[0].name", r#""my group" contains ' '"#),
            ("components.groups[0].groupMaxInstances", "2 is below groupMinInstances 3"),
            ("components.groups[0].groups[0].cartridges", "a group needs at least one cartridge or group"),
        ],
    },
    // ---- references ---------------------------------------------------------------------
    Case {
        name: "deployment policy: unknown network partition, unknown partition of a known one",
        kind: DeploymentPolicy,
        format: Json,
        text: r#"{"id": "dp", "networkPartitions": [
                   {"id": "np-nowhere", "partitionAlgo": "one-after-another", "partitions": [{"id": "p1", "partitionMax": 1}]},
                   {"id": "np-local-1", "partitionAlgo": "round-robin",
                    "partitions": [{"id": "p1", "partitionMax": 1}, {"id": "p9", "partitionMax": 1}]}]}"#,
        expect: &[
            ("networkPartitions[0].id", r#"network partition "np-nowhere" is not defined"#),
            ("networkPartitions[1].partitions[1].id", r#"network partition "np-local-1" has no partition "p9""#),
        ],
    },
    Case {
        name: "application: unknown cartridge, autoscaling policy and deployment policy",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {"cartridges": [{"type": "ruby", "cartridgeMin": 1, "cartridgeMax": 2,
                 "subscribableInfo": {"alias": "web", "autoscalingPolicy": "lavish", "deploymentPolicy": "everywhere"}}]}}"#,
        expect: &[
            ("components.cartridges[0].type", r#"cartridge "ruby" is not defined"#),
            ("components.cartridges[0].subscribableInfo.autoscalingPolicy", r#"autoscaling policy "lavish" is not defined"#),
            ("components.cartridges[0].subscribableInfo.deploymentPolicy", r#"deployment policy "everywhere" is not defined"#),
        ],
    },
    Case {
        name: "application: unknown names inside a group (YAML)",
        kind: Application,
        format: Yaml,
        text: "
            applicationId: app
            components:
              groups:
                - name: backend
                  alias: be
                  groupMinInstances: 1
                  groupMaxInstances: 1
                  cartridges:
                    - type: mysql
                      cartridgeMin: 1
                      cartridgeMax: 1
                      subscribableInfo: {alias: db, autoscalingPolicy: economy, deploymentPolicy: db-policy}
            ",
        expect: &[
            ("components.groups[0].cartridges[0].type", r#"cartridge "mysql" is not defined"#),
            ("components.groups[0].cartridges[0].subscribableInfo.deploymentPolicy", r#"deployment policy "db-policy" is not defined"#),
            ("components.groups[0].name", r#"cartridge group "backend" is not defined"#),
        ],
    },
    // ---- cartridge groups (Apache Stratos 4.1 `CartridgeGroupBean`) ---------------
    Case {
        name: "cartridge group: bad name, nothing in it, duplicate cartridge, unknown cartridge",
        kind: CartridgeGroup,
        format: Json,
        text: r#"{"name": "my group", "cartridges": ["php", "php", "mysql"],
                  "groups": [{"name": "empty"}, {"name": "x/y", "cartridges": ["tcp-echo"]}]}"#,
        expect: &[
            ("name", r#""my group" contains ' '"#),
            ("cartridges[1]", r#"cartridge "php" is listed twice"#),
            ("cartridges[2]", r#"cartridge "mysql" is not defined"#),
            ("groups[0].cartridges", "a group needs at least one cartridge or nested group"),
            ("groups[1].name", r#""x/y" contains '/'"#),
        ],
    },
    Case {
        name: "cartridge group nested three deep with a bad dependency and an unknown cartridge (YAML)",
        kind: CartridgeGroup,
        format: Yaml,
        text: "
            name: outer
            cartridges: [php]
            groups:
              - name: middle
                cartridges: [python-api]
                groups:
                  - name: inner
                    cartridges: [tomcat]
                    dependencies:
                      startupOrders:
                        - aliases: ['cartridge.a, tomcat']
                      terminationBehaviour: terminate-dependents
                  - name: inner
                    cartridges: [php]
            ",
        expect: &[
            ("groups[0].groups[0].cartridges[0]", r#"cartridge "tomcat" is not defined"#),
            ("groups[0].groups[0].dependencies.startupOrders[0].aliases[1]", r#""tomcat" must be "cartridge.<alias>" or "group.<alias>""#),
            ("groups[0].groups[1].name", r#"group "inner" is nested twice here"#),
        ],
    },
    Case {
        name: "cartridge group: wrong types",
        kind: CartridgeGroup,
        format: Json,
        text: r#"{"name": "g", "cartridges": "php"}"#,
        expect: &[("cartridges", r#"invalid type: string "php", expected a sequence"#)],
    },
    Case {
        name: "cartridge group: an unknown termination behaviour (YAML)",
        kind: CartridgeGroup,
        format: Yaml,
        text: "
            name: g
            cartridges: [php]
            dependencies: {terminationBehaviour: terminate-some}
            ",
        expect: &[("dependencies.terminationBehaviour", "unknown variant `terminate-some`")],
    },
    Case {
        name: "cartridge group: groupScalingEnabled that is no boolean",
        kind: CartridgeGroup,
        format: Json,
        text: r#"{"name": "g", "cartridges": ["php"], "groupScalingEnabled": "yes"}"#,
        expect: &[("groupScalingEnabled", "expected true or false")],
    },
    // ---- group deployment policies and references to cartridge groups ---------------
    Case {
        name: "a group's deployment policy and a cartridge or group inside naming its own",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {"groups": [{"name": "web-group", "alias": "g1", "deploymentPolicy": "web-bursting",
                   "cartridges": [{"type": "php", "cartridgeMin": 1, "cartridgeMax": 1,
                     "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}}],
                   "groups": [{"name": "api-group", "alias": "g2", "deploymentPolicy": "web-docker",
                     "cartridges": [{"type": "python-api", "cartridgeMin": 1, "cartridgeMax": 1,
                       "subscribableInfo": {"alias": "api", "autoscalingPolicy": "economy"}}]}]}]}}"#,
        expect: &[
            ("components.groups[0].cartridges[0].subscribableInfo.deploymentPolicy", "the group at components.groups[0] gives the deployment policy"),
            ("components.groups[0].groups[0].deploymentPolicy", "the group at components.groups[0] already gives"),
            ("components.groups[0].name", r#"cartridge group "web-group" is not defined"#),
            ("components.groups[0].groups[0].name", r#"cartridge group "api-group" is not defined"#),
        ],
    },
    Case {
        name: "a group's unknown deployment policy, a cartridge with none outside any group (YAML)",
        kind: Application,
        format: Yaml,
        text: "
            applicationId: app
            components:
              cartridges:
                - type: php
                  cartridgeMin: 1
                  cartridgeMax: 1
                  subscribableInfo: {alias: web, autoscalingPolicy: economy}
              groups:
                - name: g
                  alias: g1
                  deploymentPolicy: nowhere
                  cartridges:
                    - type: python-api
                      cartridgeMin: 1
                      cartridgeMax: 1
                      subscribableInfo: {alias: api, autoscalingPolicy: economy}
            ",
        expect: &[
            ("components.cartridges[0].subscribableInfo.deploymentPolicy", "missing: name a deployment policy"),
            ("components.groups[0].deploymentPolicy", r#"deployment policy "nowhere" is not defined"#),
            ("components.groups[0].name", r#"cartridge group "g" is not defined"#),
        ],
    },
    Case {
        name: "comma-joined aliases that name nothing",
        kind: Application,
        format: Json,
        text: r#"{"applicationId": "app", "components": {"cartridges": [
                   {"type": "php", "cartridgeMin": 1, "cartridgeMax": 1,
                    "subscribableInfo": {"alias": "web", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}}],
                   "dependencies": {"scalingDependents": [{"aliases": ["cartridge.web, group.nope", " "]}]}}}"#,
        expect: &[
            ("components.dependencies.scalingDependents[0].aliases[1]", r#""group.nope" names no component"#),
            ("components.dependencies.scalingDependents[0].aliases[2]", r#""" must be "cartridge.<alias>""#),
        ],
    },
    // ---- cartridge fields of 4.1 -------------------------------------------------------
    Case {
        name: "persistence required without volumes, an empty metadata key",
        kind: Cartridge,
        format: Json,
        text: r#"{"type": "db", "category": "data", "persistence": {"isRequired": true}, "metadataKeys": ["ok", " "]}"#,
        expect: &[
            ("persistence.volume", "persistence is required but no volume is given"),
            ("metadataKeys[1]", "must not be empty"),
        ],
    },
    Case {
        name: "persistence volumes: duplicate id, size 0, relative path, no size (YAML)",
        kind: Cartridge,
        format: Yaml,
        text: "
            type: db
            category: data
            persistence:
              isRequired: 'true'
              volume:
                - {id: data, size: '0', mappingPath: /var/lib/db}
                - {id: data, size: 10, mappingPath: var/log}
                - {id: other}
            ",
        expect: &[
            ("persistence.volume[0].size", "must be at least 1"),
            ("persistence.volume[1].id", r#"duplicate volume id "data""#),
            ("persistence.volume[1].mappingPath", r#""var/log" is not an absolute path"#),
            ("persistence.volume[2].size", "a new volume needs a size"),
            ("persistence.volume[2].mappingPath", "missing: where the volume is mounted"),
        ],
    },
];

fn problems(case: &Case, defs: &Definitions) -> Vec<Problem> {
    let text = match case.format {
        Json => case.text.to_string(),
        Yaml => dedent(case.text),
    };
    check_text(case.kind, case.format, &text, defs)
}

#[test]
fn the_table_is_large_and_covers_every_kind_and_format() {
    assert!(CASES.len() >= 25);
    for kind in Kind::ALL {
        assert!(CASES.iter().any(|c| c.kind == kind && c.format == Json), "no JSON case for {kind}");
        assert!(CASES.iter().any(|c| c.kind == kind && c.format == Yaml), "no YAML case for {kind}");
    }
    let names: std::collections::HashSet<_> = CASES.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), CASES.len(), "case names are unique");
}

#[test]
fn every_malformed_definition_reports_all_its_problems_at_their_paths() {
    let defs = example_defs();
    let mut failures = Vec::new();
    for case in CASES {
        let mut got = problems(case, &defs);
        let mut missing = Vec::new();
        for (path, piece) in case.expect {
            match got.iter().position(|p| p.path == *path && p.message.contains(piece)) {
                Some(i) => {
                    got.remove(i);
                }
                None => missing.push(format!("{path}: …{piece}…")),
            }
        }
        if !missing.is_empty() || !got.is_empty() {
            let all =
                problems(case, &defs).iter().map(|p| format!("    {:?}: {:?}", p.path, p.message)).collect::<Vec<_>>();
            failures.push(format!(
                "{} ({:?} {}):\n  missing: {missing:?}\n  unexpected: {:?}\n  all problems:\n{}",
                case.name,
                case.format,
                case.kind,
                got.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                all.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n\n{}", failures.len(), CASES.len(), failures.join("\n\n"));
}

/// The problems are about this definition and nothing else: the reference
/// rows give no problem when what they name exists, and the validation rows
/// give the same problems without any catalog.
#[test]
fn parse_valid_reports_the_same_problems_without_the_reference_checks() {
    use stratos_model::{parse_valid, Application, ApplicationPolicy, AutoscalingPolicy, Cartridge, DeploymentPolicy};
    use stratos_model::{NetworkPartition, Problems};

    fn valid<T: stratos_model::Definition + serde::de::DeserializeOwned>(text: &str, f: Format) -> Vec<Problem> {
        parse_valid::<T>(text, f).err().map(|p: Problems| p.0).unwrap_or_default()
    }
    let defs = example_defs();
    for case in CASES {
        let text = match case.format {
            Json => case.text.to_string(),
            Yaml => dedent(case.text),
        };
        let alone = match case.kind {
            Kind::Cartridge => valid::<Cartridge>(&text, case.format),
            Kind::NetworkPartition => valid::<NetworkPartition>(&text, case.format),
            Kind::DeploymentPolicy => valid::<DeploymentPolicy>(&text, case.format),
            Kind::AutoscalingPolicy => valid::<AutoscalingPolicy>(&text, case.format),
            Kind::ApplicationPolicy => valid::<ApplicationPolicy>(&text, case.format),
            Kind::CartridgeGroup => valid::<stratos_model::CartridgeGroup>(&text, case.format),
            Kind::Application => valid::<Application>(&text, case.format),
        };
        let with_refs = problems(case, &defs);
        let reference_problems: Vec<_> = with_refs
            .iter()
            .filter(|p| {
                p.message.contains("is not defined")
                    || p.message.contains("has no partition")
                    // A platform setting (--allow-local-repos), checked with the references.
                    || p.message.contains("--allow-local-repos")
            })
            .cloned()
            .collect();
        let mut expected = with_refs.clone();
        expected.retain(|p| !reference_problems.contains(p));
        assert_eq!(alone, expected, "{}", case.name);
    }
}

#[test]
fn problems_display_with_their_paths() {
    let defs = example_defs();
    let case = CASES.iter().find(|c| c.name == "port 70000").unwrap();
    let text = stratos_model::Problems(problems(case, &defs)).to_string();
    assert_eq!(
        text,
        "portMapping[0].port: 70000 is not a port (1-65535)\nportMapping[0].proxyPort: 70001 is not a port (0-65535)"
    );
}
