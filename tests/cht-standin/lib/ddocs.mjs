// The stock CHT design documents (views) the mediator and the stand-in may
// query, installed in the medic db at start-up. Their map functions index the
// same keys and values as cht-core 4.22's
// ddocs/medic-db/medic-client/views/<view>/map.js and
// ddocs/medic-db/medic/views/docs_by_shortcode/map.js.
// A stock medic db has no Mango index: none is created.

const CONTACT_TYPES = "['contact', 'district_hospital', 'health_center', 'clinic', 'person']";

export const DESIGN_DOCS = {
  '_design/medic-client': {
    // key [ 'shortcode', <place_id | patient_id> ] or [ 'external', <RC_CODE> ], value reported_date
    contacts_by_reference: {
      map: `function (doc) {
  var types = ['contact', 'district_hospital', 'health_center', 'clinic', 'national_office', 'person'];
  if (types.indexOf(doc.type) === -1) {
    return;
  }
  if (doc.place_id) {
    emit(['shortcode', String(doc.place_id)], doc.reported_date);
  }
  if (doc.patient_id) {
    emit(['shortcode', String(doc.patient_id)], doc.reported_date);
  }
  if (doc.rc_code) {
    emit(['external', String(doc.rc_code).toUpperCase()], doc.reported_date);
  }
}`,
    },
    // key: the phone as stored on the contact
    contacts_by_phone: {
      map: `function (doc) {
  if (doc.phone && ${CONTACT_TYPES}.indexOf(doc.type) !== -1) {
    emit(doc.phone);
  }
}`,
    },
    // key: each subject reference of a report (as stored, not stringified: 4.x), value reported_date
    reports_by_subject: {
      map: `function (doc) {
  if (doc.type !== 'data_record' || !doc.form) {
    return;
  }
  ['patient_id', 'place_id', 'case_id'].forEach(function (field) {
    if (doc[field]) {
      emit(doc[field], doc.reported_date);
    }
  });
  if (doc.fields) {
    ['patient_id', 'place_id', 'case_id', 'patient_uuid', 'place_uuid'].forEach(function (field) {
      if (doc.fields[field]) {
        emit(doc.fields[field], doc.reported_date);
      }
    });
  }
}`,
    },
    // key [form], value reported_date; the 4.x reduce answers true (5.x: _count)
    reports_by_form: {
      map: `function (doc) {
  if (doc.type === 'data_record' && doc.form) {
    emit([doc.form], doc.reported_date);
  }
}`,
      reduce: 'function () {\n  return true;\n}',
    },
  },
  '_design/medic': {
    // key: any short code (place_id, patient_id, case_id) of any doc
    docs_by_shortcode: {
      map: `function (doc) {
  if (doc.place_id) {
    emit(doc.place_id);
  }
  if (doc.patient_id) {
    emit(doc.patient_id);
  }
  if (doc.case_id) {
    emit(doc.case_id);
  }
}`,
    },
  },
};

// Adds the views above to the medic db's design docs, creating the docs when
// missing. Views already there (e.g. a real CHT's) are left alone; nothing is
// written when every view exists.
export async function installDesignDocs(medic, log) {
  for (const [id, views] of Object.entries(DESIGN_DOCS)) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const existing = await medic.get(id);
      const doc = existing || { _id: id, views: {} };
      doc.views = doc.views || {};
      const missing = Object.keys(views).filter((name) => !doc.views[name]);
      if (!missing.length) {
        break;
      }
      for (const name of missing) {
        doc.views[name] = views[name];
      }
      const r = await medic.put(doc);
      if (!r.conflict) {
        log(`design doc ${id}: added views ${missing.join(', ')}`);
        break;
      }
    }
  }
}

// Earlier versions of the stand-in created two Mango indexes in medic
// (patient_id, place_id: `POST _index {index: {fields: [...]}}`, so named
// idx-<hash>), which a stock CHT lacks. A medic db that still has them (a
// couch kept running across a stand-in upgrade) gets them removed; other
// indexes are left alone.
export async function removeLegacyIndexes(medic, log) {
  const result = await medic.couch.request('GET', `${medic.path}/_index`);
  for (const index of (result.body && result.body.indexes) || []) {
    const fields = (index.def && index.def.fields) || [];
    const legacy = index.type === 'json' && fields.length === 1 && typeof index.ddoc === 'string' &&
      index.ddoc.startsWith('_design/idx-') && index.name === index.ddoc.slice('_design/'.length) &&
      ['patient_id', 'place_id'].some((f) => fields[0][f] === 'asc') && !index.def.partial_filter_selector;
    if (legacy) {
      // pouchdb-server wants the ddoc id encoded (_design%2F...), CouchDB takes it as a path
      const name = encodeURIComponent(index.name);
      let removed = false;
      for (const ddoc of [encodeURIComponent(index.ddoc), `_design/${name}`]) {
        const r = await medic.couch.request('DELETE', `${medic.path}/_index/${ddoc}/json/${name}`, { ok: [400, 404] });
        if (r.status < 300) {
          removed = true;
          break;
        }
      }
      log(removed
        ? `removed the Mango index on ${Object.keys(fields[0])[0]} an older stand-in created (${index.ddoc}): a stock CHT has none`
        : `could not remove the Mango index ${index.ddoc} an older stand-in created`);
    }
  }
}
