// POST /api/v1/users and /api/v2/users (JSON only), after cht-core 4.22
// shared-libs/user-management/src/users.js createUser / createUsers and
// roles.js: the CouchDB user in `_users` (its roles plus `mm-online` when the
// roles make it an online user, see auth.isOffline), the `user-settings` doc
// in medic, and the user's place and contact (existing ids or new objects).
// Not implemented: CSV bodies, token login, OIDC, the bulk-upload log doc.

import { CouchError } from './couch.mjs';
import { ONLINE_ROLE, isOffline, rolesHaveAllPermissions } from './auth.mjs';
import { minifyLineage } from './lineage.mjs';

const USER_PREFIX = 'org.couchdb.user:';
const USERNAME_ALLOWED_CHARS = /^[a-z0-9_-]+$/;
const PASSWORD_MINIMUM_LENGTH = 8;
const PASSWORD_MINIMUM_SCORE = 50;

// users.js error400: with a translation key the error's message becomes an
// object, which CHT's serverUtils.error sends as the JSON `error` value.
const error400 = (msg, key, params) => {
  const err = new Error(msg);
  err.code = 400;
  if (typeof key === 'string') {
    err.message = { message: msg, translationKey: key, translationParams: params };
  }
  return err;
};

// simple-password-tester (what CHT uses): length + 2 x distinct characters +
// 15 x (kinds of characters - 1), kinds = digits, lower case, upper case, other
export const passwordScore = (pass) => {
  if (typeof pass !== 'string') {
    return 0;
  }
  const kinds = [/\d/, /[a-z]/, /[A-Z]/, /\W/].filter((re) => re.test(pass)).length;
  return pass.length + 2 * new Set(pass).size + 15 * (kinds - 1);
};

const validatePassword = (password) => {
  if (password?.length < PASSWORD_MINIMUM_LENGTH) {
    return error400(
      `The password must be at least ${PASSWORD_MINIMUM_LENGTH} characters long.`,
      'password.length.minimum',
      { minimum: PASSWORD_MINIMUM_LENGTH },
    );
  }
  if (passwordScore(password) < PASSWORD_MINIMUM_SCORE) {
    return error400(
      'The password is too easy to guess. Include a range of types of characters to increase the score.',
      'password.weak',
    );
  }
};

const getDocId = (doc) => (typeof doc === 'string' ? doc : doc && typeof doc === 'object' ? doc._id : undefined);
const isInvalidProp = (data, prop) => {
  const value = data[prop];
  if (!value) {
    return true;
  }
  if (Array.isArray(value)) {
    return value.filter((v) => v).length === 0;
  }
  if (typeof value === 'object') {
    return Object.values(value).filter((v) => v).length === 0;
  }
  return false;
};

export function usersFor({ couch, medic, getSettings, contacts }) {
  const usersDb = couch.db('_users');

  const missingFields = (data) => {
    const required = ['username'];
    if (!data.oidc_username) {
      required.push('password');
    }
    const roles = data.roles || (data.type ? [data.type] : undefined);
    if (!roles) {
      required.push('type or roles');
    } else if (isOffline(getSettings(), roles)) {
      required.push('place', 'contact');
    }
    return required.filter((prop) => isInvalidProp(data, prop));
  };

  const validateNewUsername = async (username) => {
    if (!USERNAME_ALLOWED_CHARS.test(username)) {
      throw error400(
        'Invalid user name. Valid characters are lower case letters, numbers, underscore (_), and hyphen (-).',
        'username.invalid',
      );
    }
    for (const db of [usersDb, medic]) {
      if (await db.get(USER_PREFIX + username)) {
        throw error400(`Username "${username}" already taken.`, 'username.taken', { username });
      }
    }
  };

  const hasParent = (facility, id) => {
    for (let p = facility; p; p = p.parent) {
      if (p._id === id) {
        return true;
      }
    }
    return false;
  };

  // users.js validateContact (for an existing contact id): a contact that
  // does not exist is left to getOrCreatePerson, which answers 404
  // "Failed to find person."
  const validateContact = async (id, placeId) => {
    const found = await medic.get(id);
    if (!found || !(contacts.isPerson(found) || contacts.isPlace(found))) {
      return null;
    }
    if (!contacts.isPerson(found)) {
      throw error400('Wrong type, contact is not a person.', 'contact.type.wrong');
    }
    if (!hasParent(found, placeId)) {
      throw error400('Contact is not within place.', 'configuration.user.place.contact');
    }
    return found;
  };

  // roles.js getRolesUpdates: add or remove mm-online
  const rolesUpdate = (roles) => {
    if (!Array.isArray(roles)) {
      return roles;
    }
    const next = [...roles];
    const index = next.indexOf(ONLINE_ROLE);
    if (isOffline(getSettings(), next)) {
      if (index !== -1) {
        next.splice(index, 1);
      }
    } else if (index === -1) {
      next.push(ONLINE_ROLE);
    }
    return next;
  };

  const createUserEntities = async (data) => {
    const response = {};
    // a place created along with the user gets the user's contact as its primary contact
    const placeIsNew = !!data.place && typeof data.place === 'object' && !data.place._rev;
    await validateNewUsername(data.username);

    if (data.place) {
      data.place = await contacts.getOrCreatePlace(data.place);
    }
    if (data.contact) {
      const contactId = getDocId(data.contact);
      if (contactId) {
        await validateContact(contactId, getDocId(data.place));
      } else if (data.contact.parent) {
        const place = await contacts.getPlace(getDocId(data.contact.parent));
        if (!hasParent(place, getDocId(data.place))) {
          throw error400('Contact is not within place.', 'configuration.user.place.contact');
        }
        data.contact.parent = minifyLineage(place);
      } else {
        data.contact.parent = minifyLineage(data.place);
      }
      const person = await contacts.getOrCreatePerson(data.contact);
      data.contact = person;
      response.contact = { id: person._id, rev: person._rev };
    }
    if (data.place && placeIsNew) {
      const place = await medic.get(data.place._id);
      place.contact = minifyLineage(data.contact);
      await medic.put(place);
    }

    const roles = rolesUpdate(data.roles || (data.type ? [data.type] : undefined));
    const facilityId = data.place ? [getDocId(data.place)].filter(Boolean) : undefined;
    const contactId = data.contact ? getDocId(data.contact) : undefined;
    const common = (doc) => {
      if (roles) {
        doc.roles = roles;
      }
      if (data.place !== undefined) {
        doc.facility_id = facilityId && facilityId.length ? facilityId : null;
      }
      if (data.contact !== undefined) {
        doc.contact_id = contactId ?? null;
      }
      return doc;
    };

    const user = { _id: USER_PREFIX + data.username, name: data.username, type: 'user' };
    if (data.password) {
      user.password_change_required = data.password_change_required === false
        ? false
        : !rolesHaveAllPermissions(getSettings(), roles, ['can_skip_password_change']);
    }
    for (const key of ['password', 'known', 'oidc_username']) {
      if (data[key] !== undefined) {
        user[key] = data[key];
      }
    }
    const savedUser = await usersDb.put(common(user));
    if (savedUser.conflict) {
      throw error400(`Username "${data.username}" already taken.`, 'username.taken', { username: data.username });
    }
    response.user = { id: savedUser.id, rev: savedUser.rev };

    const settings = { _id: USER_PREFIX + data.username, name: data.username, type: 'user-settings' };
    for (const key of ['fullname', 'email', 'phone', 'known', 'external_id']) {
      if (data[key] !== undefined) {
        settings[key] = data[key];
      }
    }
    const savedSettings = await medic.put(common(settings));
    response['user-settings'] = { id: savedSettings.id, rev: savedSettings.rev };
    return response;
  };

  const createUser = async (data) => {
    if (!data || typeof data !== 'object') {
      throw error400('Missing required fields: username, password, type or roles', 'fields.required',
        { fields: 'username, password, type or roles' });
    }
    const missing = missingFields(data);
    if (missing.length) {
      throw error400('Missing required fields: ' + missing.join(', '), 'fields.required', { fields: missing.join(', ') });
    }
    const passwordError = validatePassword(data.password);
    if (passwordError) {
      throw passwordError;
    }
    return createUserEntities({ ...data });
  };

  // an array: one answer per user, {error: <message>} for the failed ones
  const createUsers = async (body) => {
    if (!Array.isArray(body)) {
      return createUser(body);
    }
    const responses = [];
    for (const data of body) {
      try {
        const missing = missingFields(data || {});
        if (missing.length) {
          throw new Error('Missing required fields: ' + missing.join(', '));
        }
        const passwordError = validatePassword(data.password);
        if (passwordError) {
          throw passwordError;
        }
        responses.push(await createUserEntities({ ...data }));
      } catch (err) {
        if (err instanceof CouchError) {
          throw err;
        }
        responses.push({ error: err.message });
      }
    }
    return responses;
  };

  return { createUser, createUsers };
}
