//! `Definitions::dependents_of`: what would break if a definition were removed.

mod common;

use common::{example_defs, load, APPLICATIONS};
use stratos_model::*;

fn deps(defs: &Definitions, kind: Kind, id: &str) -> Vec<(Kind, String)> {
    defs.dependents_of(kind, id)
}

fn list(items: &[(Kind, &str)]) -> Vec<(Kind, String)> {
    items.iter().map(|(k, i)| (*k, i.to_string())).collect()
}

#[test]
fn network_partitions_are_used_by_deployment_and_application_policies() {
    let defs = example_defs();
    assert_eq!(
        deps(&defs, Kind::NetworkPartition, "np-local-1"),
        list(&[(Kind::DeploymentPolicy, "web-bursting"), (Kind::ApplicationPolicy, "burst-local")])
    );
    assert_eq!(
        deps(&defs, Kind::NetworkPartition, "np-local-2"),
        list(&[(Kind::DeploymentPolicy, "web-bursting"), (Kind::ApplicationPolicy, "burst-local")])
    );
    assert_eq!(
        deps(&defs, Kind::NetworkPartition, "np-local-tcp"),
        list(&[(Kind::DeploymentPolicy, "echo-round-robin"), (Kind::ApplicationPolicy, "echo-local")])
    );
}

#[test]
fn cartridges_and_policies_are_used_by_applications() {
    let defs = example_defs();
    let php_web = [(Kind::Application, "php-web"), (Kind::Application, "php-web-docker")];
    assert_eq!(deps(&defs, Kind::Cartridge, "php"), list(&php_web));
    assert_eq!(deps(&defs, Kind::Cartridge, "python-api"), list(&php_web));
    assert_eq!(deps(&defs, Kind::Cartridge, "tcp-echo"), list(&[(Kind::Application, "tcp-echo")]));
    assert_eq!(deps(&defs, Kind::AutoscalingPolicy, "economy"), list(&php_web));
    assert_eq!(deps(&defs, Kind::DeploymentPolicy, "web-docker"), list(&[(Kind::Application, "php-web-docker")]));
    assert_eq!(deps(&defs, Kind::AutoscalingPolicy, "tcp-load"), list(&[(Kind::Application, "tcp-echo")]));
    assert_eq!(deps(&defs, Kind::DeploymentPolicy, "web-bursting"), list(&[(Kind::Application, "php-web")]));
    assert_eq!(deps(&defs, Kind::DeploymentPolicy, "echo-round-robin"), list(&[(Kind::Application, "tcp-echo")]));
}

#[test]
fn nothing_names_applications_or_application_policies() {
    let defs = example_defs();
    for id in defs.applications.keys() {
        assert_eq!(deps(&defs, Kind::Application, id), list(&[]));
    }
    // An application policy is chosen when an application is deployed, not named by a definition.
    for id in defs.application_policies.keys() {
        assert_eq!(deps(&defs, Kind::ApplicationPolicy, id), list(&[]));
    }
}

#[test]
fn unknown_ids_and_empty_catalogs_have_no_dependents() {
    let defs = example_defs();
    assert_eq!(deps(&defs, Kind::Cartridge, "ruby"), list(&[]));
    assert_eq!(deps(&defs, Kind::NetworkPartition, "np-mars"), list(&[]));
    assert_eq!(deps(&defs, Kind::Cartridge, ""), list(&[]));
    for kind in Kind::ALL {
        assert_eq!(deps(&Definitions::default(), kind, "php"), list(&[]));
    }
}

#[test]
fn the_kind_matters_not_only_the_id() {
    let mut defs = example_defs();
    // A network partition and a cartridge both called "economy", like the autoscaling policy.
    let mut np = defs.network_partitions["np-local-2"].clone();
    np.id = "economy".into();
    defs.network_partitions.insert(np.id.clone(), np);
    let mut c = defs.cartridges["php"].clone();
    c.cartridge_type = "economy".into();
    defs.cartridges.insert(c.cartridge_type.clone(), c);

    assert_eq!(deps(&defs, Kind::NetworkPartition, "economy"), list(&[]));
    assert_eq!(deps(&defs, Kind::Cartridge, "economy"), list(&[]));
    assert_eq!(
        deps(&defs, Kind::AutoscalingPolicy, "economy"),
        list(&[(Kind::Application, "php-web"), (Kind::Application, "php-web-docker")])
    );
    // A partition id is not a network partition id.
    assert_eq!(deps(&defs, Kind::NetworkPartition, "p1"), list(&[]));
}

#[test]
fn each_dependent_is_listed_once_in_kind_then_id_order() {
    let mut defs = example_defs();
    let php_web: Application = load(APPLICATIONS[0]);
    // Named twice (two clusters of the same cartridge) by a second application.
    let mut twice = php_web.clone();
    twice.application_id = "a-shop".into();
    let mut second = twice.components.cartridges[1].clone();
    second.subscribable_info.alias = "web2".into();
    twice.components.cartridges.push(second);
    twice.components.dependencies = None;
    twice.check(&defs).unwrap();
    defs.applications.insert(twice.application_id.clone(), twice);
    let mut third = php_web;
    third.application_id = "z-shop".into();
    defs.applications.insert(third.application_id.clone(), third);

    assert_eq!(
        deps(&defs, Kind::Cartridge, "php"),
        list(&[
            (Kind::Application, "a-shop"),
            (Kind::Application, "php-web"),
            (Kind::Application, "php-web-docker"),
            (Kind::Application, "z-shop")
        ])
    );
    assert_eq!(deps(&defs, Kind::AutoscalingPolicy, "economy").len(), 4);
}

#[test]
fn subscriptions_inside_groups_count() {
    let mut defs = example_defs();
    let text = r#"{
        "applicationId": "grouped",
        "components": {
            "groups": [{
                "name": "outer", "alias": "outer",
                "groups": [{
                    "name": "inner", "alias": "inner",
                    "cartridges": [{
                        "type": "tcp-echo", "cartridgeMin": 1, "cartridgeMax": 1,
                        "subscribableInfo": {"alias": "echo", "autoscalingPolicy": "economy", "deploymentPolicy": "web-bursting"}
                    }]
                }]
            }]
        }
    }"#;
    let app: Application = parse_valid(text, Format::Json).unwrap();
    // The group it names must be defined first; its nested group is named from it.
    let problems = app.check(&defs).unwrap_err();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["components.groups[0].name", "components.groups[0].groups[0].name"], "{problems}");
    let group: stratos_model::CartridgeGroup =
        parse_valid(r#"{"name": "outer", "groups": [{"name": "inner", "cartridges": ["tcp-echo"]}]}"#, Format::Json)
            .unwrap();
    group.check(&defs).unwrap();
    defs.cartridge_groups.insert(group.name.clone(), group);
    app.check(&defs).unwrap();
    defs.applications.insert(app.application_id.clone(), app);

    assert_eq!(
        deps(&defs, Kind::Cartridge, "tcp-echo"),
        list(&[(Kind::CartridgeGroup, "outer"), (Kind::Application, "grouped"), (Kind::Application, "tcp-echo")])
    );
    assert_eq!(deps(&defs, Kind::CartridgeGroup, "outer"), list(&[(Kind::Application, "grouped")]));
    assert_eq!(
        deps(&defs, Kind::DeploymentPolicy, "web-bursting"),
        list(&[(Kind::Application, "grouped"), (Kind::Application, "php-web")])
    );
}

#[test]
fn removing_in_reverse_order_frees_everything() {
    let mut defs = example_defs();
    assert!(!deps(&defs, Kind::Cartridge, "php").is_empty());
    defs.applications.clear();
    for id in defs.cartridges.keys() {
        assert_eq!(deps(&defs, Kind::Cartridge, id), list(&[]), "{id}");
    }
    for id in defs.autoscaling_policies.keys() {
        assert_eq!(deps(&defs, Kind::AutoscalingPolicy, id), list(&[]), "{id}");
    }
    for id in defs.deployment_policies.keys() {
        assert_eq!(deps(&defs, Kind::DeploymentPolicy, id), list(&[]), "{id}");
    }
    // Network partitions are still held by the policies, until those go too.
    assert!(!deps(&defs, Kind::NetworkPartition, "np-local-1").is_empty());
    defs.deployment_policies.remove("web-bursting");
    assert_eq!(deps(&defs, Kind::NetworkPartition, "np-local-1"), list(&[(Kind::ApplicationPolicy, "burst-local")]));
    defs.application_policies.remove("burst-local");
    assert_eq!(deps(&defs, Kind::NetworkPartition, "np-local-1"), list(&[]));
}
