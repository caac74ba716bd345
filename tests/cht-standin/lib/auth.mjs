// Who may do what, as cht-core 4.22 decides it:
// - shared-libs/user-management/src/roles.js: a user is "online" when its
//   roles include the CouchDB admin role `_admin` or `mm-online`; `isOffline`
//   is the rule users.js applies to the roles of a user being created;
// - api/src/auth.js (`check` / `hasAllPermissions`): admins pass, anyone else
//   needs, for every permission asked, one of its roles listed in
//   app_settings.permissions.<permission>;
// - api/src/middleware/authorization.js: the offline-user firewall's answer.

export const ONLINE_ROLE = 'mm-online';
export const DB_ADMIN_ROLE = '_admin'; // CHT 5.1+ also treats a role named `admin` as admin

const rolesOf = (userCtx) => (userCtx && Array.isArray(userCtx.roles) ? userCtx.roles : []);

export const isDbAdmin = (userCtx) => rolesOf(userCtx).includes(DB_ADMIN_ROLE);

export const hasOnlineRole = (roles) =>
  Array.isArray(roles) && roles.some((role) => role === DB_ADMIN_ROLE || role === ONLINE_ROLE);

export const isOnlineOnly = (userCtx) => hasOnlineRole(rolesOf(userCtx));

// users.js decides with this whether a new user is offline (then `mm-online`
// is removed from its roles and place + contact are required) or online
// (`mm-online` added): offline unless it has the admin role, or at least one
// of its roles is configured in app_settings.roles and none of the configured
// ones has a truthy `offline`. Roles missing from app_settings.roles are
// ignored when another one is configured; alone they make the user offline.
export const isOffline = (settings, roles) => {
  const configured = (settings && settings.roles) || {};
  const isConfigured = (role) => Object.prototype.hasOwnProperty.call(configured, role) && !!configured[role];
  const anyConfigured = roles.some(isConfigured);
  return !roles.includes(DB_ADMIN_ROLE) &&
    (!anyConfigured || roles.some((role) => isConfigured(role) && configured[role].offline));
};

// roles.hasPermission for a list of roles (used for the user being created,
// e.g. can_skip_password_change)
export const rolesHaveAllPermissions = (settings, roles, permissions) => {
  if (Array.isArray(roles) && roles.includes(DB_ADMIN_ROLE)) {
    return true;
  }
  if (!permissions || !Array.isArray(roles)) {
    return false;
  }
  const wanted = Array.isArray(permissions) ? permissions : [permissions];
  const configured = (settings && settings.permissions) || {};
  return wanted.every((permission) => {
    const allowed = configured[permission];
    return Array.isArray(allowed) && allowed.some((role) => roles.includes(role));
  });
};

export const hasAllPermissions = (settings, userCtx, permissions) =>
  isDbAdmin(userCtx) || rolesHaveAllPermissions(settings, rolesOf(userCtx), permissions);

// authorization.js FIREWALL_ERROR: always JSON, whatever the Accept header
export const FIREWALL_ERROR = {
  code: 403,
  error: 'forbidden',
  details: 'Offline users are not allowed access to this endpoint',
};
