//! Deterministic FHIR ids from CHT ids, so every redelivery writes the same resources.
//! A CHT id that is a valid FHIR id (`[A-Za-z0-9-.]{1,64}`, not all digits — some servers refuse
//! numeric client ids) is used as it is; anything else becomes a UUID v5 of it.

use uuid::Uuid;

use crate::fhir::client::is_valid_id;

/// Namespace of the mediator's UUID v5 ids (fixed forever: changing it would duplicate data).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_4a0e_9a57_4f0b_8e2f_2d0c_5b7a_9e31);

/// The FHIR id of the resource that represents CHT document `cht_id`.
pub fn resource_id(cht_id: &str) -> String {
    if is_valid_id(cht_id) && !cht_id.bytes().all(|b| b.is_ascii_digit()) {
        cht_id.to_owned()
    } else {
        Uuid::new_v5(&NAMESPACE, cht_id.as_bytes()).to_string()
    }
}

/// The FHIR id of a resource derived from a CHT document (an Observation of one answer, the
/// Task of a referral): a UUID v5 of the parts.
pub fn derived_id(parts: &[&str]) -> String {
    Uuid::new_v5(&NAMESPACE, parts.join("\u{1f}").as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_kept_and_others_mapped_stably() {
        assert_eq!(resource_id("3f2a1c9e-1b2c-4d5e-8f90-123456789abc"), "3f2a1c9e-1b2c-4d5e-8f90-123456789abc");
        let mapped = resource_id("org.couchdb.user:amina");
        assert_eq!(mapped, resource_id("org.couchdb.user:amina"));
        assert!(crate::fhir::client::is_valid_id(&mapped));
        assert_ne!(resource_id("12345"), "12345");
        assert_ne!(derived_id(&["r1", "obs", "a"]), derived_id(&["r1", "obs", "b"]));
        assert_ne!(derived_id(&["r1a", "b"]), derived_id(&["r1", "ab"]), "parts are separated");
    }
}
