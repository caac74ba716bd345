// POST /api/v1/people and /api/v1/places, after cht-core 4.22
// shared-libs/contacts/src/people.js and places.js (and
// shared-libs/contact-types-utils): validate, resolve or create the
// place/parent, store the minified lineage ({_id, parent: {_id, ...}}), save
// with a CouchDB POST (so a given `_id` is used, and an `_id` that exists
// already is a 409 conflict), answer CouchDB's {ok, id, rev}.
// The doc is otherwise stored as given: `type` is kept as sent (CHT does not
// turn a configured type into {type: 'contact', contact_type}).

import { CouchError } from './couch.mjs';
import { minifyLineage } from './lineage.mjs';

// Used when app_settings has no contact_types: the hierarchy CHT's default
// configuration ships (a real app_settings always has contact_types).
const DEFAULT_CONTACT_TYPES = [
  { id: 'district_hospital' },
  { id: 'health_center', parents: ['district_hospital'] },
  { id: 'clinic', parents: ['health_center'] },
  { id: 'person', parents: ['district_hospital', 'health_center', 'clinic'], person: true },
];

const fail = (message, code = 400) => Object.assign(new Error(message), { code });

const isObject = (v) => v !== null && (typeof v === 'object' || typeof v === 'function'); // lodash isObject
const isString = (v) => typeof v === 'string';

// libs/utils.js parseDate: moment(value, ['YYYY-MM-DDTHH:mm:ssZ',
// 'YYYY-MM-DDTHH:mm:ss.SSSZ', 'x'], true) -> ms, or NaN when invalid (a plain
// "2024-01-31" is invalid; numbers and digit strings are ms since epoch).
const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}))?(Z|[+-]\d\d(?::?\d\d)?)$/i;
export const parseDate = (value) => {
  const str = String(value);
  if (/^[+-]?\d+(\.\d{1,3})?$/.test(str)) {
    return Math.trunc(Number(str));
  }
  const m = ISO.exec(str);
  if (!m) {
    return NaN;
  }
  const [, y, mo, d, h, mi, s, ms, zone] = m;
  const local = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, ms ? +ms : 0);
  const check = new Date(local);
  if (check.getUTCFullYear() !== +y || check.getUTCMonth() !== +mo - 1 || check.getUTCDate() !== +d ||
      check.getUTCHours() !== +h || check.getUTCMinutes() !== +mi || check.getUTCSeconds() !== +s) {
    return NaN;
  }
  let offsetMin = 0;
  if (zone.toUpperCase() !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    offsetMin = (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0)) * (zone[0] === '-' ? -1 : 1);
  }
  return local - offsetMin * 60 * 1000;
};
const isDateStrValid = (value) => !Number.isNaN(parseDate(value));

// db.medic.post(doc): CouchDB POST /db; an existing _id answers 409
// {error: 'conflict', reason: 'Document update conflict.'}, which PouchDB
// turns into an error with that reason as message and CHT's serverUtils.error
// into 409 "Document update conflict." (CouchDB's wording; pouchdb-server's
// has no full stop).
const post = async (medic, doc) => {
  try {
    return await medic.post(doc);
  } catch (err) {
    if (err instanceof CouchError && err.status === 409) {
      throw fail('Document update conflict.', 409);
    }
    if (err instanceof CouchError && err.status === 400) {
      throw fail((err.body && err.body.reason) || 'Bad request', 400);
    }
    throw err;
  }
};

export function contactsFor(medic, getSettings, lineage) {
  const types = () => {
    const configured = getSettings().contact_types;
    return Array.isArray(configured) && configured.length ? configured : DEFAULT_CONTACT_TYPES;
  };
  const typeId = (doc) => (doc ? (doc.type === 'contact' ? doc.contact_type : doc.type) : undefined);
  const getTypeById = (id) => types().find((t) => t.id === id);
  const getContactType = (doc) => {
    const id = typeId(doc);
    return id && getTypeById(id);
  };
  // contact-types-utils: the hardcoded `person` type is a person even when
  // not configured; a place is a configured non-person type
  const isPerson = (doc) => {
    const id = typeId(doc);
    const type = getTypeById(id) || { id };
    return !!(type.person || type.id === 'person');
  };
  const isPlace = (doc) => {
    const type = getContactType(doc);
    return !!(type && !type.person && type.id !== 'person');
  };
  const defaultPersonType = () => {
    const type = getTypeById('person');
    return type && type.id;
  };

  const getHydrated = async (id, check, notFound) => {
    const docs = await lineage.fetchHydratedDocs([id]);
    if (!docs.length || !check(docs[0])) {
      throw fail(notFound, 404);
    }
    return docs[0];
  };
  const getPerson = (id) => getHydrated(id, isPerson, 'Failed to find person.');
  const getPlace = (id) => getHydrated(id, isPlace, 'Failed to find place.');

  const validatePerson = (obj) => {
    if (!isObject(obj)) {
      return 'Person must be an object.';
    }
    if (!isPerson(obj)) {
      return 'Wrong type, this is not a person.';
    }
    if (obj.name === undefined) {
      return 'Person is missing a "name" property.';
    }
    if (!isString(obj.name)) {
      return 'Property "name" must be a string.';
    }
    if (obj.reported_date !== undefined && !isDateStrValid(obj.reported_date)) {
      return 'Reported date is invalid: ' + obj.reported_date;
    }
  };

  // places.js validatePlace, parents included
  const validatePlace = (place) => {
    if (!isObject(place)) {
      throw fail('Place must be an object.');
    }
    const placeId = place._id || '';
    if (!isPlace(place)) {
      throw fail(`Wrong type, object ${placeId} is not a place.`);
    }
    if (place.name === undefined) {
      throw fail(`Place ${placeId} is missing a "name" property.`);
    }
    if (place.reported_date !== undefined && !isDateStrValid(place.reported_date)) {
      throw fail(`Reported date on place ${placeId} is invalid: ${place.reported_date}`);
    }
    if (!isString(place.name)) {
      throw fail(`Property "name" on place ${placeId} must be a string.`);
    }
    const type = getContactType(place);
    if (type.parents && type.parents.length) {
      if (!place.parent) {
        throw fail(`Place ${placeId} is missing a "parent" property.`);
      }
      const parentType = getContactType(place.parent);
      if (!parentType || !type.parents.includes(parentType.id)) {
        throw fail(`${type.id} "${placeId}" should have one of the following parent types: "${type.parents}".`);
      }
    }
    if (place.contact && !isString(place.contact) && !isObject(place.contact)) {
      throw fail(`Property "contact" on place ${placeId} must be an object or string.`);
    }
    if (isObject(place.parent) && Object.keys(place.parent).length) {
      validatePlace(place.parent);
    }
  };

  const createPerson = async (data) => {
    if (!data.type) {
      const type = defaultPersonType();
      if (type) {
        data.type = type;
      }
    }
    const error = validatePerson(data);
    if (error) {
      throw fail(error);
    }
    data.reported_date = data.reported_date ? parseDate(data.reported_date) : Date.now();
    if (data.place) {
      const place = await getOrCreatePlace(data.place);
      data.parent = minifyLineage(place);
      delete data.place;
    }
    return post(medic, data);
  };

  const getOrCreatePerson = async (data) => {
    if (isString(data)) {
      return getPerson(data);
    }
    if (isObject(data) && data._rev === undefined) {
      const r = await createPerson(data);
      return getPerson(r.id);
    }
    throw fail('Person must be a new object or string identifier (UUID).');
  };

  // places.js preparePlaceContact
  const preparePlaceContact = async (contact) => {
    if (!contact) {
      return {};
    }
    if (isString(contact)) {
      return { exists: true, contact: await getOrCreatePerson(contact) };
    }
    if (!isObject(contact)) {
      throw fail(undefined);
    }
    contact.type = contact.type ?? defaultPersonType();
    const error = validatePerson(contact);
    if (error) {
      throw fail(error);
    }
    return { exists: false, contact };
  };

  // places.js createPlace: an existing contact is stored as its id (a string),
  // a new one is created inside the saved place, then the place is updated
  // with its minified lineage (answer: the update's {id, rev}, no `ok`).
  const createPlace = async (place) => {
    validatePlace(place);
    const { exists: contactExists, contact } = await preparePlaceContact(place.contact);
    delete place.contact;
    place.reported_date = place.reported_date ? parseDate(place.reported_date) : Date.now();
    if (place.parent) {
      place.parent = minifyLineage(place.parent);
    }
    if (!contact) {
      return post(medic, place);
    }
    if (contactExists) {
      place.contact = contact._id;
      const resp = await post(medic, place);
      return { ...resp, contact: { id: contact._id } };
    }
    const saved = await post(medic, place);
    contact.place = saved.id;
    const person = await getOrCreatePerson(contact);
    const stored = await getPlace(saved.id);
    stored.contact = minifyLineage(person);
    stored.parent = minifyLineage(stored.parent);
    const updated = await post(medic, stored);
    return { id: updated.id, rev: updated.rev, contact: { id: person._id } };
  };

  const createPlaces = async (place) => {
    if (isString(place.parent)) {
      place.parent = await getPlace(place.parent);
      return createPlace(place);
    }
    if (isObject(place.parent) && !place.parent._id) {
      const body = await createPlaces(place.parent);
      place.parent = body.id;
      return createPlaces(place);
    }
    return createPlace(place);
  };

  const getOrCreatePlace = async (place) => {
    if (isString(place)) {
      return getPlace(place);
    }
    if (isObject(place) && !place._rev) {
      const r = await createPlaces(place);
      return getPlace(r.id);
    }
    throw fail('Place must be a new object or string identifier (UUID).');
  };

  return {
    createPerson, createPlace: createPlaces, getOrCreatePlace, getOrCreatePerson, getPerson, getPlace,
    isPerson, isPlace,
  };
}
