//! The Kubernetes manifests (`deploy/k8s/`) checked against the repository, without a cluster:
//! the files are parsed and the tests catch a deployment that cannot work as written — a setting
//! the mediator does not know, a password in a ConfigMap, ports or a route host that disagree
//! with the Service OpenHIM routes to, probes on the wrong paths, a dead-letter store on a
//! read-only file system, a mapping file no volume provides — and load the settings exactly as a
//! pod would, through the mediator's own parser and registration check.

mod common;

use common::yaml::scalar;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cht_fhir_mediator::conversions::mapping::FormMappings;
use cht_fhir_mediator::conversions::to_cht::OutboundMappings;
use cht_fhir_mediator::openhim::registration::Registration;
use cht_fhir_mediator::settings::{Settings, Source};
use serde_json::Value as Json;
use yaml_rust2::{Yaml, YamlLoader};

const DIR: &str = "deploy/k8s";
const UID: i64 = 10001;

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Fails with every problem found, one a line, so one run shows them all.
fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  - {}", problems.join("\n  - "));
}

fn string(yaml: &Yaml) -> Option<&str> {
    yaml.as_str()
}

fn list(yaml: &Yaml) -> &[Yaml] {
    yaml.as_vec().map(Vec::as_slice).unwrap_or_default()
}

fn entries(yaml: &Yaml) -> Vec<(String, &Yaml)> {
    yaml.as_hash().into_iter().flatten().filter_map(|(k, v)| scalar(k).map(|k| (k, v))).collect()
}

// ---------------------------------------------------------------- the manifests

/// One object of a manifest file.
struct Object {
    file: String,
    yaml: Yaml,
}

impl Object {
    fn kind(&self) -> &str {
        string(&self.yaml["kind"]).unwrap_or_default()
    }

    fn name(&self) -> &str {
        string(&self.yaml["metadata"]["name"]).unwrap_or_default()
    }
}

struct Manifests {
    objects: Vec<Object>,
}

fn manifests() -> Manifests {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path(DIR))
        .unwrap_or_else(|e| panic!("cannot list {DIR}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for path in files {
        let file = format!("{DIR}/{}", path.file_name().unwrap().to_string_lossy());
        let docs = YamlLoader::load_from_str(&read(&file)).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
        for yaml in docs.into_iter().filter(|d| !d.is_null()) {
            let object = Object { file: file.clone(), yaml };
            assert!(
                string(&object.yaml["apiVersion"]).is_some() && !object.kind().is_empty() && !object.name().is_empty(),
                "{file}: every object needs apiVersion, kind and metadata.name"
            );
            objects.push(object);
        }
    }
    assert!(!objects.is_empty(), "{DIR} holds no manifests");
    Manifests { objects }
}

impl Manifests {
    fn all(&self, kind: &str) -> Vec<&Object> {
        self.objects.iter().filter(|o| o.kind() == kind).collect()
    }

    fn only(&self, kind: &str) -> &Object {
        match self.all(kind).as_slice() {
            [one] => one,
            found => panic!("{DIR} must hold exactly one {kind}, found {}", found.len()),
        }
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Object> {
        self.objects.iter().find(|o| o.kind() == kind && o.name() == name)
    }

    fn deployment(&self) -> &Object {
        self.only("Deployment")
    }

    fn service(&self) -> &Object {
        self.only("Service")
    }

    fn pod(&self) -> &Yaml {
        &self.deployment().yaml["spec"]["template"]
    }

    /// The mediator's container (the only one).
    fn container(&self) -> &Yaml {
        match list(&self.pod()["spec"]["containers"]) {
            [one] => one,
            found => panic!("the Deployment must run exactly one container, found {}", found.len()),
        }
    }

    /// The container's port OpenHIM reaches, by name `http` (or the only port).
    fn container_port(&self) -> (String, i64) {
        let ports = list(&self.container()["ports"]);
        let port = ports.iter().find(|p| string(&p["name"]) == Some("http")).or(match ports {
            [one] => Some(one),
            _ => None,
        });
        let port = port.expect("the container declares its port (named `http`)");
        let number = port["containerPort"].as_i64().expect("containerPort is a number");
        (string(&port["name"]).unwrap_or_default().to_owned(), number)
    }

    /// A probe's or Service's port (a number or the container port's name) as a number.
    fn resolve_port(&self, port: &Yaml) -> Option<i64> {
        match port {
            Yaml::Integer(n) => Some(*n),
            Yaml::String(name) => list(&self.container()["ports"])
                .iter()
                .find(|p| string(&p["name"]) == Some(name))
                .and_then(|p| p["containerPort"].as_i64()),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- the container's environment

#[derive(Debug, Clone, PartialEq)]
enum Origin {
    ConfigMap(String),
    Secret(String),
    Inline,
}

#[derive(Debug, Clone)]
struct EnvVar {
    value: String,
    origin: Origin,
}

/// A ConfigMap's or Secret's keys and values (a Secret's `data` stays base64: only its keys and
/// presence matter here).
fn key_values(object: &Yaml) -> Vec<(String, &Yaml)> {
    ["data", "stringData"].iter().flat_map(|section| entries(&object[*section])).collect()
}

/// The environment the container gets, in Kubernetes' order: envFrom (later sources win), then env.
fn environment(m: &Manifests) -> BTreeMap<String, EnvVar> {
    let mut env = BTreeMap::new();
    for source in list(&m.container()["envFrom"]) {
        assert!(source["prefix"].is_badvalue(), "envFrom prefix would rename the settings");
        let (kind, name, origin) = if let Some(name) = string(&source["configMapRef"]["name"]) {
            ("ConfigMap", name, Origin::ConfigMap(name.to_owned()))
        } else if let Some(name) = string(&source["secretRef"]["name"]) {
            ("Secret", name, Origin::Secret(name.to_owned()))
        } else {
            panic!("envFrom entries must be configMapRef or secretRef")
        };
        let object = m.find(kind, name).unwrap_or_else(|| panic!("envFrom names {kind} {name}, not in {DIR}"));
        for (key, value) in key_values(&object.yaml) {
            env.insert(key, EnvVar { value: scalar(value).unwrap_or_default(), origin: origin.clone() });
        }
    }
    for var in list(&m.container()["env"]) {
        let name = string(&var["name"]).expect("env entries have a name").to_owned();
        let from = &var["valueFrom"];
        let (value, origin) = if let Some(value) = scalar(&var["value"]) {
            (value, Origin::Inline)
        } else if let Some(secret) = string(&from["secretKeyRef"]["name"]) {
            let key = string(&from["secretKeyRef"]["key"]).unwrap_or_default();
            let value = m
                .find("Secret", secret)
                .and_then(|s| key_values(&s.yaml).into_iter().find(|(k, _)| k == key).and_then(|(_, v)| scalar(v)));
            (value.unwrap_or_default(), Origin::Secret(secret.to_owned()))
        } else if let Some(config_map) = string(&from["configMapKeyRef"]["name"]) {
            let key = string(&from["configMapKeyRef"]["key"]).unwrap_or_default();
            let value = m
                .find("ConfigMap", config_map)
                .and_then(|c| key_values(&c.yaml).into_iter().find(|(k, _)| k == key).and_then(|(_, v)| scalar(v)));
            (value.unwrap_or_default(), Origin::ConfigMap(config_map.to_owned()))
        } else {
            (String::new(), Origin::Inline)
        };
        env.insert(name, EnvVar { value, origin });
    }
    env
}

fn value<'a>(env: &'a BTreeMap<String, EnvVar>, name: &str) -> Option<&'a str> {
    env.get(name).map(|v| v.value.as_str()).filter(|v| !v.trim().is_empty())
}

/// The settings the mediator knows: the keys of mediator-config/settings.toml.
fn setting_names() -> BTreeSet<String> {
    let table: toml::Table = read("mediator-config/settings.toml").parse().expect("settings.toml is TOML");
    table.keys().cloned().collect()
}

// ---------------------------------------------------------------- volumes

struct Mount<'a> {
    path: String,
    read_only: bool,
    volume_name: String,
    volume: &'a Yaml,
}

fn mounts(m: &Manifests) -> Vec<Mount<'_>> {
    let volumes = list(&m.pod()["spec"]["volumes"]);
    list(&m.container()["volumeMounts"])
        .iter()
        .map(|mount| {
            let name = string(&mount["name"]).expect("volumeMounts have a name");
            let volume = volumes
                .iter()
                .find(|v| string(&v["name"]) == Some(name))
                .unwrap_or_else(|| panic!("volumeMount {name} names no volume of the pod"));
            Mount {
                path: string(&mount["mountPath"])
                    .expect("volumeMounts have a mountPath")
                    .trim_end_matches('/')
                    .to_owned(),
                read_only: mount["readOnly"].as_bool().unwrap_or(false),
                volume_name: name.to_owned(),
                volume,
            }
        })
        .collect()
}

/// The mount holding `file` (the deepest one) and the file's path inside it.
fn mount_of<'a, 'b>(mounts: &'b [Mount<'a>], file: &str) -> Option<(&'b Mount<'a>, String)> {
    mounts
        .iter()
        .filter_map(|mount| file.strip_prefix(&format!("{}/", mount.path)).map(|rest| (mount, rest.to_owned())))
        .max_by_key(|(mount, _)| mount.path.len())
}

/// The ConfigMap (or Secret) key a file of a configMap (secret) volume comes from.
fn volume_key(source: &Yaml, relative: &str) -> Option<String> {
    match source["items"].as_vec() {
        Some(items) => items
            .iter()
            .find(|item| string(&item["path"]) == Some(relative))
            .and_then(|item| string(&item["key"]).map(str::to_owned)),
        None => (!relative.contains('/')).then(|| relative.to_owned()),
    }
}

/// An effective security setting: the container's, else the pod's.
fn security<'a>(m: &'a Manifests, key: &str) -> &'a Yaml {
    let container = &m.container()["securityContext"][key];
    if container.is_badvalue() { &m.pod()["spec"]["securityContext"][key] } else { container }
}

// ---------------------------------------------------------------- the tests

#[test]
fn every_object_parses_and_lives_in_one_namespace() {
    let m = manifests();
    let namespaces: BTreeSet<&str> = m.all("Namespace").iter().map(|n| n.name()).collect();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for object in m.objects.iter().filter(|o| o.kind() != "Namespace") {
        match string(&object.yaml["metadata"]["namespace"]) {
            Some(ns) => {
                used.insert(ns.to_owned());
            }
            None => problems.push(format!("{}: {} {} names no namespace", object.file, object.kind(), object.name())),
        }
    }
    if used.len() > 1 {
        problems.push(format!("the objects use several namespaces: {used:?}"));
    }
    for ns in &used {
        if !namespaces.is_empty() && !namespaces.contains(ns.as_str()) {
            problems.push(format!("namespace {ns} is not the one namespace.yaml creates ({namespaces:?})"));
        }
    }
    assert_no_problems("namespaces", problems);
}

/// Kubernetes refuses ConfigMap data, labels and annotations that are not strings (`PORT: 6000`
/// unquoted is an integer, and the API server rejects the object).
#[test]
fn string_values_are_strings() {
    let m = manifests();
    let mut problems = Vec::new();
    for object in &m.objects {
        let mut maps = vec![("metadata.labels", &object.yaml["metadata"]["labels"])];
        maps.push(("metadata.annotations", &object.yaml["metadata"]["annotations"]));
        let template = &object.yaml["spec"]["template"]["metadata"];
        maps.push(("spec.template.metadata.labels", &template["labels"]));
        maps.push(("spec.template.metadata.annotations", &template["annotations"]));
        if matches!(object.kind(), "ConfigMap" | "Secret") {
            maps.push(("data", &object.yaml["data"]));
            maps.push(("stringData", &object.yaml["stringData"]));
        }
        for (at, map) in maps {
            for (key, value) in entries(map) {
                if !matches!(value, Yaml::String(_)) {
                    problems.push(format!("{} {}: {at}.{key} must be a quoted string", object.kind(), object.name()));
                }
            }
        }
    }
    assert_no_problems("values Kubernetes wants as strings", problems);
}

#[test]
fn every_environment_key_is_a_setting_of_settings_toml() {
    let m = manifests();
    let known = setting_names();
    let mut problems = Vec::new();
    for (name, var) in environment(&m) {
        if !known.contains(&name) {
            problems.push(format!("{name} (from {:?}) is not a setting of mediator-config/settings.toml", var.origin));
        }
    }
    // Secrets are read with envFrom too: every key of every Secret must be a setting.
    for secret in m.all("Secret") {
        for (key, _) in key_values(&secret.yaml) {
            if !known.contains(&key) {
                problems
                    .push(format!("Secret {}: {key} is not a setting of mediator-config/settings.toml", secret.name()));
            }
        }
    }
    assert_no_problems("environment keys", problems);
}

/// Settings holding a credential: passwords, the FHIR bearer token, the OAuth2 client secret.
fn is_secret(name: &str) -> bool {
    name.ends_with("_PASSWORD") || name.ends_with("_SECRET") || name.ends_with("_TOKEN")
}

#[test]
fn passwords_are_only_in_the_secret() {
    let m = manifests();
    let mut problems = Vec::new();
    for config_map in m.all("ConfigMap") {
        for (key, _) in key_values(&config_map.yaml) {
            if is_secret(&key) {
                problems.push(format!("ConfigMap {} holds {key}: secrets belong in the Secret", config_map.name()));
            }
        }
    }
    let env = environment(&m);
    let passwords: Vec<String> = setting_names().into_iter().filter(|k| is_secret(k)).collect();
    assert!(passwords.len() >= 3, "settings.toml declares the passwords: {passwords:?}");
    for name in &passwords {
        match env.get(name).map(|v| &v.origin) {
            Some(Origin::Secret(_)) => {}
            Some(other) => problems.push(format!("{name} comes from {other:?}, not from a Secret")),
            None => {
                problems.push(format!("{name} is not provided by the Secret (the example should show every secret)"))
            }
        }
    }
    for (name, var) in &env {
        if is_secret(name) && !matches!(var.origin, Origin::Secret(_)) {
            problems.push(format!("{name} is set from {:?}", var.origin));
        }
    }
    let secret = m.only("Secret");
    if !read(&secret.file).contains("EXAMPLE") || secret.yaml["metadata"]["annotations"].is_badvalue() {
        problems.push(format!("{}: the Secret must be marked as an EXAMPLE (comment and annotation)", secret.file));
    }
    if !secret.yaml["data"].is_badvalue() {
        problems
            .push(format!("{}: the example Secret uses stringData, so its placeholders stay readable", secret.file));
    }
    assert_no_problems("passwords", problems);
}

#[test]
fn container_port_port_setting_service_and_route_port_agree() {
    let m = manifests();
    let env = environment(&m);
    let (_, container_port) = m.container_port();
    let service_port = &list(&m.service().yaml["spec"]["ports"]);
    let [service_port] = service_port else { panic!("the Service exposes exactly one port") };
    let mut problems = Vec::new();
    let port_setting = value(&env, "PORT").and_then(|p| p.parse::<i64>().ok());
    if port_setting != Some(container_port) {
        problems.push(format!("PORT is {port_setting:?}, the containerPort {container_port}"));
    }
    match m.resolve_port(&service_port["targetPort"]) {
        Some(target) if target == container_port => {}
        other => {
            problems.push(format!("the Service's targetPort reaches {other:?}, not the containerPort {container_port}"))
        }
    }
    let route_port = value(&env, "MEDIATOR_ROUTE_PORT").and_then(|p| p.parse::<i64>().ok());
    if route_port != Some(container_port) {
        problems.push(format!("MEDIATOR_ROUTE_PORT is {route_port:?}, the containerPort {container_port}"));
    }
    if service_port["port"].as_i64() != route_port {
        problems.push(format!(
            "OpenHIM routes to MEDIATOR_ROUTE_PORT {route_port:?} but the Service listens on {:?}",
            scalar(&service_port["port"])
        ));
    }
    let scraped = scalar(&m.pod()["metadata"]["annotations"]["prometheus.io/port"]);
    if scraped.as_deref().is_some_and(|p| p != container_port.to_string()) {
        problems.push(format!("prometheus.io/port {scraped:?} is not the containerPort {container_port}"));
    }
    match value(&env, "HOST") {
        Some("0.0.0.0" | "::") => {}
        other => {
            problems.push(format!("HOST is {other:?}: the Service reaches the pod only when it binds every interface"))
        }
    }
    assert_no_problems("ports", problems);
}

#[test]
fn route_host_is_the_dns_name_of_the_service_that_selects_the_pods() {
    let m = manifests();
    let env = environment(&m);
    let service = m.service();
    let (name, namespace) = (service.name(), string(&service.yaml["metadata"]["namespace"]).unwrap_or("default"));
    let dns_names = [
        format!("{name}.{namespace}.svc.cluster.local"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}"),
    ];
    let mut problems = Vec::new();
    let host = value(&env, "MEDIATOR_ROUTE_HOST");
    if !host.is_some_and(|h| dns_names.iter().any(|d| d == h)) {
        problems.push(format!("MEDIATOR_ROUTE_HOST is {host:?}, not the Service's DNS name ({})", dns_names[0]));
    }
    if !matches!(string(&service.yaml["spec"]["type"]), None | Some("ClusterIP")) {
        problems.push("the Service must be a ClusterIP".into());
    }
    let labels = &m.pod()["metadata"]["labels"];
    let selects = |selector: &Yaml, who: &str, problems: &mut Vec<String>| {
        let pairs = entries(selector);
        if pairs.is_empty() {
            problems.push(format!("{who} has no selector"));
        }
        for (key, wanted) in pairs {
            if scalar(&labels[key.as_str()]) != scalar(wanted) {
                problems.push(format!("{who} selects {key}={:?}, which the pods do not carry", scalar(wanted)));
            }
        }
    };
    selects(&service.yaml["spec"]["selector"], "the Service", &mut problems);
    selects(&m.deployment().yaml["spec"]["selector"]["matchLabels"], "the Deployment", &mut problems);
    for pdb in m.all("PodDisruptionBudget") {
        selects(&pdb.yaml["spec"]["selector"]["matchLabels"], "the PodDisruptionBudget", &mut problems);
    }
    assert_no_problems("route host and selectors", problems);
}

#[test]
fn probes_hit_the_health_endpoints_on_the_container_port() {
    let m = manifests();
    let (_, container_port) = m.container_port();
    let routes = read("src/routes/mod.rs");
    let mut problems = Vec::new();
    for (probe, path) in [("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")] {
        let get = &m.container()[probe]["httpGet"];
        if string(&get["path"]) != Some(path) {
            problems.push(format!("{probe} asks {:?}, not {path}", scalar(&get["path"])));
        }
        if m.resolve_port(&get["port"]) != Some(container_port) {
            problems.push(format!("{probe} probes port {:?}, not {container_port}", scalar(&get["port"])));
        }
        if !routes.contains(&format!(".route(\"{path}\"")) {
            problems.push(format!("src/routes/mod.rs no longer serves {path}"));
        }
    }
    // /health/ready probes FHIR and CHT, each for up to 2 s (src/routes/status.rs).
    let timeout = m.container()["readinessProbe"]["timeoutSeconds"].as_i64().unwrap_or(1);
    if timeout < 3 {
        problems.push(format!("readinessProbe.timeoutSeconds {timeout} is shorter than the 2 s upstream probes"));
    }
    assert_no_problems("probes", problems);
}

#[test]
fn the_dead_letter_store_lies_on_a_writable_volume_of_a_read_only_container() {
    let m = manifests();
    let env = environment(&m);
    let mounts = mounts(&m);
    let mut problems = Vec::new();
    if security(&m, "readOnlyRootFilesystem").as_bool() != Some(true) {
        problems.push("readOnlyRootFilesystem must be true".into());
    }
    let db = value(&env, "DEAD_LETTER_DB").unwrap_or_default();
    if !db.starts_with('/') {
        problems.push(format!("DEAD_LETTER_DB {db:?} must be an absolute path on a volume"));
    }
    match mount_of(&mounts, db) {
        None => {
            problems.push(format!("DEAD_LETTER_DB {db} is on no mounted volume (the root file system is read-only)"))
        }
        Some((mount, _)) => {
            if mount.read_only {
                problems.push(format!("DEAD_LETTER_DB {db} is on the read-only mount {}", mount.path));
            }
            if mount.volume["emptyDir"].is_badvalue() && mount.volume["persistentVolumeClaim"].is_badvalue() {
                problems.push(format!(
                    "DEAD_LETTER_DB {db} is on volume {}, which is neither an emptyDir nor a persistentVolumeClaim",
                    mount.volume_name
                ));
            }
        }
    }
    assert_no_problems("dead-letter store", problems);
}

#[test]
fn the_pod_runs_as_the_images_non_root_user() {
    let m = manifests();
    let mut problems = Vec::new();
    if security(&m, "runAsNonRoot").as_bool() != Some(true) {
        problems.push("runAsNonRoot must be true".into());
    }
    match security(&m, "runAsUser").as_i64() {
        Some(UID) => {}
        other => problems.push(format!("runAsUser is {other:?}, not the image's uid {UID}")),
    }
    if m.container()["securityContext"]["allowPrivilegeEscalation"].as_bool() != Some(false) {
        problems.push("allowPrivilegeEscalation must be false".into());
    }
    assert_no_problems("security context", problems);
}

#[test]
fn mapping_files_come_from_a_mounted_configmap_of_mediator_config_files() {
    let m = manifests();
    let env = environment(&m);
    let mounts = mounts(&m);
    let mut problems = Vec::new();
    for setting in ["FORM_MAPPINGS_FILE", "OUTBOUND_MAPPINGS_FILE"] {
        let Some(file) = value(&env, setting) else {
            problems.push(format!("{setting} is not set: the pods would use the built-in mapping"));
            continue;
        };
        let Some((mount, relative)) = mount_of(&mounts, file) else {
            problems.push(format!("{setting} {file} is on no mounted volume"));
            continue;
        };
        let source = &mount.volume["configMap"];
        let Some(config_map) = string(&source["name"]) else {
            problems.push(format!("{setting} {file} is on volume {}, which is not a ConfigMap", mount.volume_name));
            continue;
        };
        let Some(key) = volume_key(source, &relative) else {
            problems.push(format!("{setting} {file}: no key of ConfigMap {config_map} becomes {relative}"));
            continue;
        };
        let Some(object) = m.find("ConfigMap", config_map) else {
            problems.push(format!("{setting}: ConfigMap {config_map} is not in {DIR}"));
            continue;
        };
        let Some(text) = key_values(&object.yaml).into_iter().find(|(k, _)| *k == key).and_then(|(_, v)| scalar(v))
        else {
            problems.push(format!("{setting}: ConfigMap {config_map} has no key {key}"));
            continue;
        };
        let repo_file = format!("mediator-config/{key}");
        if !repo_path(&repo_file).is_file() {
            problems.push(format!("{setting}: key {key} of ConfigMap {config_map} is not a file of mediator-config/"));
            continue;
        }
        // The mediator's own check, as at a pod's start.
        let parsed = match setting {
            "FORM_MAPPINGS_FILE" => FormMappings::parse(&text).map(drop),
            _ => OutboundMappings::parse(&text).map(drop),
        };
        if let Err(e) = parsed {
            problems.push(format!("{setting}: ConfigMap {config_map} key {key} is refused by the mediator: {e}"));
        }
    }
    assert_no_problems("mapping files", problems);
}

/// The example ConfigMap carries the built-in mappings; a change to mediator-config/ must reach it
/// too, or the example would deploy an older mapping over the one the binary ships.
#[test]
fn the_mapping_configmap_is_a_copy_of_mediator_config() {
    let m = manifests();
    let mounts = mounts(&m);
    let mut problems = Vec::new();
    let volumes: BTreeSet<&str> =
        mounts.iter().filter_map(|mount| string(&mount.volume["configMap"]["name"])).collect();
    for config_map in m.all("ConfigMap").into_iter().filter(|c| volumes.contains(c.name())) {
        for (key, text) in key_values(&config_map.yaml) {
            let repo_file = format!("mediator-config/{key}");
            if !key.ends_with(".json") || !repo_path(&repo_file).is_file() {
                continue;
            }
            let shipped: Json = serde_json::from_str(&read(&repo_file)).unwrap();
            let copy: Result<Json, _> = serde_json::from_str(&scalar(text).unwrap_or_default());
            if copy.as_ref().ok() != Some(&shipped) {
                problems.push(format!(
                    "ConfigMap {} key {key} differs from {repo_file}; refresh it (see the comment in {})",
                    config_map.name(),
                    config_map.file
                ));
            }
        }
    }
    assert_no_problems("mapping copies", problems);
}

#[test]
fn the_ca_bundle_is_a_mounted_file() {
    let m = manifests();
    let env = environment(&m);
    let Some(file) = value(&env, "TLS_CA_BUNDLE") else { return };
    let mounts = mounts(&m);
    let problem = match mount_of(&mounts, file) {
        None => Some(format!("TLS_CA_BUNDLE {file} is on no mounted volume")),
        Some((mount, relative)) => {
            let source = [&mount.volume["configMap"], &mount.volume["secret"]].into_iter().find(|s| !s.is_badvalue());
            match source {
                None => Some(format!("TLS_CA_BUNDLE {file} is on {}, not a ConfigMap or Secret", mount.volume_name)),
                Some(source) if volume_key(source, &relative).is_none() => {
                    Some(format!("TLS_CA_BUNDLE {file}: no key of volume {} becomes {relative}", mount.volume_name))
                }
                Some(_) => None,
            }
        }
    };
    assert_no_problems("CA bundle", problem.into_iter().collect());
}

#[test]
fn the_image_is_this_version() {
    let m = manifests();
    let version = env!("CARGO_PKG_VERSION");
    let image = string(&m.container()["image"]).unwrap_or_default();
    let mut problems = Vec::new();
    if image.rsplit_once(':').map(|(_, tag)| tag) != Some(version) {
        problems.push(format!("image {image} is not tagged {version} (Cargo.toml)"));
    }
    let label = scalar(&m.deployment().yaml["metadata"]["labels"]["app.kubernetes.io/version"]);
    if label.as_deref().is_some_and(|l| l != version) {
        problems.push(format!("app.kubernetes.io/version {label:?} is not {version}"));
    }
    assert_no_problems("version", problems);
}

/// Loads the settings the way a pod does: the environment of the ConfigMap and the Secret, the
/// volume files in place (ConfigMaps of this directory written out; files of volumes created
/// elsewhere, like the CA, stood in for), then the mediator's own parser and registration check.
/// The registration must send OpenHIM to the Service; and with several replicas, the settings
/// must avoid what OpenHIM does not support for a shared urn.
#[test]
fn the_settings_load_and_register_openhim_routes_to_the_service() {
    let m = manifests();
    let env = environment(&m);
    let mounts = mounts(&m);
    let root = std::env::temp_dir().join(format!("k8s-test-{}", uuid::Uuid::new_v4()));
    let mut vars: Vec<(String, String)> = Vec::new();
    for (name, var) in &env {
        let mut value = var.value.clone();
        if let Some((mount, relative)) = mount_of(&mounts, &var.value) {
            let local = root.join(&mount.volume_name).join(&relative);
            std::fs::create_dir_all(local.parent().unwrap()).unwrap();
            let config_map = string(&mount.volume["configMap"]["name"]).and_then(|n| m.find("ConfigMap", n));
            let content = config_map.zip(volume_key(&mount.volume["configMap"], &relative)).and_then(|(c, key)| {
                key_values(&c.yaml).into_iter().find(|(k, _)| *k == key).and_then(|(_, v)| scalar(v))
            });
            if mount.volume["emptyDir"].is_badvalue() && mount.volume["persistentVolumeClaim"].is_badvalue() {
                std::fs::write(
                    &local,
                    content.unwrap_or_else(|| "stand-in for a file created outside deploy/k8s".into()),
                )
                .unwrap();
            }
            value = local.to_string_lossy().into_owned();
        }
        vars.push((name.clone(), value));
    }
    let source = Source::load_with_env(None, vars).expect("the environment loads");
    let settings = Settings::from_source(source).unwrap_or_else(|e| panic!("a pod would exit with code 2: {e}"));
    let (_, container_port) = m.container_port();
    assert_eq!(i64::from(settings.server.port), container_port);

    let registration = Registration::from_settings(&settings, settings.server.port)
        .unwrap_or_else(|e| panic!("the registration would be refused: {e}"));
    let host = value(&env, "MEDIATOR_ROUTE_HOST").unwrap_or_default();
    let service_port = list(&m.service().yaml["spec"]["ports"])[0]["port"].as_i64();
    let doc = &registration.document;
    let routes = doc["endpoints"].as_array().into_iter().flatten().chain(
        doc["defaultChannelConfig"].as_array().into_iter().flatten().flat_map(|c| c["routes"].as_array().unwrap()),
    );
    let mut problems = Vec::new();
    for route in routes {
        if route["host"] != host || route["port"].as_i64() != service_port {
            problems
                .push(format!("route {} goes to {}:{}, not the Service", route["name"], route["host"], route["port"]));
        }
    }
    // Every replica may install channels and apply console config: the mediator installs only
    // missing channels and asks for the config on every heartbeat.
    if !settings.openhim.register {
        problems.push("OPENHIM_REGISTER is false: OpenHIM would never see the mediator".into());
    }
    let _ = std::fs::remove_dir_all(&root);
    assert_no_problems("settings as a pod loads them", problems);
}
