// Lineage hydration and minification, following cht-core
// shared-libs/lineage (hydration.js, minify) so `doc` in outbound and the
// hydrate API look exactly as CHT builds them:
// - a contact's `parent` chain becomes full docs, each place's `contact` the
//   full contact doc (whose own parent stays minified);
// - a report's lineage starts at its `contact` (full doc + full parents);
// - reports also get `patient` / `place` (with their lineage) when
//   fields.patient_id | fields.patient_uuid | patient_id, or
//   fields.place_id | place_id is set; short codes are resolved to contact
//   uuids with the medic-client/contacts_by_reference view (as CHT), falling
//   back to the value as a uuid.

const HARDCODED_TYPES = ['district_hospital', 'health_center', 'clinic', 'person'];

const deepCopy = (obj) => JSON.parse(JSON.stringify(obj));
const uniq = (arr) => [...new Set(arr)];
const getId = (item) => item && (typeof item === 'string' ? item : item._id);
const isContact = (doc) => doc && (doc.type === 'contact' || HARDCODED_TYPES.includes(doc.type));
const isReport = (doc) => doc.type === 'data_record';
const getPatientId = (doc) => (doc.fields && (doc.fields.patient_id || doc.fields.patient_uuid)) || doc.patient_id;
const getPlaceId = (doc) => (doc.fields && doc.fields.place_id) || doc.place_id;
const validLinkedDocs = (doc) => isContact(doc) && doc.linked_docs !== null &&
  typeof doc.linked_docs === 'object' && !Array.isArray(doc.linked_docs);

const selfAndParents = (self) => {
  const parents = [];
  let current = self;
  while (current) {
    if (parents.includes(current)) {
      return parents;
    }
    parents.push(current);
    current = current.parent;
  }
  return parents;
};

const extractParentIds = (current) => selfAndParents(current).map((p) => p._id).filter((id) => id);

const getContactById = (contacts, id) => id && contacts.find((c) => c && c._id === id);

const getContactIds = (contacts) => {
  const ids = [];
  for (const doc of contacts) {
    if (!doc) {
      continue;
    }
    const id = getId(doc.contact);
    if (id) {
      ids.push(id);
    }
    if (validLinkedDocs(doc)) {
      for (const key of Object.keys(doc.linked_docs)) {
        const linked = getId(doc.linked_docs[key]);
        if (linked) {
          ids.push(linked);
        }
      }
    }
  }
  return uniq(ids);
};

// {_id, parent: {_id, parent: ...}}
export const minifyLineage = (parent) => {
  if (!parent || !parent._id) {
    return parent;
  }
  const result = { _id: parent._id };
  const up = minifyLineage(parent.parent);
  if (up !== undefined) {
    result.parent = up;
  }
  return result;
};

export function lineageFor(medic) {
  const fetchDocs = async (ids) => {
    const keys = uniq((ids || []).filter((id) => id && typeof id === 'string'));
    if (!keys.length) {
      return [];
    }
    const result = await medic.allDocs({ keys, include_docs: true });
    return result.rows.map((row) => row.doc).filter((doc) => !!doc);
  };

  // shortcode -> contact uuid (or the shortcode itself when no contact has
  // it), with the medic-client/contacts_by_reference view as
  // hydration.js contactUuidByShortcode: keys ['shortcode', <code as given>],
  // the first row whose key matches wins.
  const contactUuidByShortcode = async (shortcodes) => {
    const keys = shortcodes.filter((s) => s).map((s) => ['shortcode', s]);
    const result = keys.length ? await medic.query('medic-client/contacts_by_reference', { keys }) : { rows: [] };
    const idFor = (code) => {
      const row = (result.rows || []).find((r) => r.key[1] === code);
      return row && row.id;
    };
    return new Map(shortcodes.map((s) => [s, idFor(s) || s]));
  };

  const fillParentsInDocs = (doc, lineage) => {
    if (!doc || !lineage.length) {
      return doc;
    }
    let currentParent;
    if (isReport(doc)) {
      currentParent = doc.contact = lineage.shift() || doc.contact;
    } else {
      currentParent = doc;
    }
    const parentIds = extractParentIds(currentParent.parent);
    lineage.forEach((l, i) => {
      currentParent.parent = l ? deepCopy(l) : { _id: parentIds[i] };
      currentParent = currentParent.parent;
    });
    return doc;
  };

  const fillContactsInDocs = (docs, contacts) => {
    if (!contacts || !contacts.length) {
      return;
    }
    for (const doc of docs) {
      if (!doc) {
        continue;
      }
      const contactDoc = getContactById(contacts, getId(doc.contact));
      if (contactDoc) {
        doc.contact = deepCopy(contactDoc);
      }
      if (validLinkedDocs(doc)) {
        for (const key of Object.keys(doc.linked_docs)) {
          const linked = getContactById(contacts, getId(doc.linked_docs[key]));
          if (linked) {
            doc.linked_docs[key] = deepCopy(linked);
          }
        }
      }
    }
  };

  const mergeLineagesIntoDoc = (lineage, patientLineage, placeLineage) => {
    const doc = lineage.shift();
    fillParentsInDocs(doc, lineage);
    if (patientLineage && patientLineage.length) {
      const patientDoc = patientLineage.shift();
      fillParentsInDocs(patientDoc, patientLineage);
      doc.patient = patientDoc;
    }
    if (placeLineage && placeLineage.length) {
      const placeDoc = placeLineage.shift();
      fillParentsInDocs(placeDoc, placeLineage);
      doc.place = placeDoc;
    }
    return doc;
  };

  const collectParentIds = (docs) => {
    const ids = [];
    for (const doc of docs) {
      let parent = doc.parent;
      if (isReport(doc)) {
        const contactId = getId(doc.contact);
        if (!contactId) {
          continue;
        }
        ids.push(contactId);
        parent = doc.contact;
      }
      ids.push(...extractParentIds(parent));
    }
    return uniq(ids);
  };

  const collectLeafContactIds = (docs) => {
    const ids = [];
    for (const doc of docs) {
      const start = isReport(doc) ? doc.contact : doc;
      ids.push(...getContactIds(selfAndParents(start)));
    }
    return uniq(ids);
  };

  const hydrateDocs = async (docs) => {
    if (!docs.length) {
      return [];
    }
    const hydratedDocs = deepCopy(docs);
    const knownDocs = [...hydratedDocs];

    const patientUuids = new Map();
    const placeUuids = new Map();
    const shortcodes = [];
    for (const record of hydratedDocs) {
      if (!isReport(record)) {
        continue;
      }
      const patientId = getPatientId(record);
      const placeId = getPlaceId(record);
      patientUuids.set(record._id, patientId);
      placeUuids.set(record._id, placeId);
      shortcodes.push(patientId, placeId);
    }
    if (shortcodes.some((s) => s)) {
      const map = await contactUuidByShortcode(shortcodes);
      for (const record of hydratedDocs) {
        if (patientUuids.has(record._id)) {
          patientUuids.set(record._id, map.get(patientUuids.get(record._id)));
          placeUuids.set(record._id, map.get(placeUuids.get(record._id)));
        }
      }
    }

    const subjects = await fetchDocs([...placeUuids.values(), ...patientUuids.values()]);
    knownDocs.push(...subjects);

    const firstRound = await fetchDocs(uniq([
      ...collectParentIds(hydratedDocs),
      ...collectLeafContactIds(hydratedDocs),
      ...collectParentIds(subjects),
      ...collectLeafContactIds(subjects),
    ]));
    knownDocs.push(...firstRound);
    const secondRound = await fetchDocs(
      collectLeafContactIds(firstRound).filter((id) => !knownDocs.some((d) => d._id === id)),
    );
    knownDocs.push(...secondRound);

    fillContactsInDocs(knownDocs, knownDocs);
    const reconstructLineage = (docWithLineage, parents) =>
      extractParentIds(docWithLineage).map((id) => getContactById(parents, id));

    for (const doc of hydratedDocs) {
      const report = isReport(doc);
      const lineage = reconstructLineage(report ? doc.contact : doc, knownDocs);
      if (report) {
        lineage.unshift(doc);
      }
      const patientLineage = reconstructLineage(getContactById(knownDocs, patientUuids.get(doc._id)), knownDocs);
      const placeLineage = reconstructLineage(getContactById(knownDocs, placeUuids.get(doc._id)), knownDocs);
      mergeLineagesIntoDoc(lineage, patientLineage, placeLineage);
    }
    return hydratedDocs;
  };

  // /api/v1/hydrate: hydrated docs for the ids that exist (missing and
  // deleted ones are left out, as in lineage.fetchHydratedDocs).
  const fetchHydratedDocs = async (ids) => {
    const docs = await fetchDocs(ids);
    return hydrateDocs(docs);
  };

  return { hydrateDocs, fetchHydratedDocs, fetchDocs };
}

export { HARDCODED_TYPES, isContact };
