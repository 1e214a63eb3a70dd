//! Every definition kind survives JSON and YAML round trips, the examples in
//! `examples/` are valid (references included), and serializing keeps
//! Apache Stratos 4.1's field names.

mod common;

use std::fmt::Debug;

use common::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use stratos_model::*;

/// Parses an example, validates it on its own, then round-trips it through
/// JSON and YAML; returns the definition.
fn round_trip<T>(example: Example) -> T
where
    T: Definition + Serialize + DeserializeOwned + PartialEq + Debug,
{
    let (path, text) = example;
    let def: T = parse_valid(text, Format::Json).unwrap_or_else(|p| panic!("examples/{path} is not valid:\n{p}"));

    let json = serde_json::to_string_pretty(&def).unwrap();
    assert_eq!(Format::sniff(&json), Format::Json);
    let again: T =
        parse(&json, Format::Json).unwrap_or_else(|p| panic!("{path}: own JSON does not parse: {p}\n{json}"));
    assert_eq!(again, def, "{path}: JSON round trip");

    let yaml = serde_norway::to_string(&def).unwrap();
    assert_eq!(Format::sniff(&yaml), Format::Yaml, "{path}: YAML must not look like JSON:\n{yaml}");
    let again: T =
        parse(&yaml, Format::Yaml).unwrap_or_else(|p| panic!("{path}: own YAML does not parse: {p}\n{yaml}"));
    assert_eq!(again, def, "{path}: YAML round trip");

    // What was written is still there, under the same (4.1) field names.
    let original: Value = serde_json::from_str(text).unwrap();
    let written = serde_json::to_value(&def).unwrap();
    assert_contains(&original, &written, path, "");
    def
}

/// Every field of `original` is in `written`, with the same value.
fn assert_contains(original: &Value, written: &Value, file: &str, at: &str) {
    match (original, written) {
        (Value::Object(o), Value::Object(w)) => {
            for (k, v) in o {
                let here = format!("{at}.{k}");
                let w =
                    w.get(k).unwrap_or_else(|| panic!("{file}: {here} was dropped when serializing; wrote {written}"));
                assert_contains(v, w, file, &here);
            }
        }
        (Value::Array(o), Value::Array(w)) => {
            assert_eq!(o.len(), w.len(), "{file}: {at} changed length");
            for (i, (o, w)) in o.iter().zip(w).enumerate() {
                assert_contains(o, w, file, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(o), Value::Number(w)) => assert_eq!(o.as_f64(), w.as_f64(), "{file}: {at}"),
        (o, w) => assert_eq!(o, w, "{file}: {at}"),
    }
}

#[test]
fn network_partitions_round_trip() {
    for e in NETWORK_PARTITIONS {
        round_trip::<NetworkPartition>(*e);
    }
}

#[test]
fn cartridges_round_trip() {
    for e in CARTRIDGES {
        round_trip::<Cartridge>(*e);
    }
}

#[test]
fn autoscaling_policies_round_trip() {
    for e in AUTOSCALING_POLICIES {
        round_trip::<AutoscalingPolicy>(*e);
    }
}

#[test]
fn deployment_policies_round_trip() {
    for e in DEPLOYMENT_POLICIES {
        round_trip::<DeploymentPolicy>(*e);
    }
}

#[test]
fn application_policies_round_trip() {
    for e in APPLICATION_POLICIES {
        round_trip::<ApplicationPolicy>(*e);
    }
}

#[test]
fn applications_round_trip() {
    for e in APPLICATIONS {
        round_trip::<Application>(*e);
    }
}

#[test]
fn tenant_round_trips() {
    let text =
        r#"{"tenantId": 7, "tenantDomain": "example.com", "email": "admin@example.com", "createdAt": 1700000000000}"#;
    let tenant: Tenant = parse(text, Format::Json).unwrap();
    assert!(tenant.active, "active defaults to true");
    let mut p = Problems::default();
    tenant.validate(&mut p);
    assert!(p.is_empty(), "{p}");
    let again: Tenant = parse(&serde_json::to_string(&tenant).unwrap(), Format::Json).unwrap();
    assert_eq!(again, tenant);
    let again: Tenant = parse(&serde_norway::to_string(&tenant).unwrap(), Format::Yaml).unwrap();
    assert_eq!(again, tenant);
}

#[test]
fn every_example_is_valid_against_all_the_others() {
    let defs = example_defs();
    assert_eq!(defs.network_partitions.len(), NETWORK_PARTITIONS.len(), "network partition ids are unique");
    assert_eq!(defs.cartridges.len(), CARTRIDGES.len(), "cartridge types are unique");
    assert_eq!(defs.autoscaling_policies.len(), AUTOSCALING_POLICIES.len());
    assert_eq!(defs.deployment_policies.len(), DEPLOYMENT_POLICIES.len());
    assert_eq!(defs.application_policies.len(), APPLICATION_POLICIES.len());
    assert_eq!(defs.applications.len(), APPLICATIONS.len());

    fn check_all<D: Definition>(defs: &Definitions, map: &std::collections::BTreeMap<String, D>) {
        for (id, def) in map {
            def.check(defs).unwrap_or_else(|p| panic!("{} {id}:\n{p}", D::KIND));
            for (kind, name) in def.references() {
                let known = defs.contains(kind, &name);
                assert!(known, "{} {id} names {kind} {name:?}, which is not an example", D::KIND);
            }
        }
    }
    check_all(&defs, &defs.cartridges);
    check_all(&defs, &defs.network_partitions);
    check_all(&defs, &defs.deployment_policies);
    check_all(&defs, &defs.autoscaling_policies);
    check_all(&defs, &defs.application_policies);
    check_all(&defs, &defs.applications);
}

#[test]
fn example_catalog_builds_the_same_through_insert_json() {
    let mut defs = Definitions::default();
    for (kind, (path, text)) in all_examples() {
        let value: Value = serde_json::from_str(text).unwrap();
        defs.insert_json(kind, value).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert_eq!(defs, example_defs());
}

/// Every file in examples/ is one of the lists above (so none escapes these
/// tests), and is named `<kind>-<id>.json` after the definition it holds.
#[test]
fn example_files_are_all_tested_and_named_after_their_definition() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let known: std::collections::BTreeSet<&str> = all_examples().iter().map(|(_, (p, _))| *p).collect();
    let mut found = std::collections::BTreeSet::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "json") {
                let rel = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
                found.insert(rel);
            }
        }
    }
    let known_owned: std::collections::BTreeSet<String> = known.iter().map(|s| s.to_string()).collect();
    assert_eq!(found, known_owned, "examples/ and the lists in tests/common/mod.rs differ");

    for (kind, (path, text)) in all_examples() {
        let value: Value = serde_json::from_str(text).unwrap();
        let id = value[kind.id_field()].as_str().unwrap_or_else(|| panic!("{path}: no {}", kind.id_field()));
        let file = path.rsplit('/').next().unwrap();
        assert_eq!(file, format!("{}-{id}.json", kind.name()), "{path}");
    }
}

#[test]
fn examples_say_what_the_platform_needs() {
    let defs = example_defs();

    let php = &defs.cartridges["php"];
    assert_eq!(php.category, "framework");
    assert_eq!(php.port_mapping.len(), 1);
    let http = &php.port_mapping[0];
    assert_eq!((http.protocol, http.port, http.proxy_port), (Protocol::Http, 8080, 8280));
    assert_eq!(php.iaas("local").unwrap().command, ["stratos", "sample-http", "--port", "${PORT}"]);
    let docker = php.iaas("docker").unwrap();
    assert_eq!(docker.image_id.as_deref(), Some("stratos/php-web-php:bookworm"));
    assert_eq!(stratos_model::property(&docker.property, "IMAGE_DEBIAN_PACKAGES"), Some("php-cli"));
    assert_eq!(defs.network_partitions["np-docker-1"].provider.as_deref(), Some("docker"));

    let echo = &defs.cartridges["tcp-echo"];
    assert!(echo.port_mapping.iter().all(|m| m.protocol == Protocol::Tcp && !m.protocol.is_http()));
    assert_eq!(echo.iaas("local").unwrap().command[..3], ["python3", "-u", "-c"]);

    let np1 = &defs.network_partitions["np-local-1"];
    assert_eq!(np1.partitions.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["p1", "p2"]);
    for p in &np1.partitions {
        assert_eq!(np1.provider_of(p), Some("local"));
        assert!(p.region().is_some() && p.zone().is_some(), "{} has region and zone", p.id);
    }

    let web = &defs.deployment_policies["web-bursting"];
    assert!(web.network_partitions.iter().all(|np| np.partition_algo == PartitionAlgorithm::OneAfterAnother));
    assert_eq!(
        web.network_partitions.iter().map(|np| np.id.as_str()).collect::<Vec<_>>(),
        ["np-local-1", "np-local-2"]
    );
    let rr = &defs.deployment_policies["echo-round-robin"];
    assert_eq!(rr.network_partitions[0].partition_algo, PartitionAlgorithm::RoundRobin);

    let economy = &defs.autoscaling_policies["economy"].load_thresholds;
    assert_eq!(economy.requests_in_flight, Some(Threshold { threshold: 80.0 }));
    assert_eq!(economy.memory_consumption, Some(Threshold { threshold: 80.0 }));
    assert_eq!(economy.load_average, Some(Threshold { threshold: 70.0 }));

    let burst = &defs.application_policies["burst-local"];
    assert_eq!(burst.algorithm, ApplicationAlgorithm::OneAfterAnother);
    assert_eq!(burst.network_partitions, ["np-local-1", "np-local-2"]);

    let app = &defs.applications["php-web"];
    let subs = app.subscriptions();
    assert_eq!(subs.len(), 2);
    let deps = app.components.dependencies.as_ref().unwrap();
    assert_eq!(deps.startup_orders[0].aliases, ["cartridge.api", "cartridge.web"]);
    assert_eq!(deps.termination_behaviour, TerminationBehaviour::TerminateDependents);
}

/// A hand-written YAML definition equals its JSON twin.
#[test]
fn yaml_written_by_hand_equals_json() {
    let yaml = dedent(
        "
        # the autoscaling policy of examples/README.md
        id: economy
        description: Scale out when a member carries 80 requests in flight, 80 % memory or a load average of 70
        loadThresholds:
          requestsInFlight: { threshold: 80 }
          memoryConsumption: { threshold: 80 }
          loadAverage: { threshold: 70 }
        ",
    );
    let from_yaml: AutoscalingPolicy = parse_valid(&yaml, Format::sniff(&yaml)).unwrap();
    assert_eq!(from_yaml, load::<AutoscalingPolicy>(AUTOSCALING_POLICIES[0]));

    let yaml = dedent(
        r#"
        applicationId: tcp-echo
        alias: tcp-echo
        name: TCP echo
        description: Two to four echo servers spread round-robin over two partitions
        components:
          cartridges:
            - type: tcp-echo
              cartridgeMin: 2
              cartridgeMax: 4
              subscribableInfo:
                alias: echo
                autoscalingPolicy: tcp-load
                deploymentPolicy: echo-round-robin
        "#,
    );
    let from_yaml: Application = parse_valid(&yaml, Format::Yaml).unwrap();
    assert_eq!(from_yaml, load::<Application>(*APPLICATIONS.iter().find(|(p, _)| p.starts_with("tcp-echo/")).unwrap()));
    from_yaml.check(&example_defs()).unwrap();

    let yaml = dedent(
        r#"
        type: tcp-echo
        category: application
        portMapping:
          - { name: echo, protocol: tcp, port: 7007, proxyPort: 7000 }
        iaasProvider:
          - type: local
            command: [python3, -u, -c, "print('hi')"]
        "#,
    );
    let c: Cartridge = parse_valid(&yaml, Format::Yaml).unwrap();
    assert_eq!(c.port_mapping[0].protocol, Protocol::Tcp);
    assert_eq!(c.iaas("local").unwrap().command[3], "print('hi')");
}

#[test]
fn container_fields_round_trip() {
    let text = r#"{"type": "php", "category": "framework", "iaasProvider": [{"type": "docker", "imageId": "stratos/php:1",
        "command": ["php", "-S", "0.0.0.0:8080"], "cpu": "500m", "memory": "256Mi",
        "volumes": [{"source": "/srv/shared", "target": "/data", "readOnly": false}, {"source": "cache", "target": "/cache"}]}]}"#;
    let c: Cartridge = parse_valid(text, Format::Json).expect("valid");
    let iaas = c.iaas("docker").unwrap();
    assert_eq!(iaas.limits(&c.property), Limits { nano_cpus: Some(500_000_000), memory_bytes: Some(256 << 20) });
    assert_eq!(iaas.volumes[1], Volume { source: "cache".into(), target: "/cache".into(), read_only: true });
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(parse::<Cartridge>(&json, Format::Json).unwrap(), c);
    let yaml = serde_norway::to_string(&c).unwrap();
    assert_eq!(parse::<Cartridge>(&yaml, Format::Yaml).unwrap(), c);
    // 4.1's properties, on the iaasProvider or the cartridge, when the fields are absent.
    let text = r#"{"type": "php", "category": "framework",
        "property": [{"name": "KUBERNETES_CONTAINER_MEMORY", "value": "1Gi"}],
        "iaasProvider": [{"type": "docker", "imageId": "php", "property": [{"name": "KUBERNETES_CONTAINER_CPU", "value": "2"}]}]}"#;
    let c: Cartridge = parse_valid(text, Format::Json).expect("valid");
    assert_eq!(
        c.iaas("docker").unwrap().limits(&c.property),
        Limits { nano_cpus: Some(2_000_000_000), memory_bytes: Some(1 << 30) }
    );
}
