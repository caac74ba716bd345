//! The deployment files — `Dockerfile`, `.dockerignore`, `docker-compose.yml` and `docker/` —
//! checked against the rest of the repository. There is no Docker engine here (nor in CI), so
//! nothing is built or run: the files are parsed, and the tests catch a stack that cannot work
//! as written (a setting the mediator does not know, a URL naming no reachable service, a
//! client CHT cannot authenticate as, a mount of a missing file), not an image that fails.

mod common;

use common::yaml::scalar;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use cht_fhir_mediator::settings::{Settings, Source};
use regex::Regex;
use serde_json::Value as Json;
use url::Url;
use yaml_rust2::{Yaml, YamlLoader};

const MEDIATOR: &str = "cht-fhir-mediator";
const CONFIGURATOR: &str = "configurator";
const CONFIGURE_SCRIPT: &str = "docker/configure.sh";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn read_json(relative: &str) -> Json {
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"))
}

/// Fails with every problem found, one a line, so one run shows them all.
fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  - {}", problems.join("\n  - "));
}

// ---------------------------------------------------------------- docker-compose.yml

struct Compose {
    root: Yaml,
}

/// One service of the compose file.
#[derive(Clone, Copy)]
struct Service<'a> {
    name: &'a str,
    yaml: &'a Yaml,
}

/// The strings of a YAML list (empty when absent).
fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec().map(|items| items.iter().filter_map(scalar).collect()).unwrap_or_default()
}

impl Compose {
    fn load() -> Self {
        let mut docs = YamlLoader::load_from_str(&read("docker-compose.yml"))
            .unwrap_or_else(|e| panic!("docker-compose.yml is not YAML: {e}"));
        assert_eq!(docs.len(), 1, "docker-compose.yml holds one document");
        Self { root: docs.remove(0) }
    }

    fn services(&self) -> Vec<Service<'_>> {
        let services = self.root["services"].as_hash().expect("docker-compose.yml has services");
        services
            .iter()
            .map(|(name, yaml)| Service { name: name.as_str().expect("service names are strings"), yaml })
            .collect()
    }

    fn service(&self, name: &str) -> Service<'_> {
        self.services().into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no service {name}"))
    }

    /// The one service whose image contains `image` (e.g. `jembi/openhim-core`).
    fn service_with_image(&self, image: &str) -> Service<'_> {
        let found: Vec<_> = self.services().into_iter().filter(|s| s.image().contains(image)).collect();
        assert_eq!(found.len(), 1, "exactly one service runs an image {image}");
        found[0]
    }

    /// The service a host name resolves to inside the stack: by service name or `hostname`.
    fn resolve(&self, host: &str) -> Option<Service<'_>> {
        self.services().into_iter().find(|s| s.name == host || s.yaml["hostname"].as_str() == Some(host))
    }

    fn declared(&self, section: &str) -> BTreeSet<String> {
        self.root[section]
            .as_hash()
            .map(|h| h.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

impl Service<'_> {
    fn image(&self) -> String {
        self.yaml["image"].as_str().map(interpolate).unwrap_or_default()
    }

    /// `environment`, as a map or as a list of `KEY=value`.
    fn env(&self) -> BTreeMap<String, String> {
        let env = &self.yaml["environment"];
        if let Some(map) = env.as_hash() {
            map.iter().map(|(k, v)| (scalar(k).unwrap(), scalar(v).unwrap_or_default())).collect()
        } else {
            strings(env)
                .iter()
                .map(|item| {
                    let (k, v) = item.split_once('=').unwrap_or((item, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        }
    }

    fn env_var(&self, key: &str) -> String {
        self.env().remove(key).unwrap_or_else(|| panic!("service {} sets no {key}", self.name))
    }

    /// The networks it joins (`default` when none is named).
    fn networks(&self) -> BTreeSet<String> {
        let networks = &self.yaml["networks"];
        let names: BTreeSet<String> = match networks.as_hash() {
            Some(map) => map.keys().filter_map(scalar).collect(),
            None => strings(networks).into_iter().collect(),
        };
        if names.is_empty() { BTreeSet::from(["default".to_owned()]) } else { names }
    }

    fn can_reach(&self, other: &Service<'_>) -> bool {
        !self.networks().is_disjoint(&other.networks())
    }

    /// Ports it listens on inside the stack: `expose` and the container side of `ports`.
    fn container_ports(&self) -> BTreeSet<u16> {
        let published = strings(&self.yaml["ports"]).into_iter().map(|p| {
            let p = interpolate(&p);
            p.rsplit(':').next().unwrap().split('/').next().unwrap().to_owned()
        });
        strings(&self.yaml["expose"])
            .into_iter()
            .chain(published)
            .map(|p| p.parse().unwrap_or_else(|_| panic!("{}: port {p} is not a number", self.name)))
            .collect()
    }

    /// `volumes` as (source, target): bind mounts have a source starting with `.` or `/`.
    fn mounts(&self) -> Vec<(String, String)> {
        let mut mounts = Vec::new();
        for item in self.yaml["volumes"].as_vec().into_iter().flatten() {
            if let Some(short) = item.as_str() {
                let mut parts = short.split(':');
                mounts.push((parts.next().unwrap().to_owned(), parts.next().unwrap_or_default().to_owned()));
            } else {
                mounts.push((scalar(&item["source"]).unwrap_or_default(), scalar(&item["target"]).unwrap_or_default()));
            }
        }
        mounts
    }

    /// The repository file behind a path inside the container, through its bind mounts.
    fn host_path(&self, container_path: &str) -> Option<String> {
        self.mounts()
            .into_iter()
            .filter(|(source, _)| source.starts_with('.'))
            .filter_map(|(source, target)| {
                let rest = Path::new(container_path).strip_prefix(&target).ok()?;
                let host = Path::new(source.trim_start_matches("./")).join(rest);
                Some(host.to_string_lossy().trim_end_matches('/').to_owned())
            })
            .max_by_key(String::len)
    }
}

static VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}").unwrap());

/// Compose interpolation as far as a test can take it: `${X:-d}` becomes `d`; a variable
/// without a default becomes `<X>` (its value comes from the operator's env file).
fn interpolate(value: &str) -> String {
    VARIABLE
        .replace_all(value, |c: &regex::Captures<'_>| match c.get(2).map(|m| m.as_str()) {
            Some(":-" | "-") => c[3].to_owned(),
            _ => format!("<{}>", &c[1]),
        })
        .replace("$$", "$")
}

/// A URL naming a host of the stack: not `localhost`, an IP address or a dotted (outside) name.
fn stack_url(value: &str) -> Option<Url> {
    static URL_LIKE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(jdbc:)?[a-z][a-z0-9+.-]*://").unwrap());
    if !URL_LIKE.is_match(value) {
        return None;
    }
    let url = Url::parse(value.trim_start_matches("jdbc:")).ok()?;
    let host = url.host_str()?;
    let inside = host != "localhost" && !host.contains('.') && !host.starts_with('[');
    inside.then_some(url)
}

// ---------------------------------------------------------------- repository facts

/// The settings the mediator reads: the keys of mediator-config/settings.toml.
fn declared_settings() -> BTreeSet<String> {
    let table: toml::Table = read("mediator-config/settings.toml").parse().expect("settings.toml parses");
    table.keys().cloned().collect()
}

fn mediator_registration() -> Json {
    read_json("mediator-config/mediator.json")
}

/// The mediator's default channel whose `urlPattern` matches a path (as OpenHIM matches it).
fn channel_for(path: &str) -> Json {
    let registration = mediator_registration();
    let channels = registration["defaultChannelConfig"].as_array().expect("defaultChannelConfig");
    let matching: Vec<&Json> =
        channels.iter().filter(|c| Regex::new(c["urlPattern"].as_str().unwrap()).unwrap().is_match(path)).collect();
    assert_eq!(matching.len(), 1, "exactly one default channel takes {path}");
    matching[0].clone()
}

fn roles(csv: &str) -> BTreeSet<String> {
    csv.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect()
}

/// The outbound push configs of the CHT snippet (`app_settings.json`).
fn cht_outbound() -> Vec<(String, Json)> {
    let settings = read_json("mediator-config/cht/app_settings.json");
    let outbound = settings["outbound"].as_object().expect("app_settings.json has outbound configs");
    assert!(!outbound.is_empty(), "app_settings.json has outbound configs");
    outbound.iter().map(|(name, config)| (name.clone(), config.clone())).collect()
}

/// Names listed in a bash array assignment of the configurator script, e.g. `REQUIRED_VARS`.
fn script_array(name: &str) -> BTreeSet<String> {
    let script = read(CONFIGURE_SCRIPT);
    let pattern = Regex::new(&format!(r"(?m)^{name}=\(([^)]*)\)")).unwrap();
    let list = pattern.captures(&script).unwrap_or_else(|| panic!("{CONFIGURE_SCRIPT} declares {name}=(...)"));
    list[1].split_whitespace().map(str::to_owned).collect()
}

// ---------------------------------------------------------------- Dockerfile

struct Instruction {
    keyword: String,
    args: String,
}

/// The stages of a Dockerfile (split at `FROM`), continuation lines joined, comments dropped.
fn dockerfile_stages(relative: &str) -> Vec<Vec<Instruction>> {
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    let mut pending = String::new();
    for line in read(relative).lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, args) = pending.split_once(char::is_whitespace).unwrap_or((&pending, ""));
                let instruction = Instruction { keyword: keyword.to_uppercase(), args: args.trim().to_owned() };
                if instruction.keyword == "FROM" {
                    stages.push(Vec::new());
                }
                stages.last_mut().expect("a Dockerfile starts with FROM").push(instruction);
                pending.clear();
            }
        }
    }
    stages
}

fn args_of<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage.iter().filter(|i| i.keyword == keyword).map(|i| i.args.as_str()).collect()
}

/// `ENV` of a stage: `K=V` pairs (quotes removed) or the legacy `ENV K V`.
fn dockerfile_env(stage: &[Instruction]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for args in args_of(stage, "ENV") {
        if !args.split_whitespace().next().unwrap_or_default().contains('=') {
            let (k, v) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
            env.insert(k.to_owned(), v.trim().to_owned());
            continue;
        }
        for pair in args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV K=V");
            env.insert(k.to_owned(), v.trim_matches('"').to_owned());
        }
    }
    env
}

/// The words of an exec-form (`["a", "b"]`) or shell-form instruction.
fn words(args: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(args) {
        Ok(list) => list,
        Err(_) => args.split_whitespace().map(str::to_owned).collect(),
    }
}

fn debian_release(image: &str) -> Option<&'static str> {
    ["bullseye", "bookworm", "trixie"].into_iter().find(|release| image.contains(release))
}

// ================================================================ the mediator's service

#[test]
fn mediator_is_built_from_the_repository_dockerfile() {
    let compose = Compose::load();
    let build = &compose.service(MEDIATOR).yaml["build"];
    assert_eq!(build["context"].as_str(), Some("."), "the mediator builds from the repository root");
    assert_eq!(build["dockerfile"].as_str().unwrap_or("Dockerfile"), "Dockerfile");
    assert!(repo_path("Dockerfile").is_file());
}

#[test]
fn mediator_environment_holds_only_settings_the_mediator_reads() {
    // The mediator ignores variables its settings file does not declare: a misspelt one would
    // silently leave the default in force.
    let declared = declared_settings();
    let unknown: Vec<String> =
        Compose::load().service(MEDIATOR).env().into_keys().filter(|k| !declared.contains(k)).collect();
    assert_no_problems("not settings of mediator-config/settings.toml", unknown);
}

#[test]
fn mediator_accepts_its_container_environment() {
    // The mediator's own settings parser judges the values: booleans, the auth scheme, URLs,
    // a registration without a password.
    let defaults: toml::Table = read("mediator-config/settings.toml").parse().unwrap();
    let runtime = dockerfile_stages("Dockerfile").pop().unwrap();
    let mut env = dockerfile_env(&runtime);
    env.extend(Compose::load().service(MEDIATOR).env().into_iter().map(|(k, v)| (k, interpolate(&v))));
    // A file make-tls.sh writes, not in the repository (see files_the_services_read_...).
    env.remove("TLS_CA_BUNDLE");
    for (key, value) in env.iter_mut().filter(|(_, v)| v.starts_with('<')) {
        // A variable of the operator's env file: stand in a value of the setting's shape.
        let url = defaults.get(key).and_then(toml::Value::as_str).is_some_and(|d| d.starts_with("http"));
        *value = if url { format!("https://deployment.example/{key}") } else { "from-the-env-file".to_owned() };
    }
    let source = Source::load_with_env(None, env).expect("settings load");
    if let Err(e) = Settings::from_source(source) {
        panic!("the mediator refuses the environment docker-compose.yml and the Dockerfile give it: {e}");
    }
}

#[test]
fn openhim_routes_to_where_the_mediator_listens() {
    let compose = Compose::load();
    let mediator = compose.service(MEDIATOR);
    let port = mediator.env_var("PORT");
    assert_eq!(mediator.env_var("MEDIATOR_ROUTE_PORT"), port, "no port mapping between containers");
    assert!(mediator.container_ports().contains(&port.parse().unwrap()), "the service exposes PORT {port}");
    let runtime = dockerfile_stages("Dockerfile").pop().unwrap();
    assert!(
        args_of(&runtime, "EXPOSE").iter().any(|a| a.split_whitespace().any(|p| p == port)),
        "Dockerfile EXPOSEs {port}"
    );

    let route_host = mediator.env_var("MEDIATOR_ROUTE_HOST");
    let target =
        compose.resolve(&route_host).unwrap_or_else(|| panic!("MEDIATOR_ROUTE_HOST {route_host} is no service"));
    assert_eq!(target.name, MEDIATOR, "MEDIATOR_ROUTE_HOST names the mediator itself");
    let openhim = compose.service_with_image("jembi/openhim-core");
    assert!(openhim.can_reach(&mediator), "{} shares a network with the mediator it routes to", openhim.name);
}

#[test]
fn mediator_upstreams_are_the_services_of_the_stack() {
    let compose = Compose::load();
    let mediator = compose.service(MEDIATOR);
    for (setting, image, scheme) in [
        ("OPENHIM_API_URL", "jembi/openhim-core", "https"),
        ("FHIR_URL", "hapiproject/hapi", "http"),
        ("CHT_URL", "medic/cht-api", "http"),
    ] {
        let value = interpolate(&mediator.env_var(setting));
        let url = stack_url(&value).unwrap_or_else(|| panic!("{setting} {value} names no service of the stack"));
        assert_eq!(
            url.host_str(),
            Some(compose.service_with_image(image).name),
            "{setting} points at the {image} service"
        );
        assert_eq!(url.scheme(), scheme, "{setting} scheme");
    }
}

// ================================================================ the whole stack

#[test]
fn every_url_in_the_stack_names_a_service_it_can_reach() {
    // Covers the mediator's upstreams, OpenHIM's MongoDB, HAPI's PostgreSQL, CHT's CouchDB...
    let compose = Compose::load();
    let mut problems = Vec::new();
    for service in compose.services() {
        for (key, raw) in service.env() {
            let Some(url) = stack_url(&interpolate(&raw)) else { continue };
            let host = url.host_str().unwrap();
            let Some(target) = compose.resolve(host) else {
                problems.push(format!("{}: {key} names host {host}, which is no service", service.name));
                continue;
            };
            if !service.can_reach(&target) {
                problems.push(format!("{}: {key} names {host}, on no network it joins", service.name));
            }
            match url.port_or_known_default() {
                Some(port) if !target.container_ports().contains(&port) => {
                    problems.push(format!("{}: {key} uses port {port}, which {host} does not expose", service.name))
                }
                None => problems.push(format!("{}: {key} gives no port", service.name)),
                _ => {}
            }
        }
    }
    assert_no_problems("URLs that cannot work", problems);
}

#[test]
fn secrets_come_from_the_env_file_and_are_required() {
    // A password in the compose file would be committed; `${X:?...}` makes compose refuse to
    // start without it instead of running with an empty one.
    static REQUIRED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]*\}$").unwrap());
    let mut problems = Vec::new();
    for service in Compose::load().services() {
        for (key, value) in service.env() {
            let lower = key.to_lowercase();
            if (lower.contains("password") || lower.contains("secret")) && !REQUIRED.is_match(&value) {
                problems.push(format!("{}: {key} is not a required ${{VARIABLE:?}}", service.name));
            }
            if let Some(url) = stack_url(&interpolate(&value)).filter(|u| u.password().is_some()) {
                if !url.password().unwrap().starts_with("%3C") {
                    problems.push(format!("{}: {key} holds a literal password", service.name));
                }
            }
        }
    }
    assert_no_problems("secrets written into docker-compose.yml", problems);
}

#[test]
fn every_compose_variable_is_documented_in_example_env() {
    // Comment lines are no part of the file compose interpolates.
    let compose: String =
        read("docker-compose.yml").lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let mut defaults: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in VARIABLE.captures_iter(&compose) {
        let default = match c.get(2).map(|m| m.as_str()) {
            Some(":-" | "-") => c[3].to_owned(),
            _ => String::new(),
        };
        defaults.entry(c[1].to_owned()).or_default().insert(default);
    }
    let example: BTreeMap<String, String> = read("docker/example.env")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut problems = Vec::new();
    for (name, seen) in &defaults {
        let given: BTreeSet<&String> = seen.iter().filter(|d| !d.is_empty()).collect();
        if given.len() > 1 {
            problems.push(format!("{name} has different defaults: {given:?}"));
        }
        match example.get(name) {
            None => problems.push(format!("{name} is missing from docker/example.env")),
            Some(value) if !value.is_empty() && given.len() == 1 && !given.contains(value) => {
                problems.push(format!("{name}: example.env says {value}, the compose default is {given:?}"))
            }
            _ => {}
        }
    }
    problems.extend(
        example.keys().filter(|k| !defaults.contains_key(*k)).map(|k| format!("{k} is not used by docker-compose.yml")),
    );
    assert_no_problems("docker/example.env and docker-compose.yml disagree", problems);
}

#[test]
fn every_mount_has_its_source() {
    let compose = Compose::load();
    let volumes = compose.declared("volumes");
    let mut problems = Vec::new();
    for service in compose.services() {
        for (source, target) in service.mounts() {
            if source.starts_with('/') {
                problems.push(format!("{}: {source} is an absolute host path (not portable)", service.name));
            } else if source.starts_with('.') {
                if !repo_path(source.trim_start_matches("./")).exists() {
                    problems.push(format!("{}: mounts {source}, which is not in the repository", service.name));
                }
            } else if !volumes.contains(&source) {
                problems.push(format!("{}: volume {source} (at {target}) is not declared", service.name));
            }
        }
    }
    assert_no_problems("mounts without a source", problems);
}

#[test]
fn files_the_services_read_are_mounted_where_the_repo_or_make_tls_puts_them() {
    let compose = Compose::load();
    // The script's code, not its comments, must write the file.
    let make_tls: String =
        read("docker/make-tls.sh").lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let openhim = compose.service_with_image("jembi/openhim-core").name;
    let mut problems = Vec::new();
    for (service, key) in [
        (MEDIATOR, "TLS_CA_BUNDLE"),
        (CONFIGURATOR, "OPENHIM_CA_BUNDLE"),
        (CONFIGURATOR, "CHT_APP_SETTINGS"),
        (openhim, "certificateManagement_certPath"),
        (openhim, "certificateManagement_keyPath"),
    ] {
        let service = compose.service(service);
        let path = service.env_var(key);
        let Some(host) = service.host_path(&path) else {
            problems.push(format!("{}: {key} {path} is in no bind mount", service.name));
            continue;
        };
        match host.strip_prefix("docker/tls/") {
            // Made by docker/make-tls.sh, never committed.
            Some(made) if !make_tls.contains(made) => problems
                .push(format!("{}: {key} reads docker/tls/{made}, which make-tls.sh does not write", service.name)),
            Some(_) => {}
            None if !repo_path(&host).is_file() => {
                problems.push(format!("{}: {key} reads {host}: no such file", service.name))
            }
            None => {}
        }
    }
    let app_settings = compose.service(CONFIGURATOR).env_var("CHT_APP_SETTINGS");
    assert_eq!(
        compose.service(CONFIGURATOR).host_path(&app_settings).as_deref(),
        Some("mediator-config/cht/app_settings.json"),
        "the configurator uploads the repository's CHT snippet"
    );
    assert_no_problems("files read from mounts", problems);
}

#[test]
fn published_ports_bind_an_explicit_address() {
    // "8080:8080" would listen on every interface of the host; each published port names its
    // address (127.0.0.1 by default).
    let mut problems = Vec::new();
    for service in Compose::load().services() {
        for port in strings(&service.yaml["ports"]) {
            let resolved = interpolate(&port);
            let parts: Vec<&str> = resolved.split(':').collect();
            let address = parts[0];
            if parts.len() != 3 || address.parse::<std::net::IpAddr>().is_err() {
                problems.push(format!("{}: {port} names no bind address", service.name));
            } else if address != "127.0.0.1" && !port.starts_with("${") {
                problems
                    .push(format!("{}: {port} is published beyond localhost without a *_BIND_ADDRESS", service.name));
            }
        }
    }
    assert_no_problems("published ports", problems);
}

#[test]
fn long_running_services_restart_and_rotate_their_logs() {
    let mut problems = Vec::new();
    for service in Compose::load().services().into_iter().filter(|s| s.name != CONFIGURATOR) {
        if !matches!(service.yaml["restart"].as_str(), Some("unless-stopped" | "always")) {
            problems.push(format!("{}: restart is not unless-stopped/always", service.name));
        }
        let logging = &service.yaml["logging"];
        if logging["driver"].as_str() != Some("local") && logging["options"]["max-size"].is_badvalue() {
            problems.push(format!("{}: logs are never rotated", service.name));
        }
    }
    assert_no_problems("long-running services", problems);
}

#[test]
fn console_reaches_the_published_openhim_api() {
    let compose = Compose::load();
    let console = read_json("docker/openhim-console.json");
    let api_port = Url::parse(&compose.service(MEDIATOR).env_var("OPENHIM_API_URL")).unwrap().port().unwrap();
    let openhim = compose.service_with_image("jembi/openhim-core");
    let published = strings(&openhim.yaml["ports"])
        .into_iter()
        .find(|p| p.ends_with(&format!(":{api_port}")))
        .expect("the OpenHIM API is published for the console");
    let parts: Vec<&str> = published.split(':').collect();
    assert_eq!(console["protocol"], "https");
    assert_eq!(console["port"].to_string(), parts[1], "the console calls the API's published port");
    assert!(matches!(console["host"].as_str(), Some("localhost" | "127.0.0.1")), "the API is published on 127.0.0.1");
}

// ================================================================ the configurator

#[test]
fn configurator_gets_the_variables_its_script_reads() {
    let required = script_array("REQUIRED_VARS");
    let known: BTreeSet<String> = required.union(&script_array("OPTIONAL_VARS")).cloned().collect();
    let env = Compose::load().service(CONFIGURATOR).env();
    let mut problems: Vec<String> = required
        .iter()
        .filter(|v| env.get(*v).is_none_or(String::is_empty))
        .map(|v| format!("{v} is not set"))
        .collect();
    problems
        .extend(env.keys().filter(|k| !known.contains(*k)).map(|k| format!("{k} is not read by {CONFIGURE_SCRIPT}")));
    assert_no_problems("configurator environment", problems);
}

#[test]
fn configurator_runs_the_script_after_the_mediator_registers() {
    let compose = Compose::load();
    let configurator = compose.service(CONFIGURATOR);
    let build = &configurator.yaml["build"];
    let context = build["context"].as_str().expect("the configurator is built").trim_start_matches("./");
    let dockerfile = format!("{context}/{}", build["dockerfile"].as_str().unwrap_or("Dockerfile"));
    let stage = dockerfile_stages(&dockerfile).pop().unwrap();
    let script = Path::new(CONFIGURE_SCRIPT).strip_prefix(context).expect("the script is in the build context");
    let script = script.to_str().unwrap();
    assert!(
        args_of(&stage, "COPY").iter().any(|a| a.split_whitespace().next() == Some(script)),
        "{dockerfile} copies {script}"
    );
    assert!(args_of(&stage, "ENTRYPOINT").iter().any(|a| a.contains("configure.sh")), "{dockerfile} runs the script");
    assert!(!configurator.yaml["depends_on"][MEDIATOR].is_badvalue(), "the configurator waits for the mediator");
    assert_eq!(configurator.yaml["restart"].as_str(), Some("no"), "a one-shot is not restarted");
}

#[test]
fn configurator_installs_the_channels_of_this_mediator() {
    let urn = Compose::load().service(CONFIGURATOR).env_var("MEDIATOR_URN");
    assert_eq!(
        Json::from(urn),
        mediator_registration()["urn"],
        "MEDIATOR_URN is the urn of mediator-config/mediator.json"
    );
    let install = Regex::new(r#"api POST "/mediators/\$\(urlencode "\$MEDIATOR_URN"\)/channels""#).unwrap();
    assert!(
        install.is_match(&read(CONFIGURE_SCRIPT)),
        "{CONFIGURE_SCRIPT} posts to /mediators/{{MEDIATOR_URN}}/channels"
    );
}

#[test]
fn cht_pushes_as_the_client_the_configurator_creates_onto_a_channel_that_admits_it() {
    let env = Compose::load().service(CONFIGURATOR).env();
    let client = env["CHT_CLIENT_ID"].as_str();
    let client_roles = roles(&env["CHT_CLIENT_ROLES"]);
    let mut problems = Vec::new();
    for (name, config) in cht_outbound() {
        let destination = &config["destination"];
        let auth = &destination["auth"];
        if auth["username"].as_str() != Some(client) {
            problems.push(format!(
                "outbound {name} authenticates as {}, the configurator creates {client}",
                auth["username"]
            ));
        }
        if auth["password_key"].as_str() != Some(env["CHT_CREDENTIAL_KEY"].as_str()) {
            problems.push(format!("outbound {name}: password_key {} is not CHT_CREDENTIAL_KEY", auth["password_key"]));
        }
        // OpenHIM strips nothing before matching: the channel sees the path CHT posts to.
        let channel = channel_for(destination["path"].as_str().expect("destination.path"));
        let allowed: BTreeSet<String> =
            channel["allow"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
        if client_roles.is_disjoint(&allowed) {
            problems.push(format!(
                "outbound {name}: channel {} allows {allowed:?}, client {client} has {client_roles:?}",
                channel["name"]
            ));
        }
    }
    assert_no_problems("CHT's outbound push would be refused", problems);
}

#[test]
fn emr_client_is_admitted_on_the_fhir_channel() {
    let env = Compose::load().service(CONFIGURATOR).env();
    let channel = channel_for("/mediator/fhir/ServiceRequest");
    let allowed: BTreeSet<String> =
        channel["allow"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    assert!(!roles(&env["EMR_CLIENT_ROLES"]).is_disjoint(&allowed), "{} allows {allowed:?}", channel["name"]);
}

#[test]
fn client_ids_are_not_role_names() {
    // OpenHIM answers 409 to a client whose id is also a role.
    let env = Compose::load().service(CONFIGURATOR).env();
    let mut all_roles = roles(&env["CHT_CLIENT_ROLES"]);
    all_roles.extend(roles(&env["EMR_CLIENT_ROLES"]));
    for channel in mediator_registration()["defaultChannelConfig"].as_array().unwrap() {
        all_roles.extend(channel["allow"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()));
    }
    for id in [interpolate(&env["CHT_CLIENT_ID"]), interpolate(&env["EMR_CLIENT_ID"])] {
        assert!(!all_roles.contains(&id), "client id {id} is also a role");
    }
}

#[test]
fn cht_outbound_reaches_the_openhim_router_inside_the_stack() {
    let compose = Compose::load();
    let openhim = compose.service_with_image("jembi/openhim-core");
    let router_port: u16 = openhim.env().get("router_httpPort").map_or(5001, |p| p.parse().unwrap());
    let pushers = [compose.service_with_image("medic/cht-api"), compose.service_with_image("medic/cht-sentinel")];
    let mut problems = Vec::new();
    for (name, config) in cht_outbound() {
        let base = config["destination"]["base_url"].as_str().expect("destination.base_url");
        let url = Url::parse(base).unwrap();
        if url.scheme() != "http" || url.port() != Some(router_port) {
            problems.push(format!("outbound {name}: {base} is not OpenHIM's HTTP router (port {router_port})"));
        }
        if url.host_str().and_then(|h| compose.resolve(h)).map(|s| s.name) != Some(openhim.name) {
            problems.push(format!("outbound {name}: {base} does not name the {} service", openhim.name));
        }
        for pusher in pushers.iter().filter(|p| !p.can_reach(&openhim)) {
            problems.push(format!("outbound {name}: {} shares no network with {}", pusher.name, openhim.name));
        }
    }
    if !openhim.container_ports().contains(&router_port) {
        problems.push(format!("{} does not expose its router port {router_port}", openhim.name));
    }
    assert_no_problems("CHT cannot push to OpenHIM", problems);
}

// ================================================================ images

#[test]
fn runtime_image_is_non_root_checks_liveness_and_keeps_dead_letters_on_a_volume() {
    let stages = dockerfile_stages("Dockerfile");
    let runtime = stages.last().unwrap();
    let user = args_of(runtime, "USER").pop().expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap();
    assert!(name != "root" && name != "0", "runtime user {user} is not root");

    let healthcheck = args_of(runtime, "HEALTHCHECK").pop().expect("a HEALTHCHECK");
    assert!(
        healthcheck.contains("/health/live") && !healthcheck.starts_with("NONE"),
        "HEALTHCHECK probes /health/live"
    );

    let env = dockerfile_env(runtime);
    let db = env.get("DEAD_LETTER_DB").expect("the runtime stage sets DEAD_LETTER_DB");
    let volumes: Vec<String> = args_of(runtime, "VOLUME").into_iter().flat_map(words).collect();
    let volume = volumes
        .iter()
        .find(|v| Path::new(db).starts_with(v))
        .unwrap_or_else(|| panic!("{db} is in no VOLUME {volumes:?}"));
    let compose = Compose::load();
    assert!(
        compose.service(MEDIATOR).mounts().iter().any(|(source, target)| target == volume && !source.starts_with('.')),
        "docker-compose.yml keeps {volume} on a named volume"
    );
    assert!(declared_settings().contains("DEAD_LETTER_DB"));
    assert_eq!(env.get("HOST").map(String::as_str), Some("0.0.0.0"), "the container listens beyond its loopback");
}

#[test]
fn runtime_image_runs_the_binary_this_crate_builds() {
    let cargo: toml::Table = read("Cargo.toml").parse().unwrap();
    let binary = cargo["bin"][0]["name"].as_str().unwrap();
    let stages = dockerfile_stages("Dockerfile");
    let runtime = stages.last().unwrap();
    let entrypoint = words(args_of(runtime, "ENTRYPOINT").pop().expect("an ENTRYPOINT"));
    assert_eq!(entrypoint, [binary], "ENTRYPOINT is the binary");
    assert_eq!(words(args_of(runtime, "CMD").pop().expect("a CMD")), ["serve"]);
    assert!(args_of(runtime, "COPY").iter().any(|a| a.starts_with("--from=") && a.contains(binary)));
}

#[test]
fn build_stage_copies_everything_the_binary_embeds() {
    // include_str! pulls mediator-config/ and fhir-profiles/ into the binary at compile time.
    static INCLUDE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)""#).unwrap());
    let stages = dockerfile_stages("Dockerfile");
    let build = &stages[0];
    let copied: BTreeSet<String> = args_of(build, "COPY")
        .iter()
        .flat_map(|a| words(a).into_iter().rev().skip(1))
        .map(|s| s.trim_end_matches('/').to_owned())
        .collect();
    let mut needed = BTreeSet::from(["src".to_owned(), "Cargo.toml".to_owned(), "Cargo.lock".to_owned()]);
    let mut dirs = vec![repo_path("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                for c in INCLUDE.captures_iter(&std::fs::read_to_string(&path).unwrap()) {
                    let file = path.parent().unwrap().join(&c[1]);
                    let file = file.canonicalize().unwrap_or_else(|e| panic!("{}: {}: {e}", path.display(), &c[1]));
                    let relative = file.strip_prefix(repo_path("").canonicalize().unwrap()).unwrap();
                    needed.insert(relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned());
                }
            }
        }
    }
    let missing: Vec<String> = needed.difference(&copied).cloned().collect();
    assert_no_problems("the build stage does not COPY", missing);
    assert!(
        args_of(build, "RUN").iter().any(|r| r.contains("cargo build --release --locked")),
        "a locked release build"
    );

    let ignored: BTreeSet<String> =
        read(".dockerignore").lines().map(|l| l.trim().trim_end_matches('/').to_owned()).collect();
    let excluded: Vec<String> = needed.intersection(&ignored).cloned().collect();
    assert_no_problems(".dockerignore excludes build inputs", excluded);
    assert!(ignored.contains("target"), ".dockerignore keeps target/ out of the context");
}

#[test]
fn build_and_runtime_images_share_a_debian_release() {
    // A binary built against a newer glibc than the runtime image's does not start.
    let stages = dockerfile_stages("Dockerfile");
    let from = |stage: &[Instruction]| stage[0].args.split_whitespace().next().unwrap().to_owned();
    let (build, runtime) = (from(&stages[0]), from(stages.last().unwrap()));
    assert!(debian_release(&build).is_some(), "{build} names its Debian release");
    assert_eq!(debian_release(&build), debian_release(&runtime), "{build} vs {runtime}");
}

#[test]
fn deployment_scripts_pass_bash_and_shellcheck() {
    let scripts: Vec<PathBuf> = std::fs::read_dir(repo_path("docker"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    assert!(scripts.len() >= 2, "docker/configure.sh and docker/make-tls.sh");
    for script in &scripts {
        let syntax = Command::new("bash").arg("-n").arg(script).output().expect("bash runs");
        assert!(syntax.status.success(), "bash -n {}: {}", script.display(), String::from_utf8_lossy(&syntax.stderr));
    }
    match Command::new("shellcheck").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let out = Command::new("shellcheck").args(&scripts).output().unwrap();
            assert!(out.status.success(), "shellcheck:\n{}", String::from_utf8_lossy(&out.stdout));
        }
        _ => eprintln!("shellcheck is not installed: only `bash -n` checked docker/*.sh"),
    }
}

// ---------------------------------------------------------------- README

/// An operator configures from the README: every setting the mediator reads has a row in its
/// configuration table, and every console parameter is named in its console section.
#[test]
fn every_setting_and_console_parameter_is_in_the_readme() {
    let readme = read("README.md");
    let table_rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    let missing: Vec<String> = declared_settings()
        .into_iter()
        .filter(|key| {
            !table_rows.iter().any(|row| row.split('|').nth(1).is_some_and(|c| c.contains(&format!("`{key}`"))))
        })
        .collect();
    assert!(missing.is_empty(), "settings without a README row: {missing:?}");
    let console =
        readme.split("### Console configuration").nth(1).expect("a console section").split("\n## ").next().unwrap();
    let registration = mediator_registration();
    let params: Vec<&str> =
        registration["configDefs"].as_array().unwrap().iter().filter_map(|d| d["param"].as_str()).collect();
    let unnamed: Vec<&&str> = params.iter().filter(|p| !console.contains(&format!("`{p}`"))).collect();
    assert!(unnamed.is_empty(), "console parameters the README does not name: {unnamed:?}");
}

#[test]
fn the_compose_hapi_is_the_version_ci_tests_with_its_default_settings() {
    // CI runs HAPI from scripts/stack/hapi/pom.xml; the compose file must deploy that version.
    let pom = read("scripts/stack/hapi/pom.xml");
    let version = pom
        .split("<hapi.version>")
        .nth(1)
        .and_then(|rest| rest.split("</hapi.version>").next())
        .expect("pom.xml sets hapi.version");
    let compose = Compose::load();
    let hapi = compose.service_with_image("hapiproject/hapi");
    let tag = hapi.image().rsplit(':').next().unwrap_or_default().to_owned();
    // The starter's images are tagged v<HAPI version>-<build>.
    assert!(tag.starts_with(&format!("v{version}-")), "{} runs {tag}; CI tests HAPI {version}", hapi.name);
    // The settings CI's `hapi` service runs with are the starter's defaults: the compose file
    // must not change what the tests rely on (client ids, validation).
    let environment = hapi.yaml["environment"].as_hash().map(|h| h.len()).unwrap_or_default();
    for (key, _) in hapi.yaml["environment"].as_hash().into_iter().flatten() {
        let key = key.as_str().unwrap_or_default();
        assert!(
            !key.contains("client_id_strategy") && !key.contains("validation") && !key.contains("allow_"),
            "{key}: CI tests HAPI's defaults there (scripts/stack/services/hapi.sh)"
        );
    }
    assert!(environment > 0);
}
