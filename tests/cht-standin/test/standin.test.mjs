// Tests for the CHT API stand-in against a running CouchDB-protocol server
// (pouchdb-server). Run:
//   COUCH_URL=http://127.0.0.1:5984 COUCH_USER=admin COUCH_PASSWORD=... \
//     node --test tests/cht-standin/test/
// The test uses its own uniquely named databases (<medic>, <medic>-sentinel,
// <medic>-vault) and users, and removes them afterwards; it starts the
// stand-in (node server.mjs) on a free port and a local HTTP receiver that
// stands in for OpenHIM / the mediator.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  ADMIN_AUTH, COUCH_PASSWORD, COUCH_URL, COUCH_USER, assertCouchEnv, basic, couch, createCouchUser,
  deleteCouchUser, dropDatabases, startReceiver, startStandin as start, waitFor,
} from '../testlib/harness.mjs';

const RUN = crypto.randomBytes(4).toString('hex');
const DB = `medic-standin-test-${RUN}`;
// chw: configured as an offline role; viewer: not configured (offline too);
// interop: an online user (mm-online), as POST /api/v2/users makes it
const CHW = { name: `standin-chw-${RUN}`, password: crypto.randomBytes(12).toString('hex'), roles: ['chw'] };
const VIEWER = { name: `standin-viewer-${RUN}`, password: crypto.randomBytes(12).toString('hex'), roles: ['viewer'] };
const INTEROP = { name: `standin-interop-${RUN}`, password: crypto.randomBytes(12).toString('hex'), roles: ['interop', 'mm-online'] };
const OPENHIM_SECRET = `openhim-${crypto.randomBytes(6).toString('hex')}`;

// Names and phones used below; the stand-in's log must never contain them.
const PATIENT_NAME = 'Amina Wanjiru Odhiambo';
const PATIENT_PHONE = '+254712345678';
const PATIENT_PHONE_2 = '+254798765432';
const CHW_NAME = 'Grace Chepkoech Kiprop';
const SECRET_WORDS = [PATIENT_NAME, PATIENT_PHONE, PATIENT_PHONE_2, CHW_NAME, OPENHIM_SECRET];

const CHW_AUTH = basic(CHW.name, CHW.password);
const VIEWER_AUTH = basic(VIEWER.name, VIEWER.password);
const INTEROP_AUTH = basic(INTEROP.name, INTEROP.password);

const allLogs = [];
const startStandin = (settingsFile, extraEnv = {}) => start(settingsFile, { db: DB, extraEnv, allLogs });

// ---------------------------------------------------------------------------
// fixture

let receiver;
let standin;
let tmpDir;
let settingsFile;
const ids = {};

function appSettings(recv) {
  const auth = { type: 'basic', username: 'interop-client', password_key: 'openhim1' };
  const dest = (p, extra = {}) => ({ base_url: recv, path: p, auth, ...extra });
  return {
    transitions: { mark_for_outbound: true },
    roles: {
      chw: { name: 'usertype.chw', offline: true },
      interop: { name: 'usertype.interop', offline: false },
    },
    permissions: {
      can_edit: ['chw', 'interop'],
      can_create_records: ['chw', 'interop'],
      can_create_people: ['chw', 'interop'],
      can_create_places: ['chw', 'interop'],
    },
    forms: {
      INTEROP_FOLLOW_UP: {
        meta: { code: 'INTEROP_FOLLOW_UP', label: 'Follow up' },
        fields: {
          patient_uuid: { type: 'string', required: true, labels: { short: 'Patient' } },
          source_id: { type: 'string', labels: { short: 'Source' } },
          visit_date: { type: 'date', labels: { short: 'Visit date' } },
          urgent: { type: 'boolean', labels: { short: 'Urgent' } },
          note: { type: 'string', labels: { short: 'Note' } },
        },
      },
    },
    outbound: {
      patient: {
        relevant_to: "doc.type === 'person' && doc.role === 'patient'",
        destination: dest('/mediator/cht/patient'),
        mapping: {
          'doc._id': 'doc._id',
          'doc.name': 'doc.name',
          'doc.phone': { path: 'doc.phone', optional: true },
          'doc.date_of_birth': { path: 'doc.date_of_birth', optional: true },
          'doc.sex': { path: 'doc.sex', optional: true },
          'doc.patient_id': { path: 'doc.patient_id', optional: true },
          'doc.chw_area': { path: 'doc.parent.name', optional: true },
          'doc.district': { expr: 'doc.parent && doc.parent.parent && doc.parent.parent.parent && doc.parent.parent.parent.name', optional: true },
          'meta.source': { expr: "'cht-' + doc.type" },
        },
      },
      follow_up_record: {
        relevant_to: "doc.type === 'data_record' && doc.form === 'INTEROP_FOLLOW_UP'",
        destination: { base_url: recv + '/', path: '/mediator/cht/record', auth },
        mapping: {
          id: 'doc._id',
          patient_uuid: { path: 'doc.fields.patient_uuid', optional: true },
          'patient.name': { path: 'doc.patient.name', optional: true },
          note: { path: 'doc.fields.note', optional: true },
        },
      },
      whole_report: {
        relevant_to: "doc.type === 'data_record' && doc.form === 'interop_follow_up'",
        destination: dest('/mediator/cht/encounter'),
        mapping: { doc: 'doc' },
      },
      flaky: {
        relevant_to: "doc.type === 'data_record' && doc.form === 'flaky'",
        destination: dest('/flaky'),
        mapping: { id: 'doc._id', value: 'doc.fields.value', chw_area: { path: 'doc.contact.parent.name', optional: true } },
      },
      no_creds: {
        relevant_to: "doc.type === 'data_record' && doc.form === 'no_creds'",
        destination: dest('/nocreds', { auth: { type: 'basic', username: 'x', password_key: `unset-${RUN}` } }),
        mapping: { id: 'doc._id' },
      },
      header_auth: {
        relevant_to: "doc.type === 'data_record' && doc.form === 'header_auth'",
        destination: dest('/header', { auth: { type: 'header', name: 'Authorization', value_key: 'hdr-token' } }),
        mapping: { id: 'doc._id' },
      },
      redirected: {
        relevant_to: "doc.type === 'data_record' && doc.form === 'redirected'",
        destination: dest('/redirect'),
        mapping: { id: 'doc._id' },
      },
      slow: {
        relevant_to: "doc.type === 'data_record' && doc.form === 'slow'",
        destination: dest('/slow'),
        mapping: { id: 'doc._id' },
      },
    },
  };
}

before(async () => {
  assertCouchEnv();
  const root = await couch('GET', '/');
  assert.equal(root.status, 200, `CouchDB not reachable at ${COUCH_URL}`);
  for (const u of [CHW, VIEWER, INTEROP]) {
    await createCouchUser(u);
  }
  receiver = await startReceiver();
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cht-standin-test-'));
  settingsFile = path.join(tmpDir, 'app_settings.json');
  fs.writeFileSync(settingsFile, JSON.stringify(appSettings(receiver.base), null, 2));
  standin = await startStandin(settingsFile);
});

after(async () => {
  if (standin) {
    await standin.stop();
  }
  if (receiver) {
    await receiver.close();
  }
  if (COUCH_URL && COUCH_USER && COUCH_PASSWORD) {
    await dropDatabases(DB);
    for (const u of [CHW, VIEWER, INTEROP]) {
      await deleteCouchUser(u.name);
    }
  }
  if (tmpDir) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
  if (process.env.STANDIN_TEST_LOG) {
    fs.writeFileSync(process.env.STANDIN_TEST_LOG, allLogs.join('\n') + '\n');
  }
});

const medicDoc = async (id) => {
  const r = await couch('GET', `/${encodeURIComponent(DB)}/${encodeURIComponent(id)}`);
  assert.equal(r.status, 200, r.text);
  return r.body;
};
const sentinelDoc = async (id) => {
  const r = await couch('GET', `/${encodeURIComponent(DB + '-sentinel')}/${encodeURIComponent(id)}`);
  return r.status === 200 ? r.body : null;
};
// writes through the stand-in's /medic passthrough, as a CHW's phone would sync
const putViaMedic = async (doc, auth = ADMIN_AUTH) => {
  const r = await standin.call('PUT', `/medic/${encodeURIComponent(doc._id)}`, { auth, body: doc });
  assert.equal(r.status, 201, r.text);
  return r.body.rev;
};
const updateViaMedic = async (id, change) => {
  const doc = await medicDoc(id);
  return putViaMedic({ ...doc, ...change });
};
const backlog = async () => {
  const r = await standin.call('GET', '/api/v2/monitoring');
  assert.equal(r.status, 200);
  return r.body.outbound_push.backlog;
};

// ---------------------------------------------------------------------------
// API basics

test('GET /api/info answers without authentication', async () => {
  const r = await standin.call('GET', '/api/info');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { version: '4.22.0' });
});

test('401 without or with wrong credentials (JSON or text by Accept)', async () => {
  const record = { _meta: { form: 'INTEROP_FOLLOW_UP' }, patient_uuid: 'x' };
  let r = await standin.call('POST', '/api/v2/records', { body: record, headers: { Accept: 'application/json' } });
  assert.equal(r.status, 401);
  assert.deepEqual(r.body, { code: 401, error: 'unauthorized' });

  r = await standin.call('POST', '/api/v2/records', { body: record });
  assert.equal(r.status, 401);
  assert.equal(r.text, 'not logged in');
  assert.match(r.headers.get('www-authenticate'), /^Basic/);

  r = await standin.call('POST', '/api/v2/records', {
    body: record, auth: basic(CHW.name, 'wrong-password'), headers: { Accept: 'application/json' },
  });
  assert.equal(r.status, 401);

  for (const p of ['/medic/_all_docs', '/api/v1/hydrate?doc_ids=[]', '/api/v1/settings']) {
    r = await standin.call('GET', p, { headers: { Accept: 'application/json' } });
    assert.equal(r.status, 401, p);
  }
});

test('403 Insufficient privileges without can_create_records / can_configure', async () => {
  let r = await standin.call('POST', '/api/v2/records', {
    auth: VIEWER_AUTH, body: { _meta: { form: 'INTEROP_FOLLOW_UP' }, patient_uuid: 'x' }, headers: { Accept: 'application/json' },
  });
  assert.equal(r.status, 403);
  assert.deepEqual(r.body, { code: 403, error: 'Insufficient privileges' });

  r = await standin.call('POST', '/api/v1/people', { auth: VIEWER_AUTH, body: { name: 'x' } });
  assert.equal(r.status, 403);

  r = await standin.call('PUT', '/api/v1/credentials/openhim1', { auth: CHW_AUTH, body: 'nope' });
  assert.equal(r.status, 403);
});

test('credentials: admin PUT text/plain stores the secret encrypted in the vault', async () => {
  let r = await standin.call('PUT', '/api/v1/credentials/openhim1', { auth: ADMIN_AUTH, body: '{"a":1}', contentType: 'application/json' });
  assert.equal(r.status, 400);

  r = await standin.call('PUT', '/api/v1/credentials/openhim1', { auth: ADMIN_AUTH, body: OPENHIM_SECRET });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, { ok: true });

  const stored = await couch('GET', `/${encodeURIComponent(DB + '-vault')}/credential:openhim1`);
  assert.equal(stored.status, 200);
  assert.equal(typeof stored.body.password, 'string');
  assert.ok(!stored.body.password.includes(OPENHIM_SECRET), 'stored encrypted');
});

// ---------------------------------------------------------------------------
// records API

test('records API: success, form upper-cased, keys lower-cased, only form fields kept', async () => {
  const before = receiver.at('/mediator/cht/record').length;
  const r = await standin.call('POST', '/api/v2/records', {
    auth: CHW_AUTH,
    headers: { Accept: 'application/json' },
    body: {
      _meta: { form: 'interop_follow_up', from: '+254700000001', reported_date: 1700000000000 },
      PATIENT_UUID: 'no-such-patient',
      Source_Id: 'sr-1',
      visit_date: '2024-03-01',
      urgent: 1,
      note: 'bring the card',
      not_in_form: 'dropped',
    },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.success, true);
  assert.equal(typeof r.body.id, 'string');
  ids.record1 = r.body.id;

  const doc = await medicDoc(r.body.id);
  assert.equal(doc.type, 'data_record');
  assert.equal(doc.form, 'INTEROP_FOLLOW_UP');
  assert.equal(doc.from, '+254700000001');
  assert.deepEqual(doc.errors, []);
  assert.deepEqual(doc.tasks, []);
  assert.equal(doc.reported_date, 1700000000000);
  assert.deepEqual(doc.fields, {
    patient_uuid: 'no-such-patient',
    source_id: 'sr-1',
    visit_date: new Date(2024, 2, 1).valueOf(), // date fields become ms (local midnight, like moment)
    urgent: true, // boolean fields turn 1/0 into true/false
    note: 'bring the card',
  });
  assert.deepEqual(doc.sms_message, { form: 'INTEROP_FOLLOW_UP', from: '+254700000001', reported_date: 1700000000000 });

  // the outbound transition ran before the API answered
  assert.equal(receiver.at('/mediator/cht/record').length, before + 1);
});

test('records API: reported_date defaults to now; mixed-case keys skip type conversion', async () => {
  const t0 = Date.now();
  const r = await standin.call('POST', '/api/v2/records', {
    auth: ADMIN_AUTH,
    body: { _meta: { form: 'INTEROP_FOLLOW_UP' }, patient_uuid: 'p', Visit_Date: '2024-03-01' },
  });
  assert.equal(r.status, 200, r.text);
  const doc = await medicDoc(r.body.id);
  assert.ok(doc.reported_date >= t0 && doc.reported_date <= Date.now() + 1000);
  assert.equal(doc.fields.visit_date, '2024-03-01', 'CHT looks up the field type with the key as sent');
});

test('records API: unknown form or missing _meta -> 500 with details; non-JSON -> 500', async () => {
  const headers = { Accept: 'application/json' };
  let r = await standin.call('POST', '/api/v2/records', { auth: CHW_AUTH, headers, body: { _meta: { form: 'foo' }, a: 1 } });
  assert.equal(r.status, 500);
  assert.deepEqual(r.body, { code: 500, error: 'Server error', details: 'Form not found: FOO' });

  r = await standin.call('POST', '/api/v2/records', { auth: CHW_AUTH, headers, body: { patient_uuid: 'x' } });
  assert.equal(r.status, 500);
  assert.deepEqual(r.body, { code: 500, error: 'Server error', details: 'Missing _meta property.' });

  r = await standin.call('POST', '/api/v2/records', { auth: CHW_AUTH, headers, body: { _meta: {} } });
  assert.equal(r.status, 500);
  assert.equal(r.body.details, 'Missing required field: form');

  r = await standin.call('POST', '/api/v2/records', { auth: CHW_AUTH, headers, body: 'form=x', contentType: 'text/plain' });
  assert.equal(r.status, 500);
  assert.deepEqual(r.body, { code: 500, error: 'Server error' });

  // without Accept: application/json CHT answers text
  r = await standin.call('POST', '/api/v2/records', { auth: CHW_AUTH, body: { _meta: { form: 'foo' } } });
  assert.equal(r.status, 500);
  assert.equal(r.text, 'Server error: "Form not found: FOO"');
});

test('records API: a missing required field goes to doc.errors, still success', async () => {
  const r = await standin.call('POST', '/api/v2/records', {
    auth: CHW_AUTH, body: { _meta: { form: 'INTEROP_FOLLOW_UP' }, note: 'no patient' },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.success, true);
  const doc = await medicDoc(r.body.id);
  assert.deepEqual(doc.errors, [{ code: 'sys.missing_fields', message: 'Missing or invalid fields: patient_uuid.' }]);
  assert.deepEqual(doc.fields, { note: 'no patient' });
});

// ---------------------------------------------------------------------------
// contacts

test('places and people: minified lineage stored, contact created inside the place', async () => {
  let r = await standin.call('POST', '/api/v1/places', { auth: ADMIN_AUTH, body: { name: 'Kisumu District', type: 'district_hospital' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.ok, true);
  ids.district = r.body.id;

  r = await standin.call('POST', '/api/v1/places', { auth: CHW_AUTH, body: { name: 'Kondele HC', type: 'health_center', parent: ids.district } });
  assert.equal(r.status, 200, r.text);
  ids.hc = r.body.id;

  r = await standin.call('POST', '/api/v1/places', {
    auth: CHW_AUTH,
    body: { name: 'Area 7', type: 'clinic', parent: ids.hc, contact: { name: CHW_NAME, phone: '+254700000777' } },
  });
  assert.equal(r.status, 200, r.text);
  ids.clinic = r.body.id;
  ids.chw = r.body.contact.id;

  r = await standin.call('POST', '/api/v1/people', {
    auth: CHW_AUTH,
    body: { name: PATIENT_NAME, place: ids.clinic, role: 'patient', date_of_birth: '1990-05-17', sex: 'female', phone: PATIENT_PHONE },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.ok, true);
  assert.match(r.body.rev, /^1-/);
  ids.patient = r.body.id;

  const lineage = { _id: ids.clinic, parent: { _id: ids.hc, parent: { _id: ids.district } } };
  const patient = await medicDoc(ids.patient);
  assert.equal(patient.type, 'person');
  assert.equal(patient.name, PATIENT_NAME);
  assert.equal(typeof patient.reported_date, 'number');
  assert.deepEqual(patient.parent, lineage);
  assert.equal(patient.place, undefined);

  const clinic = await medicDoc(ids.clinic);
  assert.deepEqual(clinic.parent, lineage.parent);
  assert.deepEqual(clinic.contact, { _id: ids.chw, parent: lineage });
  const chw = await medicDoc(ids.chw);
  assert.deepEqual(chw.parent, lineage);
});

test('places and people: validation errors answer 400', async () => {
  const headers = { Accept: 'application/json' };
  let r = await standin.call('POST', '/api/v1/places', { auth: ADMIN_AUTH, headers, body: { name: 'Bad', type: 'clinic', parent: ids.district } });
  assert.equal(r.status, 400, r.text);
  r = await standin.call('POST', '/api/v1/places', { auth: ADMIN_AUTH, headers, body: { name: 'Orphan', type: 'clinic' } });
  assert.equal(r.status, 400, r.text);
  r = await standin.call('POST', '/api/v1/people', { auth: ADMIN_AUTH, headers, body: { phone: '1' } });
  assert.equal(r.status, 400);
  assert.equal(r.body.error, 'Person is missing a "name" property.');
  r = await standin.call('POST', '/api/v1/people', { auth: ADMIN_AUTH, headers, body: { name: 'x', place: 'no-such-place' } });
  assert.equal(r.status, 404);
});

test('hydrate (GET and POST): full parent and contact lineage, not_found', async () => {
  const q = encodeURIComponent(JSON.stringify([ids.patient, 'no-such-doc']));
  let r = await standin.call('GET', `/api/v1/hydrate?doc_ids=${q}`, { auth: INTEROP_AUTH });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.length, 2);
  const [{ id, doc }, missing] = r.body;
  assert.equal(id, ids.patient);
  assert.deepEqual(missing, { id: 'no-such-doc', error: 'not_found' });
  assert.equal(doc.name, PATIENT_NAME);
  assert.equal(doc.parent.name, 'Area 7');
  assert.equal(doc.parent.contact.name, CHW_NAME, 'place contact hydrated');
  assert.deepEqual(doc.parent.contact.parent, { _id: ids.clinic, parent: { _id: ids.hc, parent: { _id: ids.district } } });
  assert.equal(doc.parent.parent.name, 'Kondele HC');
  assert.equal(doc.parent.parent.parent.name, 'Kisumu District');

  r = await standin.call('POST', '/api/v1/hydrate', { auth: INTEROP_AUTH, body: { doc_ids: [ids.clinic] } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body[0].doc.contact.name, CHW_NAME);
  assert.equal(r.body[0].doc.parent.parent.name, 'Kisumu District');

  r = await standin.call('GET', '/api/v1/hydrate', { auth: INTEROP_AUTH, headers: { Accept: 'application/json' } });
  assert.equal(r.status, 400);
  assert.deepEqual(r.body, { error: 'bad_request', reason: '`doc_ids` parameter must be a json array.' });
  r = await standin.call('GET', '/api/v1/hydrate?doc_ids=[]', { auth: ADMIN_AUTH });
  assert.deepEqual(r.body, []);
});

// ---------------------------------------------------------------------------
// outbound

test('outbound: relevant_to + mapping (path, optional, expr, nested dest), Basic auth, headers', async () => {
  const result = await standin.flush();
  const pushes = receiver.at('/mediator/cht/patient');
  assert.equal(pushes.length, 1, JSON.stringify(result.attempts));
  const push = pushes[0];
  assert.equal(push.method, 'POST');
  assert.match(push.headers['content-type'], /^application\/json/);
  assert.equal(push.headers.accept, 'application/json');
  assert.equal(push.headers.authorization, basic('interop-client', OPENHIM_SECRET));
  assert.deepEqual(push.body, {
    doc: {
      _id: ids.patient,
      name: PATIENT_NAME,
      phone: PATIENT_PHONE,
      date_of_birth: '1990-05-17',
      sex: 'female',
      chw_area: 'Area 7', // from the hydrated parent
      district: 'Kisumu District', // expr over the hydrated lineage
    },
    meta: { source: 'cht-person' },
  });
  // the CHW and the places are not relevant_to `patient`
  assert.ok(!result.attempts.some((a) => a.doc_id === ids.chw || a.doc_id === ids.clinic));
  assert.ok(result.pushed.some((a) => a.doc_id === ids.patient && a.config === 'patient' && a.status === 200));
  assert.ok(standin.logs.some((l) => l.includes(`doc=${ids.patient} config=patient status=200`)));
});

test('outbound: pushed again only when the mapped payload changes', async () => {
  await updateViaMedic(ids.patient, { notes_internal: 'not mapped' });
  let result = await standin.flush();
  assert.equal(receiver.at('/mediator/cht/patient').length, 1, 'unmapped change: not pushed');
  assert.deepEqual(result.unchanged.map((a) => a.doc_id), [ids.patient]);

  await updateViaMedic(ids.patient, { phone: PATIENT_PHONE_2, patient_id: '40917' });
  result = await standin.flush();
  const pushes = receiver.at('/mediator/cht/patient');
  assert.equal(pushes.length, 2, 'mapped change: pushed');
  assert.equal(pushes[1].body.doc.phone, PATIENT_PHONE_2);
  assert.equal(pushes[1].body.doc.patient_id, '40917');

  result = await standin.flush();
  assert.equal(result.processed_changes, 0);
  assert.equal(receiver.at('/mediator/cht/patient').length, 2);
});

test('records API: outbound runs synchronously and the changes feed does not push it again', async () => {
  const before = receiver.at('/mediator/cht/record').length;
  const r = await standin.call('POST', '/api/v2/records', {
    auth: CHW_AUTH, body: { _meta: { form: 'INTEROP_FOLLOW_UP' }, patient_uuid: ids.patient, note: 'ltfu' },
  });
  assert.equal(r.status, 200, r.text);
  const pushes = receiver.at('/mediator/cht/record');
  assert.equal(pushes.length, before + 1, 'pushed before the API answered');
  assert.deepEqual(pushes.at(-1).body, {
    id: r.body.id, patient_uuid: ids.patient, patient: { name: PATIENT_NAME }, note: 'ltfu',
  });
  const result = await standin.flush();
  assert.equal(receiver.at('/mediator/cht/record').length, before + 1, 'not pushed twice');
  assert.ok(result.unchanged.some((a) => a.doc_id === r.body.id));
});

test('records API: a failing synchronous push still answers success and is queued', async () => {
  receiver.on('/mediator/cht/record', { status: 502 });
  const r = await standin.call('POST', '/api/v2/records', {
    auth: CHW_AUTH, body: { _meta: { form: 'INTEROP_FOLLOW_UP' }, patient_uuid: ids.patient, note: 'queued' },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.success, true);
  assert.deepEqual((await sentinelDoc(`task:outbound:${r.body.id}`)).queue, ['follow_up_record']);
  assert.equal(await backlog(), 1);
  receiver.reset('/mediator/cht/record');
  const result = await standin.flush();
  const delivered = receiver.at('/mediator/cht/record').filter((q) => q.body.id === r.body.id && q.body.note === 'queued');
  assert.equal(delivered.length, 2, 'one failed attempt, one delivery');
  assert.ok(result.unchanged.some((a) => a.doc_id === r.body.id && a.source === 'retry'));
  assert.equal(await backlog(), 0);
});

test('outbound: whole doc ("doc": "doc") with hydrated contact, patient by uuid and by short code', async () => {
  const reportId = `report-${RUN}`;
  const contact = { _id: ids.chw, parent: { _id: ids.clinic, parent: { _id: ids.hc, parent: { _id: ids.district } } } };
  await putViaMedic({
    _id: reportId,
    type: 'data_record',
    content_type: 'xml',
    form: 'interop_follow_up',
    contact,
    fields: {
      patient_uuid: ids.patient,
      outcome: 'visited',
      weight: 61.5,
      danger_signs: ['fever', 'cough'],
      inputs: { source: 'task', source_id: ids.record1, contact: { _id: ids.patient } },
      meta: { instanceID: `uuid:${RUN}` },
    },
    hidden_fields: ['meta'],
    reported_date: 1700000100000,
  }, CHW_AUTH);
  await standin.flush();
  let pushes = receiver.at('/mediator/cht/encounter');
  assert.equal(pushes.length, 1);
  const doc = pushes[0].body.doc;
  assert.equal(doc._id, reportId);
  assert.match(doc._rev, /^1-/);
  assert.equal(doc.fields.weight, 61.5);
  assert.deepEqual(doc.fields.danger_signs, ['fever', 'cough']);
  assert.equal(doc.contact.name, CHW_NAME, 'report contact hydrated');
  assert.equal(doc.contact.parent.name, 'Area 7');
  assert.equal(doc.contact.parent.contact.name, CHW_NAME);
  assert.equal(doc.contact.parent.parent.parent.name, 'Kisumu District');
  assert.equal(doc.patient._id, ids.patient, 'doc.patient from fields.patient_uuid');
  assert.equal(doc.patient.parent.name, 'Area 7');

  // fields.patient_id holds a short code: resolved to the contact
  const report2 = `report2-${RUN}`;
  await putViaMedic({ _id: report2, type: 'data_record', form: 'interop_follow_up', contact, fields: { patient_id: '40917' }, reported_date: 1 });
  await standin.flush();
  pushes = receiver.at('/mediator/cht/encounter');
  assert.equal(pushes.length, 2);
  assert.equal(pushes[1].body.doc.patient._id, ids.patient);
  assert.equal(pushes[1].body.doc.patient.name, PATIENT_NAME);
});

test('outbound: a failure is queued and retried, re-mapping the CURRENT doc', async () => {
  assert.equal(await backlog(), 0);
  receiver.on('/flaky', { status: 503 });
  const id = `flaky-${RUN}`;
  const contact = { _id: ids.chw, parent: { _id: ids.clinic, parent: { _id: ids.hc, parent: { _id: ids.district } } } };
  await putViaMedic({ _id: id, type: 'data_record', form: 'flaky', contact, fields: { value: 'v1' } });
  let result = await standin.flush();
  assert.ok(result.failed.some((a) => a.doc_id === id && a.config === 'flaky' && a.status === 503), JSON.stringify(result.failed));
  const task = await sentinelDoc(`task:outbound:${id}`);
  assert.equal(task.type, 'task:outbound');
  assert.equal(task.doc_id, id);
  assert.deepEqual(task.queue, ['flaky']);
  assert.equal(await backlog(), 1);
  assert.equal(result.backlog, 1);

  await updateViaMedic(id, { fields: { value: 'v2' } });
  result = await standin.flush();
  assert.equal(await backlog(), 1);
  assert.ok(receiver.at('/flaky').every((req) => req.body.id === id));

  receiver.on('/flaky', { status: 201 });
  result = await standin.flush();
  assert.equal(result.processed_changes, 0);
  assert.deepEqual(result.pushed.map((a) => [a.doc_id, a.source]), [[id, 'retry']]);
  // the retry re-read the doc and hydrated it again (contact lineage)
  assert.deepEqual(receiver.at('/flaky').at(-1).body, { id, value: 'v2', chw_area: 'Area 7' });
  assert.equal(await backlog(), 0);
  assert.equal(await sentinelDoc(`task:outbound:${id}`), null);

  // a receiver answering 4xx is retried too (no cap)
  receiver.on('/flaky', { status: 400 });
  await updateViaMedic(id, { fields: { value: 'v3' } });
  await standin.flush();
  await standin.flush();
  await standin.flush();
  const bodies = receiver.at('/flaky').filter((q) => q.body.value === 'v3');
  assert.equal(bodies.length, 1 + 3, 'one realtime attempt and one retry per flush');
  receiver.on('/flaky', { status: 200 });
  await standin.flush();
  assert.equal(await backlog(), 0);
});

test('outbound: a mapping error sends nothing, is queued, and clears once the doc maps', async () => {
  const id = `unmappable-${RUN}`;
  const before = receiver.at('/flaky').length;
  await putViaMedic({ _id: id, type: 'data_record', form: 'flaky', fields: {} });
  let result = await standin.flush();
  assert.ok(result.failed.some((a) => a.doc_id === id && a.status === 'mapping_error'));
  assert.equal(receiver.at('/flaky').length, before, 'nothing sent');
  assert.equal(await backlog(), 1);

  result = await standin.flush();
  assert.ok(result.failed.some((a) => a.doc_id === id && a.source === 'retry' && a.status === 'mapping_error'));

  await updateViaMedic(id, { fields: { value: 'now-mapped' } });
  result = await standin.flush();
  const sent = receiver.at('/flaky').filter((q) => q.body.id === id);
  assert.equal(sent.length, 1, 'sent once by the feed; the retry sees an identical payload');
  assert.deepEqual(sent[0].body, { id, value: 'now-mapped' });
  assert.equal(await backlog(), 0);
});

test('outbound: missing credentials fail the push until PUT /api/v1/credentials', async () => {
  const id = `nocreds-${RUN}`;
  await putViaMedic({ _id: id, type: 'data_record', form: 'no_creds', fields: {} });
  let result = await standin.flush();
  assert.ok(result.failed.some((a) => a.doc_id === id && a.status === 'config_error'));
  assert.equal(receiver.at('/nocreds').length, 0);
  assert.equal(await backlog(), 1);

  const r = await standin.call('PUT', `/api/v1/credentials/unset-${RUN}`, { auth: ADMIN_AUTH, body: 'late-secret' });
  assert.equal(r.status, 200);
  result = await standin.flush();
  assert.equal(receiver.at('/nocreds').length, 1);
  assert.equal(receiver.at('/nocreds')[0].headers.authorization, basic('x', 'late-secret'));
  assert.equal(await backlog(), 0);
});

test('outbound: header auth sends the stored value as Authorization', async () => {
  const r = await standin.call('PUT', '/api/v1/credentials/hdr-token', { auth: ADMIN_AUTH, body: `Bearer ${OPENHIM_SECRET}` });
  assert.equal(r.status, 200);
  const id = `header-${RUN}`;
  await putViaMedic({ _id: id, type: 'data_record', form: 'header_auth', fields: {} });
  await standin.flush();
  assert.equal(receiver.at('/header').length, 1);
  assert.equal(receiver.at('/header')[0].headers.authorization, `Bearer ${OPENHIM_SECRET}`);
});

test('outbound: a redirect to nowhere fails (followed), a timeout fails', async () => {
  receiver.on('/redirect', { status: 302 }); // Location: a closed port
  const rid = `redirect-${RUN}`;
  await putViaMedic({ _id: rid, type: 'data_record', form: 'redirected', fields: {} });
  let result = await standin.flush('?retry=false');
  assert.ok(result.failed.some((a) => a.doc_id === rid && a.status === 'network_error'), JSON.stringify(result.failed));
  assert.equal(await backlog(), 1);
  receiver.on('/redirect', { status: 200 });
  result = await standin.flush();
  assert.equal(await backlog(), 0);

  receiver.on('/slow', { delayMs: 3000 }); // the test instance times out after 1.5 s
  const sid = `slow-${RUN}`;
  await putViaMedic({ _id: sid, type: 'data_record', form: 'slow', fields: {} });
  result = await standin.flush('?retry=false');
  assert.ok(result.failed.some((a) => a.doc_id === sid && a.status === 'timeout'), JSON.stringify(result.failed));
  assert.equal(await backlog(), 1);
  receiver.reset('/slow');
  result = await standin.flush();
  assert.ok(result.pushed.some((a) => a.doc_id === sid && a.source === 'retry'));
  assert.equal(await backlog(), 0);
});

test('monitoring: outbound_push.backlog and sentinel backlog, unauthenticated', async () => {
  const r = await standin.call('GET', '/api/v2/monitoring');
  assert.equal(r.status, 200);
  assert.equal(r.body.outbound_push.backlog, 0);
  assert.equal(r.body.sentinel.backlog, 0);
  assert.equal(r.body.version.app, '4.22.0');
});

// ---------------------------------------------------------------------------
// passthrough

test('/medic passthrough: method, query, body and the caller\'s auth; crash traps refused', async () => {
  let r = await standin.call('POST', '/medic/_find', {
    auth: INTEROP_AUTH, body: { selector: { form: 'INTEROP_FOLLOW_UP', 'fields.note': 'ltfu' }, fields: ['_id', 'fields'] },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.docs.length, 1);
  assert.equal(r.body.docs[0].fields.patient_uuid, ids.patient);

  r = await standin.call('GET', '/medic/_all_docs?limit=2&include_docs=true', { auth: CHW_AUTH });
  assert.equal(r.status, 200);
  assert.equal(r.body.rows.length, 2);

  r = await standin.call('GET', `/medic/${encodeURIComponent(ids.patient)}`, { auth: CHW_AUTH });
  assert.equal(r.status, 200);
  assert.equal(r.body._id, ids.patient);

  r = await standin.call('GET', '/medic/_changes?since=0&limit=1&include_docs=true', { auth: CHW_AUTH });
  assert.equal(r.status, 200);
  assert.equal(r.body.results.length, 1);

  r = await standin.call('GET', '/medic/_changes?filter=_selector', { auth: ADMIN_AUTH });
  assert.equal(r.status, 400);
  r = await standin.call('PUT', '/medic', { auth: CHW_AUTH });
  assert.equal(r.status, 403, 'an offline user: the firewall');
  r = await standin.call('PUT', '/medic', { auth: INTEROP_AUTH });
  assert.equal(r.status, 401, 'an online user: what CouchDB answers a non-admin');
  r = await standin.call('GET', '/medic/no-such-doc', { auth: CHW_AUTH });
  assert.equal(r.status, 404);
  r = await standin.call('GET', '/medic/x', { auth: basic(CHW.name, 'wrong'), headers: { Accept: 'application/json' } });
  assert.equal(r.status, 401);

  // pouchdb-server is still alive
  assert.equal((await couch('GET', '/')).status, 200);
});

test('settings API: PUT /api/v1/settings (admin) changes outbound at run time', async () => {
  let r = await standin.call('PUT', '/api/v1/settings', { auth: CHW_AUTH, body: { outbound: {} } });
  assert.equal(r.status, 403);
  r = await standin.call('GET', '/api/v1/settings', { auth: CHW_AUTH });
  assert.equal(r.status, 200);
  assert.ok(r.body.outbound.patient);
  const settings = r.body;
  r = await standin.call('PUT', '/api/v1/settings', {
    auth: ADMIN_AUTH,
    body: { outbound: { ...settings.outbound, patient: { ...settings.outbound.patient, relevant_to: 'false' } } },
  });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { success: true, updated: true });
  await updateViaMedic(ids.patient, { phone: '+254700000000' });
  await standin.flush();
  assert.equal(receiver.at('/mediator/cht/patient').length, 2, 'no longer relevant');
  r = await standin.call('PUT', '/api/v1/settings?replace=true', { auth: ADMIN_AUTH, body: settings });
  assert.equal(r.status, 200);
});

test('generate_shortcode_on_contacts (when enabled) adds patient_id before outbound runs', async () => {
  let r = await standin.call('GET', '/api/v1/settings', { auth: ADMIN_AUTH });
  const settings = r.body;
  r = await standin.call('PUT', '/api/v1/settings', {
    auth: ADMIN_AUTH, body: { transitions: { ...settings.transitions, generate_shortcode_on_contacts: true } },
  });
  assert.equal(r.status, 200);
  r = await standin.call('POST', '/api/v1/people', { auth: CHW_AUTH, body: { name: 'Coded Patient', place: ids.clinic, role: 'patient' } });
  assert.equal(r.status, 200);
  const id = r.body.id;
  await standin.flush();
  const stored = await medicDoc(id);
  assert.match(stored.patient_id, /^\d{5}$/);
  assert.match(stored._rev, /^2-/, 'sentinel saved the doc with its short code');
  let pushes = receiver.at('/mediator/cht/patient').filter((q) => q.body.doc._id === id);
  assert.equal(pushes.length, 1);
  assert.equal(pushes[0].body.doc.patient_id, stored.patient_id, 'the push already carries the short code');
  await standin.flush(); // the short code save is a new change: same payload, not pushed again
  pushes = receiver.at('/mediator/cht/patient').filter((q) => q.body.doc._id === id);
  assert.equal(pushes.length, 1);
  r = await standin.call('PUT', '/api/v1/settings?replace=true', { auth: ADMIN_AUTH, body: settings });
  assert.equal(r.status, 200);
});

// ---------------------------------------------------------------------------
// timers and at-least-once delivery

test('restart resumes from the stored seq; deliver-twice and timer-driven poll and retry', async () => {
  await standin.stop();
  const requestsBefore = receiver.requests.length;
  standin = await startStandin(settingsFile, {
    STANDIN_DELIVER_TWICE: 'true',
    STANDIN_OUTBOUND_POLL_MS: '200',
    STANDIN_OUTBOUND_RETRY_MS: '1000',
  });
  // the phone change made while `patient` was not relevant is already processed
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(receiver.requests.length, requestsBefore, 'nothing re-pushed after restart');

  // a new patient: pushed by the poll timer, twice, identical
  const r = await standin.call('POST', '/api/v1/people', {
    auth: CHW_AUTH, body: { name: 'Second Patient', place: ids.clinic, role: 'patient' },
  });
  assert.equal(r.status, 200);
  const twice = await waitFor('two deliveries', () => {
    const got = receiver.at('/mediator/cht/patient').filter((q) => q.body.doc._id === r.body.id);
    return got.length >= 2 && got;
  });
  assert.equal(twice.length, 2);
  assert.deepEqual(twice[0].body, twice[1].body);
  assert.equal(twice[0].body.doc.chw_area, 'Area 7');

  // a failing push is retried by the retry timer, then cleared
  receiver.on('/flaky', { status: 500 });
  const id = `timer-${RUN}`;
  await putViaMedic({ _id: id, type: 'data_record', form: 'flaky', fields: { value: 't1' } });
  await waitFor('a timer-driven retry', async () => {
    const a = await standin.call('GET', '/_standin/outbound/attempts');
    return a.body.attempts.some((x) => x.doc_id === id && x.source === 'retry');
  });
  receiver.on('/flaky', { status: 200 });
  await waitFor('the backlog to clear', async () => (await backlog()) === 0);
  const ok = receiver.at('/flaky').filter((q) => q.body.id === id);
  assert.ok(ok.length >= 2);
});

test('the stand-in log carries ids and statuses, never names, phones or secrets', () => {
  const pushLines = allLogs.filter((l) => l.includes('outbound push'));
  assert.ok(pushLines.length > 10);
  for (const line of allLogs) {
    for (const word of SECRET_WORDS) {
      assert.ok(!line.includes(word), `log line leaks "${word}": ${line}`);
    }
  }
});
