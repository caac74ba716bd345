// POST /api/v1/people and /api/v1/places, after cht-core's people/places
// controllers: validate, resolve or create the place/parent, store the
// minified lineage ({_id, parent: {_id, ...}}), answer {ok, id, rev}.

import { HARDCODED_TYPES, minifyLineage } from './lineage.mjs';

// CHT's default hierarchy, used when app_settings has no contact_types.
const DEFAULT_CONTACT_TYPES = [
  { id: 'district_hospital' },
  { id: 'health_center', parents: ['district_hospital'] },
  { id: 'clinic', parents: ['health_center'] },
  { id: 'person', parents: ['district_hospital', 'health_center', 'clinic'], person: true },
];

const bad = (message, code = 400) => Object.assign(new Error(message), { code });

const isDateStrValid = (v) => !Number.isNaN(parseDate(v).valueOf());
const parseDate = (v) => {
  if (typeof v === 'number' || /^\d+$/.test(String(v))) {
    return new Date(Number(v));
  }
  return new Date(v);
};

export function contactsFor(medic, getSettings, lineage) {
  const types = () => {
    const configured = getSettings().contact_types;
    return Array.isArray(configured) && configured.length ? configured : DEFAULT_CONTACT_TYPES;
  };
  const typeId = (doc) => (doc.type === 'contact' ? doc.contact_type : doc.type);
  const typeOf = (doc) => types().find((t) => t.id === typeId(doc));
  const isPerson = (doc) => !!(typeOf(doc) && typeOf(doc).person);
  const isPlace = (doc) => !!(typeOf(doc) && !typeOf(doc).person);

  // Custom (configurable hierarchy) types are stored as
  // {type: 'contact', contact_type: <id>}, hardcoded ones keep `type`.
  const storeType = (doc) => {
    if (doc.type !== 'contact' && !HARDCODED_TYPES.includes(doc.type)) {
      doc.contact_type = doc.type;
      doc.type = 'contact';
    }
  };

  const getHydrated = async (id, check, notFound) => {
    const docs = await lineage.fetchHydratedDocs([id]);
    if (!docs.length || !check(docs[0])) {
      throw bad(notFound, 404);
    }
    return docs[0];
  };
  const getPerson = (id) => getHydrated(id, isPerson, 'Failed to find person.');
  const getPlace = (id) => getHydrated(id, isPlace, 'Failed to find place.');

  const validatePerson = (obj) => {
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
      return 'Person must be an object.';
    }
    if (!isPerson(obj)) {
      return 'Wrong type, this is not a person.';
    }
    if (obj.name === undefined) {
      return 'Person is missing a "name" property.';
    }
    if (typeof obj.name !== 'string') {
      return 'Property "name" must be a string.';
    }
    if (obj.reported_date !== undefined && !isDateStrValid(obj.reported_date)) {
      return 'Reported date is invalid: ' + obj.reported_date;
    }
  };

  const validatePlace = (place) => {
    if (!place || typeof place !== 'object' || Array.isArray(place)) {
      throw bad('Place must be an object.');
    }
    const placeId = place._id || '';
    if (!isPlace(place)) {
      throw bad(`Wrong type, object ${placeId} is not a place.`);
    }
    if (place.name === undefined) {
      throw bad(`Place ${placeId} is missing a "name" property.`);
    }
    if (place.reported_date !== undefined && !isDateStrValid(place.reported_date)) {
      throw bad(`Reported date on place ${placeId} is invalid: ${place.reported_date}`);
    }
    if (typeof place.name !== 'string') {
      throw bad(`Property "name" on place ${placeId} must be a string.`);
    }
    const def = typeOf(place);
    if (def.parents && def.parents.length) {
      if (!place.parent) {
        throw bad(`Place ${placeId} is missing a "parent" property.`);
      }
      if (!def.parents.includes(typeId(place.parent))) {
        throw bad(`${typeId(place)} ${placeId} should have one of the following parent types: "${def.parents.join(', ')}".`);
      }
    }
    if (place.contact && typeof place.contact !== 'string' && typeof place.contact !== 'object') {
      throw bad(`Property "contact" on place ${placeId} must be an object or string.`);
    }
  };

  const createPerson = async (data) => {
    if (!data.type) {
      const def = types().find((t) => t.id === 'person') || types().find((t) => t.person);
      if (def) {
        data.type = def.id;
      }
    }
    const error = validatePerson(data);
    if (error) {
      throw bad(error);
    }
    data.reported_date = (data.reported_date ? parseDate(data.reported_date) : new Date()).valueOf();
    if (data.place) {
      const place = await getOrCreatePlace(data.place);
      data.parent = minifyLineage(place);
      delete data.place;
    }
    storeType(data);
    const r = await medic.post(data);
    return { ok: true, id: r.id, rev: r.rev };
  };

  const getOrCreatePerson = async (data) => {
    if (typeof data === 'string') {
      return getPerson(data);
    }
    if (data && typeof data === 'object' && data._rev === undefined) {
      const r = await createPerson(data);
      return getPerson(r.id);
    }
    throw bad('Person must be a new object or string identifier (UUID).');
  };

  // The place is saved first, then a new contact person is created inside it
  // and the place updated with the contact's minified lineage.
  const createPlace = async (place) => {
    validatePlace(place);
    place.reported_date = (place.reported_date ? parseDate(place.reported_date) : new Date()).valueOf();
    if (place.parent) {
      place.parent = minifyLineage(place.parent);
    }
    const contact = place.contact;
    delete place.contact;
    storeType(place);
    if (contact && typeof contact === 'string') {
      place.contact = minifyLineage(await getPerson(contact));
    }
    const saved = await medic.post(place);
    const result = { ok: true, id: saved.id, rev: saved.rev };
    if (contact && typeof contact === 'object') {
      const person = await getOrCreatePerson({ ...contact, place: saved.id });
      const stored = await medic.get(saved.id);
      stored.contact = minifyLineage(person);
      const updated = await medic.put(stored);
      result.rev = updated.rev;
      result.contact = { id: person._id };
    }
    return result;
  };

  const createPlaces = async (place) => {
    if (!place || typeof place !== 'object' || Array.isArray(place)) {
      throw bad('Place must be an object.');
    }
    if (typeof place.parent === 'string') {
      place.parent = await getPlace(place.parent);
      return createPlace(place);
    }
    if (place.parent && typeof place.parent === 'object' && !place.parent._id) {
      const body = await createPlaces(place.parent);
      place.parent = body.id;
      return createPlaces(place);
    }
    return createPlace(place);
  };

  const getOrCreatePlace = async (place) => {
    if (typeof place === 'string') {
      return getPlace(place);
    }
    if (place && typeof place === 'object' && !place._rev) {
      const r = await createPlaces(place);
      return getPlace(r.id);
    }
    throw bad('Place must be a new object or string identifier (UUID).');
  };

  return { createPerson, createPlace: createPlaces, isPerson, isPlace };
}
