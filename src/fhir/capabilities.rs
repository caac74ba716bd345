//! How a FHIR server wants to be written to, read off its CapabilityStatement (`GET /metadata`):
//! per resource type, whether it creates a resource under the id the client gives it
//! (`updateCreate`) — then the mediator writes with its deterministic ids (`PUT [type]/[id]`) —
//! or only under ids it assigns itself — then the mediator writes with conditional updates keyed
//! on the identifiers it already writes (`PUT [type]?identifier=system|value`).
//!
//! Servers differ (docs/fhir-servers.md): HFS and HAPI with `client_id_strategy: ALPHANUMERIC`
//! accept client ids (HAPI does not say so: it declares no `updateCreate`), Medplum refuses them to
//! ordinary project clients, Google Cloud Healthcare unless `enableUpdateCreate` is set.

use std::collections::HashMap;

use serde_json::Value;

use crate::json::JsonExt;

/// `FHIR_WRITE_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteSetting {
    /// Per type, from the CapabilityStatement.
    Auto,
    ClientIds,
    Conditional,
}

impl std::str::FromStr for WriteSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "client-ids" => Ok(Self::ClientIds),
            "conditional" => Ok(Self::Conditional),
            _ => Err("expected auto, client-ids or conditional".into()),
        }
    }
}

/// How one resource type is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `PUT [type]/[deterministic id]`.
    ClientIds,
    /// `PUT [type]?identifier=…`, server-assigned ids, `urn:uuid:` references within a transaction.
    Conditional,
}

/// The write mode of every type a CapabilityStatement describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    by_type: HashMap<String, WriteMode>,
    /// `rest.interaction` has `batch`: several reads can go in one round trip.
    pub batch: bool,
}

impl Capabilities {
    /// Reads `rest[mode=server].resource[]`: `updateCreate: true` → client ids; else
    /// `conditionalUpdate: true` → conditional; a type the statement does not describe, or
    /// describes with neither, gets client ids (the server's refusal then says why).
    pub fn from_statement(statement: &Value) -> Self {
        let rest = statement.at("rest").as_array().into_iter().flatten();
        let server = rest.filter(|r| r.at("mode").as_str().is_none_or(|m| m == "server"));
        let mut by_type = HashMap::new();
        for resource in server.flat_map(|r| r.at("resource").as_array().into_iter().flatten()) {
            let Some(kind) = resource.at("type").as_str() else { continue };
            let mode = if resource.at("updateCreate") == true {
                WriteMode::ClientIds
            } else if resource.at("conditionalUpdate") == true {
                WriteMode::Conditional
            } else {
                WriteMode::ClientIds
            };
            by_type.insert(kind.to_owned(), mode);
        }
        let batch = statement.at("rest").as_array().into_iter().flatten().any(|r| {
            r.at("mode").as_str().is_none_or(|m| m == "server")
                && r.at("interaction").as_array().into_iter().flatten().any(|i| i.at("code") == "batch")
        });
        Self { by_type, batch }
    }

    pub fn mode(&self, kind: &str) -> WriteMode {
        self.by_type.get(kind).copied().unwrap_or(WriteMode::ClientIds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn update_create_decides_and_conditional_update_is_the_alternative() {
        let statement = json!({"rest": [{"mode": "server", "resource": [
            {"type": "Patient", "updateCreate": true, "conditionalUpdate": true},
            {"type": "Encounter", "conditionalUpdate": true},
            {"type": "Task"}]}]});
        let caps = Capabilities::from_statement(&statement);
        assert_eq!(caps.mode("Patient"), WriteMode::ClientIds);
        assert_eq!(caps.mode("Encounter"), WriteMode::Conditional);
        assert_eq!(caps.mode("Task"), WriteMode::ClientIds);
        assert_eq!(caps.mode("Observation"), WriteMode::ClientIds, "not described");
        assert_eq!("Conditional".parse::<WriteSetting>(), Ok(WriteSetting::Conditional));
        assert!("sometimes".parse::<WriteSetting>().is_err());
        assert!(!caps.batch, "no batch interaction declared");
        let with_batch =
            json!({"rest": [{"mode": "server", "interaction": [{"code": "transaction"}, {"code": "batch"}]}]});
        assert!(Capabilities::from_statement(&with_batch).batch);
        let client_side = json!({"rest": [{"mode": "client", "interaction": [{"code": "batch"}]}]});
        assert!(!Capabilities::from_statement(&client_side).batch, "a client's batch is not the server's");
    }
}
