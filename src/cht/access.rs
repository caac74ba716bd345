//! Whether the mediator's CHT user can do what the mediator does, decided as cht-core decides it
//! (`api/src/auth.js`, `api/src/middleware/authorization.js`): a user is online only as a
//! CouchDB admin or with the role `mm-online` (which CHT adds when a user is created with a role
//! whose `app_settings.roles.<role>.offline` is `false`); a permission is held by an admin, or
//! when one of the user's roles is listed in `app_settings.permissions.<permission>`.

use serde_json::Value;

use crate::json::JsonExt;

/// What the mediator calls needs an online user: `GET/POST /api/v1/hydrate`, `POST /medic/_find`
/// and view queries are refused to offline users.
pub const ONLINE_FOR: &str = "GET /api/v1/hydrate, POST /medic/_find, /medic/_design/*/_view/*";

/// The permissions the mediator's calls need, with the call that needs each.
pub const PERMISSIONS: &[(&str, &str)] = &[
    ("can_create_records", "POST /api/v2/records"),
    // cht-core's API lets a non-admin write through /medic only with can_edit.
    ("can_edit", "DELETE /medic/{id} of a duplicate or broken record, POST /api/v1/people"),
    ("can_create_people", "POST /api/v1/people (patients the EMR registered)"),
];

/// The user's standing: from `GET /_session` and `GET /api/v1/settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub name: String,
    pub roles: Vec<String>,
    pub online: bool,
    /// The needed permissions the user lacks, with the call each is for.
    pub missing: Vec<(&'static str, &'static str)>,
}

impl Access {
    pub fn is_enough(&self) -> bool {
        self.online && self.missing.is_empty()
    }
}

/// The standing of the user of `session` (CouchDB's `/_session` answer) under `settings` (CHT's
/// app_settings).
pub fn assess(session: &Value, settings: &Value) -> Access {
    let ctx = &session["userCtx"];
    let roles: Vec<String> =
        ctx["roles"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
    let admin = roles.iter().any(|r| r == "_admin");
    let online = admin || roles.iter().any(|r| r == "mm-online");
    let granted = |permission: &str| {
        settings
            .at("permissions")
            .at(permission)
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| roles.iter().any(|own| r == own))
    };
    let missing = PERMISSIONS.iter().copied().filter(|(p, _)| !admin && !granted(p)).collect();
    Access { name: ctx["name"].as_str().unwrap_or_default().to_owned(), roles, online, missing }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Value {
        json!({"roles": {"interop": {"name": "usertype.interop", "offline": false}},
               "permissions": {"can_create_records": ["chw", "interop"], "can_edit": ["interop"], "can_create_people": ["interop"]}})
    }

    #[test]
    fn an_online_interop_user_with_its_permissions_is_enough() {
        let session = json!({"userCtx": {"name": "mediator", "roles": ["interop", "mm-online"]}});
        let access = assess(&session, &settings());
        assert!(access.is_enough(), "{access:?}");
    }

    #[test]
    fn a_role_alone_is_not_online_and_a_missing_permission_is_named() {
        // A user created with a role CHT does not know as online has no mm-online: offline.
        let session = json!({"userCtx": {"name": "mediator", "roles": ["interop"]}});
        let access = assess(&session, &json!({"permissions": {}}));
        assert!(!access.online);
        assert_eq!(
            access.missing.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
            ["can_create_records", "can_edit", "can_create_people"]
        );
    }

    #[test]
    fn admins_are_online_and_hold_every_permission() {
        let access = assess(&json!({"userCtx": {"name": "admin", "roles": ["_admin"]}}), &json!({}));
        assert!(access.is_enough());
    }
}
