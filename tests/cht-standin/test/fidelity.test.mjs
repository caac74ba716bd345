// The stand-in's fidelity to cht-core 4.22 (issue 11 point 7): online and
// offline users, the users API, permissions, people with a given _id,
// contacts-by-phone, records API errors, outbound User-Agent and redirects,
// the stock views and the unindexed-_find counter. Run like standin.test.mjs:
//   COUCH_URL=... COUCH_USER=... COUCH_PASSWORD=... node --test tests/cht-standin/test/

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { isOffline, rolesHaveAllPermissions } from '../lib/auth.mjs';
import { medicAccess } from '../lib/app.mjs';
import { normalize } from '../lib/phone.mjs';
import { passwordScore } from '../lib/users.mjs';
import {
  ADMIN_AUTH, COUCH_PASSWORD, COUCH_URL, COUCH_USER, assertCouchEnv, basic, couch, createCouchUser,
  deleteCouchUser, dropDatabases, startReceiver, startStandin,
} from '../testlib/harness.mjs';

const RUN = crypto.randomBytes(4).toString('hex');
const DB = `medic-standin-fidelity-${RUN}`;
const pw = () => `Aa1!${crypto.randomBytes(9).toString('hex')}`;
const user = (name, roles) => ({ name: `standin-${name}-${RUN}`, password: pw(), roles });
// offline: a configured offline role / online: mm-online / online without can_edit
const CHW = user('fchw', ['chw']);
const ONLINE = user('fonline', ['interop', 'mm-online']);
const CREATOR = user('fcreator', ['creator', 'mm-online']);
const auth = (u) => basic(u.name, u.password);
const JSON_ACCEPT = { Accept: 'application/json' };
const FIREWALL = { code: 403, error: 'forbidden', details: 'Offline users are not allowed access to this endpoint' };
const createdUsers = [CHW.name, ONLINE.name, CREATOR.name];

let receiver;
let standin;
let tmpDir;
let settingsFile;
const ids = {};

function appSettings(recv) {
  return {
    default_country_code: 254,
    transitions: { mark_for_outbound: true },
    roles: {
      chw: { name: 'usertype.chw', offline: true },
      interop: { name: 'usertype.interop', offline: false },
      interop_api: { name: 'usertype.interop-api', offline: false },
      creator: { name: 'usertype.creator', offline: false },
      supervisor: { name: 'usertype.supervisor' },
    },
    permissions: {
      can_edit: ['chw', 'interop', 'interop_api'],
      can_create_people: ['chw', 'interop', 'creator'],
      can_create_places: ['chw', 'interop'],
      can_create_records: ['chw', 'interop', 'interop_api'],
      can_skip_password_change: ['interop_api'],
    },
    contact_types: [
      { id: 'district_hospital' },
      { id: 'health_center', parents: ['district_hospital'] },
      { id: 'clinic', parents: ['health_center'] },
      { id: 'person', parents: ['district_hospital', 'health_center', 'clinic'], person: true },
      { id: 'patient', parents: ['clinic'], person: true },
    ],
    forms: {
      INTEROP_FOLLOW_UP: {
        meta: { code: 'INTEROP_FOLLOW_UP' },
        fields: {
          patient_uuid: { type: 'string', required: true },
          task_id: { type: 'string' },
          visits: { type: 'integer' },
          urgent: { type: 'boolean' },
          extra: { type: 'complex' },
          reason: { type: 'string', required: true },
        },
      },
    },
    outbound: {
      redirect_test: {
        relevant_to: "doc.type === 'data_record' && doc.form === 'redirect_test'",
        destination: { base_url: recv, path: '/push' },
        mapping: { id: 'doc._id', kind: 'doc.fields.kind' },
      },
    },
  };
}

before(async () => {
  assertCouchEnv();
  for (const u of [CHW, ONLINE, CREATOR]) {
    await createCouchUser(u);
  }
  receiver = await startReceiver();
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cht-standin-fidelity-'));
  settingsFile = path.join(tmpDir, 'app_settings.json');
  fs.writeFileSync(settingsFile, JSON.stringify(appSettings(receiver.base), null, 2));
  standin = await startStandin(settingsFile, { db: DB });

  let r = await standin.call('POST', '/api/v1/places', { auth: ADMIN_AUTH, body: { name: 'District', type: 'district_hospital' } });
  assert.equal(r.status, 200, r.text);
  ids.district = r.body.id;
  r = await standin.call('POST', '/api/v1/places', { auth: ADMIN_AUTH, body: { name: 'HC', type: 'health_center', parent: ids.district } });
  ids.hc = r.body.id;
  r = await standin.call('POST', '/api/v1/places', { auth: ADMIN_AUTH, body: { name: 'Area 9', type: 'clinic', parent: ids.hc } });
  ids.clinic = r.body.id;
  r = await standin.call('POST', '/api/v1/people', {
    auth: ADMIN_AUTH,
    body: { name: 'Phone Owner', place: ids.clinic, phone: '+254712000111', patient_id: '12345', rc_code: 'rc9' },
  });
  assert.equal(r.status, 200, r.text);
  ids.person = r.body.id;
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
    for (const name of createdUsers) {
      await deleteCouchUser(name);
    }
  }
  if (tmpDir) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  }
});

const medicDoc = async (id) => {
  const r = await couch('GET', `/${encodeURIComponent(DB)}/${encodeURIComponent(id)}`);
  return r.status === 200 ? r.body : null;
};

// ---------------------------------------------------------------------------
// 1. online and offline users

describe('online and offline users (roles.js, authorization.js, routing.js)', () => {
  test('the online rule: _admin or mm-online; isOffline for new users as users.js', () => {
    const settings = appSettings('http://x');
    assert.equal(isOffline(settings, ['interop']), false, 'configured offline: false');
    assert.equal(isOffline(settings, ['supervisor']), false, 'configured without `offline`: online');
    assert.equal(isOffline(settings, ['chw']), true, 'configured offline: true');
    assert.equal(isOffline(settings, ['unknown']), true, 'not configured: offline');
    assert.equal(isOffline(settings, ['interop', 'unknown']), false, 'unconfigured roles are ignored next to configured ones');
    assert.equal(isOffline(settings, ['interop', 'chw']), true, 'any configured offline role makes it offline');
    assert.equal(isOffline(settings, ['mm-online']), true, '4.x: mm-online alone, unconfigured, is offline');
    assert.equal(isOffline(settings, ['_admin']), false);
    assert.equal(rolesHaveAllPermissions(settings, ['chw'], ['can_edit', 'can_create_people']), true);
    assert.equal(rolesHaveAllPermissions(settings, ['creator'], ['can_edit', 'can_create_people']), false);
    assert.equal(rolesHaveAllPermissions(settings, ['_admin'], ['anything']), true);
  });

  test('offline users get the firewall 403 on _find, _explain, _index, views, hydrate, contacts-by-phone', async () => {
    const calls = [
      ['POST', '/medic/_find', { selector: { type: 'person' } }],
      ['POST', '/medic/_explain', { selector: { type: 'person' } }],
      ['POST', '/medic/_index', { index: { fields: ['x'] } }],
      ['GET', '/medic/_index'],
      ['GET', '/medic/_design/medic-client/_view/contacts_by_phone'],
      ['POST', '/medic/_design/medic-client/_view/contacts_by_reference', { keys: [['shortcode', '12345']] }],
      ['GET', '/medic/_design/medic/_view/docs_by_shortcode?key=%2212345%22'],
      ['GET', `/api/v1/hydrate?doc_ids=${encodeURIComponent(JSON.stringify([ids.person]))}`],
      ['POST', '/api/v1/hydrate', { doc_ids: [ids.person] }],
      ['GET', '/api/v1/contacts-by-phone?phone=%2B254712000111'],
      ['POST', '/api/v1/contacts-by-phone', { phone: '+254712000111' }],
      ['GET', '/medic/'],
    ];
    for (const [method, p, body] of calls) {
      // the firewall answers JSON whatever the Accept header
      const r = await standin.call(method, p, { auth: auth(CHW), body });
      assert.equal(r.status, 403, `${method} ${p}: ${r.text}`);
      assert.deepEqual(r.body, FIREWALL, `${method} ${p}`);
    }
  });

  test('offline users keep what CHT lets them replicate: docs, _all_docs, _changes, _bulk_docs (with can_edit)', async () => {
    let r = await standin.call('GET', `/medic/${ids.person}`, { auth: auth(CHW) });
    assert.equal(r.status, 200);
    r = await standin.call('GET', '/medic/_all_docs?limit=1', { auth: auth(CHW) });
    assert.equal(r.status, 200);
    r = await standin.call('GET', '/medic/_changes?limit=1', { auth: auth(CHW) });
    assert.equal(r.status, 200);
    r = await standin.call('POST', '/medic/_bulk_docs', { auth: auth(CHW), body: { docs: [{ _id: `bulk-${RUN}`, type: 'x' }] } });
    assert.equal(r.status, 201, r.text);
  });

  test('online users (mm-online) and admins pass the firewall', async () => {
    for (const a of [auth(ONLINE), ADMIN_AUTH]) {
      let r = await standin.call('POST', '/medic/_find', { auth: a, body: { selector: { type: 'person' } } });
      assert.equal(r.status, 200, r.text);
      r = await standin.call('GET', `/api/v1/hydrate?doc_ids=${encodeURIComponent(JSON.stringify([ids.person]))}`, { auth: a });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body[0].doc.parent.name, 'Area 9');
      r = await standin.call('GET', '/medic/_design/medic-client/_view/reports_by_form?reduce=false', { auth: a });
      assert.equal(r.status, 200, r.text);
    }
  });

  test('GET /_session is CouchDB\'s, for the caller: its name and roles (how a client learns it is online)', async () => {
    let r = await standin.call('GET', '/_session', { auth: auth(ONLINE) });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.userCtx.name, ONLINE.name);
    assert.deepEqual(r.body.userCtx.roles, ['interop', 'mm-online']);
    r = await standin.call('GET', '/_session', { auth: auth(CHW) });
    assert.deepEqual(r.body.userCtx.roles, ['chw'], 'an offline user: no mm-online');
  });

  test('writes through /medic need can_edit (admins bypass), reads and _find do not', async () => {
    const doc = { _id: `canedit-${RUN}`, type: 'note' };
    let r = await standin.call('PUT', `/medic/${doc._id}`, { auth: auth(CREATOR), body: doc, headers: JSON_ACCEPT });
    assert.equal(r.status, 403, r.text);
    assert.deepEqual(r.body, { code: 403, error: 'Insufficient privileges' });
    r = await standin.call('POST', '/medic/_index', { auth: auth(CREATOR), body: { index: { fields: ['x'] } } });
    assert.equal(r.status, 403, '_index is a write as routing.js sees it');
    r = await standin.call('POST', '/medic/_find', { auth: auth(CREATOR), body: { selector: { _id: ids.person } } });
    assert.equal(r.status, 200);
    r = await standin.call('PUT', `/medic/${doc._id}`, { auth: auth(ONLINE), body: doc });
    assert.equal(r.status, 201, r.text);
    r = await standin.call('DELETE', `/medic/${doc._id}?rev=${r.body.rev}`, { auth: auth(CREATOR) });
    assert.equal(r.status, 403);
  });

  test('GET /medic redirects to /medic/ as CHT does', async () => {
    const r = await standin.call('GET', '/medic', { auth: ADMIN_AUTH, redirect: 'manual' });
    assert.equal(r.status, 302);
    assert.equal(r.headers.get('location'), '/medic/');
    const followed = await standin.call('GET', '/medic', { auth: ADMIN_AUTH });
    assert.equal(followed.status, 200);
    assert.equal(followed.body.db_name, DB);
  });

  test('the /medic access table', () => {
    const cases = [
      // method, path, online, expected
      ['POST', '/_find', false, 'firewall'], ['POST', '/_find', true, 'proxy'],
      ['POST', '/_explain', true, 'proxy'], ['POST', '/_index', true, 'can_edit'], ['GET', '/_index', true, 'proxy'],
      ['GET', '/_design/medic-client/_view/contacts_by_phone', false, 'firewall'],
      ['GET', '/_design/medic-client/_view/contacts_by_phone', true, 'proxy'],
      ['POST', '/_design/medic-client/_view/contacts_by_phone', true, 'proxy'],
      ['GET', '/_changes', false, 'proxy'], ['POST', '/_all_docs', false, 'proxy'], ['POST', '/_bulk_get', false, 'proxy'],
      ['POST', '/_bulk_docs', false, 'can_edit'], ['POST', '/_bulk_docs', true, 'can_edit'],
      ['POST', '/', false, 'can_edit'], ['GET', '/', false, 'firewall'], ['GET', '/', true, 'proxy'],
      ['GET', '/some-doc', false, 'proxy'], ['PUT', '/some-doc', false, 'can_edit'], ['DELETE', '/some-doc', true, 'can_edit'],
      ['GET', '/some-doc/attachment.png', false, 'proxy'], ['PUT', '/some-doc/a.png', true, 'can_edit'],
      ['PUT', '/_local/checkpoint', false, 'proxy'], ['POST', '/_revs_diff', false, 'proxy'],
      ['POST', '/_compact', false, 'firewall'], ['POST', '/_compact', true, 'can_edit'],
      ['PUT', '/_security', false, 'firewall'], ['GET', '/_design/medic-client', false, 'proxy'],
    ];
    for (const [method, p, online, expected] of cases) {
      assert.equal(medicAccess(method, p, online), expected, `${method} ${p} online=${online}`);
    }
  });
});

// ---------------------------------------------------------------------------
// 2. POST /api/v2/users

describe('POST /api/v2/users (users.js createUser)', () => {
  test('an online interop user: mm-online added, _users doc and user-settings, it can then _find', async () => {
    const u = { username: `standin-api-${RUN}`, password: pw(), roles: ['interop_api'], fullname: 'Interop API' };
    createdUsers.push(u.username);
    const r = await standin.call('POST', '/api/v2/users', { auth: ADMIN_AUTH, body: u });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['user', 'user-settings']);
    assert.equal(r.body.user.id, `org.couchdb.user:${u.username}`);
    assert.match(r.body.user.rev, /^1-/);
    const stored = await couch('GET', `/_users/org.couchdb.user:${u.username}`);
    assert.equal(stored.status, 200);
    assert.deepEqual(stored.body.roles, ['interop_api', 'mm-online']);
    assert.equal(stored.body.type, 'user');
    assert.equal(stored.body.password_change_required, false, 'the role has can_skip_password_change');
    const settingsDoc = await medicDoc(`org.couchdb.user:${u.username}`);
    assert.equal(settingsDoc.type, 'user-settings');
    assert.equal(settingsDoc.fullname, 'Interop API');
    assert.deepEqual(settingsDoc.roles, ['interop_api', 'mm-online']);

    const a = basic(u.username, u.password);
    let q = await standin.call('POST', '/medic/_find', { auth: a, body: { selector: { _id: ids.person } } });
    assert.equal(q.status, 200, q.text);
    q = await standin.call('POST', '/api/v2/records', {
      auth: a, body: { _meta: { form: 'interop_follow_up' }, patient_uuid: ids.person, reason: 'x' },
    });
    assert.equal(q.status, 200, q.text);
  });

  test('an offline user without place and contact is refused (400, users.js message)', async () => {
    for (const roles of [['chw'], ['not_configured'], ['mm-online']]) {
      const body = { username: `standin-off-${RUN}`, password: pw(), roles };
      let r = await standin.call('POST', '/api/v2/users', { auth: ADMIN_AUTH, body, headers: JSON_ACCEPT });
      assert.equal(r.status, 400, `${roles}: ${r.text}`);
      assert.deepEqual(r.body, {
        code: 400,
        error: {
          message: 'Missing required fields: place, contact',
          translationKey: 'fields.required',
          translationParams: { fields: 'place, contact' },
        },
      });
      r = await standin.call('POST', '/api/v2/users', { auth: ADMIN_AUTH, body });
      assert.equal(r.text, 'Missing required fields: place, contact', 'as text without Accept: application/json');
    }
    assert.equal((await couch('GET', `/_users/org.couchdb.user:standin-off-${RUN}`)).status, 404);
  });

  test('an offline user with a place and a new contact: contact created there, mm-online removed', async () => {
    const username = `standin-chw-api-${RUN}`;
    createdUsers.push(username);
    const r = await standin.call('POST', '/api/v2/users', {
      auth: ADMIN_AUTH,
      body: { username, password: pw(), roles: ['chw', 'mm-online'], place: ids.clinic, contact: { name: 'New CHW' } },
    });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.body.contact.id);
    const stored = await couch('GET', `/_users/org.couchdb.user:${username}`);
    assert.deepEqual(stored.body.roles, ['chw']);
    assert.deepEqual(stored.body.facility_id, [ids.clinic]);
    assert.equal(stored.body.contact_id, r.body.contact.id);
    assert.equal(stored.body.password_change_required, true);
    const contact = await medicDoc(r.body.contact.id);
    assert.equal(contact.type, 'person');
    assert.deepEqual(contact.parent, { _id: ids.clinic, parent: { _id: ids.hc, parent: { _id: ids.district } } });
    assert.equal((await medicDoc(ids.clinic)).contact, undefined, 'an existing place keeps its primary contact');
  });

  test('validation: username, password, taken names; permissions and Content-Type', async () => {
    const base = { password: pw(), roles: ['interop_api'] };
    const cases = [
      [{ ...base, username: 'Bad Name' }, 'username.invalid'],
      [{ ...base, username: `standin-pw-${RUN}`, password: 'Ab1!' }, 'password.length.minimum'],
      [{ ...base, username: `standin-pw-${RUN}`, password: 'aaaaaaaaaaaa' }, 'password.weak'],
      [{ ...base, username: CHW.name }, 'username.taken'],
    ];
    for (const [body, key] of cases) {
      const r = await standin.call('POST', '/api/v2/users', { auth: ADMIN_AUTH, body, headers: JSON_ACCEPT });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.error.translationKey, key, r.text);
    }
    let r = await standin.call('POST', '/api/v2/users', { auth: ADMIN_AUTH, body: { roles: ['interop_api'] }, headers: JSON_ACCEPT });
    assert.equal(r.body.error.message, 'Missing required fields: username, password');
    r = await standin.call('POST', '/api/v2/users', {
      auth: auth(ONLINE), body: { ...base, username: `standin-x-${RUN}` }, headers: JSON_ACCEPT,
    });
    assert.equal(r.status, 403, 'needs can_edit + can_create_users');
    r = await standin.call('POST', '/api/v2/users', { auth: ADMIN_AUTH, body: '{}', contentType: 'text/plain', headers: JSON_ACCEPT });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'Content-Type must be application/json or text/csv');
    // an array: one answer per user, errors as {error}
    r = await standin.call('POST', '/api/v2/users', { auth: ADMIN_AUTH, body: [{ ...base }] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, [{ error: 'Missing required fields: username' }]);
    assert.equal(passwordScore('aaaaaaaaaaaa'), 14);
    assert.ok(passwordScore('Aa1!aaaa') >= 50);
  });
});

// ---------------------------------------------------------------------------
// 3. permissions and POST /api/v1/people

describe('POST /api/v1/people (people.js, routing.js)', () => {
  test('needs can_edit and can_create_people; offline users with both may (CHT does not ask for online)', async () => {
    let r = await standin.call('POST', '/api/v1/people', { auth: auth(CREATOR), body: { name: 'x' }, headers: JSON_ACCEPT });
    assert.equal(r.status, 403, 'can_create_people without can_edit');
    assert.deepEqual(r.body, { code: 403, error: 'Insufficient privileges' });
    r = await standin.call('POST', '/api/v1/people', { auth: auth(CHW), body: { name: 'By a CHW', place: ids.clinic } });
    assert.equal(r.status, 200, r.text);
  });

  test('a given _id is used; the same _id again is a 409 conflict', async () => {
    const _id = `fixed-person-${RUN}`;
    let r = await standin.call('POST', '/api/v1/people', {
      auth: auth(ONLINE), body: { _id, name: 'Fixed Id', place: ids.clinic, external_id: 'EMR-1', custom: { nested: [1, 2] } },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.ok, true);
    assert.equal(r.body.id, _id);
    assert.match(r.body.rev, /^1-/);
    const doc = await medicDoc(_id);
    assert.equal(doc.type, 'person', 'type defaults to person');
    assert.equal(doc.external_id, 'EMR-1');
    assert.deepEqual(doc.custom, { nested: [1, 2] }, 'other fields kept');
    assert.equal(doc.place, undefined);

    r = await standin.call('POST', '/api/v1/people', { auth: auth(ONLINE), body: { _id, name: 'Again' }, headers: JSON_ACCEPT });
    assert.equal(r.status, 409, r.text);
    assert.deepEqual(r.body, { code: 409, error: 'Document update conflict.' });
    r = await standin.call('POST', '/api/v1/people', { auth: auth(ONLINE), body: { _id, name: 'Again' } });
    assert.equal(r.status, 409);
    assert.equal(r.text, 'Document update conflict.');
    assert.equal((await medicDoc(_id)).name, 'Fixed Id', 'not overwritten');
  });

  test('type is stored as given; validation messages as people.js', async () => {
    let r = await standin.call('POST', '/api/v1/people', { auth: ADMIN_AUTH, body: { name: 'Typed', type: 'patient', place: ids.clinic } });
    assert.equal(r.status, 200, r.text);
    let doc = await medicDoc(r.body.id);
    assert.equal(doc.type, 'patient');
    assert.equal(doc.contact_type, undefined);
    r = await standin.call('POST', '/api/v1/people', {
      auth: ADMIN_AUTH, body: { name: 'Contact typed', type: 'contact', contact_type: 'patient', reported_date: '2024-01-31T10:00:00.000+03:00' },
    });
    assert.equal(r.status, 200, r.text);
    doc = await medicDoc(r.body.id);
    assert.equal(doc.type, 'contact');
    assert.equal(doc.reported_date, Date.UTC(2024, 0, 31, 7));

    const bad = [
      [{ phone: '1' }, 'Person is missing a "name" property.'],
      [{ name: 5 }, 'Property "name" must be a string.'],
      [{ name: 'x', type: 'clinic' }, 'Wrong type, this is not a person.'],
      [{ name: 'x', reported_date: '2024-01-31' }, 'Reported date is invalid: 2024-01-31'],
    ];
    for (const [body, message] of bad) {
      r = await standin.call('POST', '/api/v1/people', { auth: ADMIN_AUTH, body, headers: JSON_ACCEPT });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.body, { code: 400, error: message });
    }
    r = await standin.call('POST', '/api/v1/people', { auth: ADMIN_AUTH, body: { name: 'x', place: 'nowhere' }, headers: JSON_ACCEPT });
    assert.equal(r.status, 404);
    assert.equal(r.body.error, 'Failed to find place.');
    r = await standin.call('POST', '/api/v1/people', { auth: ADMIN_AUTH, body: {}, headers: JSON_ACCEPT });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'Request body is empty or Content-Type header was not set to application/json.');
    r = await standin.call('POST', '/api/v1/people', {
      auth: ADMIN_AUTH, body: { name: 'x' }, contentType: 'application/json; charset=utf-8', headers: JSON_ACCEPT,
    });
    assert.equal(r.status, 400, 'routing.js wants the exact Content-Type');
    assert.equal(r.body.error, 'Content-Type must be application/json');
  });
});

// ---------------------------------------------------------------------------
// 4. contacts-by-phone

describe('contacts-by-phone (controllers/contacts-by-phone.js, phone-number)', () => {
  test('normalisation: E.164, national with the default country code, 00 prefix, validation modes', () => {
    const s = { default_country_code: 254 };
    assert.equal(normalize(s, '+254712000111'), '+254712000111');
    assert.equal(normalize(s, '+254 712-000.111'), '+254712000111');
    assert.equal(normalize(s, '0712000111'), '+254712000111');
    assert.equal(normalize(s, '712000111'), '+254712000111');
    assert.equal(normalize(s, '254712000111'), '+254712000111');
    assert.equal(normalize(s, '00254712000111'), '+254712000111');
    assert.equal(normalize(s, '+1 (415) 555-0123'), '+14155550123');
    assert.equal(normalize(s, '+44 20 7946 0958'), '+442079460958');
    assert.equal(normalize(s, '+977 9841234567'), '+9779841234567');
    assert.equal(normalize(s, '07120001110'), false, 'too long for Kenya');
    assert.equal(normalize(s, '+25471200'), false, 'too short for Kenya');
    assert.equal(normalize(s, '1-800-MICROSOFT'), false, 'letters');
    assert.equal(normalize({}, '0712000111'), false, 'a national number needs default_country_code');
    assert.equal(normalize({}, '+254712000111'), '+254712000111');
    assert.equal(normalize({ default_country_code: 254, phone_validation: 'none' }, '07120001110'), '+2547120001110');
    assert.equal(normalize({ default_country_code: 1 }, '1 415 555 0123'), '+14155550123');
    assert.equal(normalize({ default_country_code: 1 }, '011 254 712 000 111'), '+254712000111');
    assert.equal(normalize(s, ''), false);
    assert.equal(normalize(s, 254712000111), false, 'not a string');
  });

  test('GET and POST find the hydrated contacts by their stored phone, any format of it', async () => {
    for (const phone of ['+254712000111', '0712 000 111', '254712000111']) {
      const r = await standin.call('GET', `/api/v1/contacts-by-phone?phone=${encodeURIComponent(phone)}`, { auth: auth(ONLINE) });
      assert.equal(r.status, 200, `${phone}: ${r.text}`);
      assert.equal(r.body.ok, true);
      assert.deepEqual(r.body.docs.map((d) => d._id), [ids.person]);
      assert.equal(r.body.docs[0].parent.name, 'Area 9', 'hydrated');
      assert.equal(r.body.docs[0].parent.parent.parent.name, 'District');
    }
    const r = await standin.call('POST', '/api/v1/contacts-by-phone', { auth: ADMIN_AUTH, body: { phone: '0712000111' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.docs.map((d) => d._id), [ids.person]);
  });

  test('several contacts share a number: all returned; none: 404; invalid: 400', async () => {
    const r0 = await standin.call('POST', '/api/v1/places', {
      auth: ADMIN_AUTH, body: { name: 'Shared phone place', type: 'clinic', parent: ids.hc, phone: '+254733000222' },
    });
    const r1 = await standin.call('POST', '/api/v1/people', { auth: ADMIN_AUTH, body: { name: 'Shared', phone: '+254733000222' } });
    let r = await standin.call('GET', '/api/v1/contacts-by-phone?phone=0733000222', { auth: auth(ONLINE) });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.docs.map((d) => d._id).sort(), [r0.body.id, r1.body.id].sort());

    r = await standin.call('GET', '/api/v1/contacts-by-phone?phone=0799999999', { auth: auth(ONLINE) });
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: 'not_found', reason: 'no matches found' });
    const invalid = { error: 'bad_request', reason: '`phone` parameter is required and must be a valid phone number' };
    for (const p of ['', '?phone=', '?phone=abc', '?phone=123']) {
      r = await standin.call('GET', `/api/v1/contacts-by-phone${p}`, { auth: auth(ONLINE) });
      assert.equal(r.status, 400, p);
      assert.deepEqual(r.body, invalid);
    }
    r = await standin.call('GET', '/api/v1/contacts-by-phone?phone=0712000111', { headers: JSON_ACCEPT });
    assert.equal(r.status, 401);
  });
});

// ---------------------------------------------------------------------------
// 5. records API

describe('records API (services/records.js, report/validate.js)', () => {
  test('never success: false; wrong types and missing fields land in errors with CHT messages', async () => {
    const t0 = Date.now();
    const r = await standin.call('POST', '/api/v2/records', {
      auth: auth(ONLINE),
      body: {
        _meta: { form: 'interop_follow_up', from: '0712000111' },
        Patient_UUID: ids.person, task_id: 5, visits: 1.5, urgent: 'yes', extra: 'flat', not_a_field: 'dropped',
      },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(Object.keys(r.body).sort(), ['id', 'success']);
    assert.equal(r.body.success, true);
    const doc = await medicDoc(r.body.id);
    assert.deepEqual(doc.errors, [
      { code: 'sys.incorrect_type', message: 'Incorrect type of field task_id, expected string.' },
      { code: 'sys.incorrect_type', message: 'Incorrect type of field visits, expected integer.' },
      { code: 'sys.incorrect_type', message: 'Incorrect type of field urgent, expected boolean.' },
      { code: 'sys.incorrect_type', message: 'Incorrect type of field extra, expected complex.' },
      { code: 'sys.missing_fields', message: 'Missing or invalid fields: reason.' },
    ]);
    assert.equal(doc.form, 'INTEROP_FOLLOW_UP', 'lower-case code accepted');
    assert.deepEqual(doc.fields, { patient_uuid: ids.person, task_id: 5, visits: 1.5, urgent: 'yes', extra: 'flat' });
    assert.ok(doc.reported_date >= t0 && doc.reported_date <= Date.now(), 'the server time');
    assert.equal(doc.from, '+254712000111', 'from normalised as phoneNumber.normalize');
    assert.deepEqual(doc.sms_message, { form: 'INTEROP_FOLLOW_UP', from: '0712000111' });
    assert.equal(doc.contact, undefined);
    assert.equal(doc.patient_id, undefined);
  });

  test('several missing required fields: one error listing them as CHT renders an array', async () => {
    const r = await standin.call('POST', '/api/v2/records', { auth: auth(ONLINE), body: { _meta: { form: 'INTEROP_FOLLOW_UP' } } });
    assert.equal(r.status, 200);
    const doc = await medicDoc(r.body.id);
    assert.deepEqual(doc.errors, [{ code: 'sys.missing_fields', message: 'Missing or invalid fields: patient_uuid,reason.' }]);
  });
});

// ---------------------------------------------------------------------------
// 6. outbound: User-Agent, redirects, success rule

describe('outbound requests (couch-request, outbound.js)', () => {
  let n = 0;
  const push = async (kind, behaviour) => {
    receiver.on('/push', behaviour);
    const id = `push-${kind}-${++n}-${RUN}`;
    const r = await couch('PUT', `/${encodeURIComponent(DB)}/${id}`, { type: 'data_record', form: 'redirect_test', fields: { kind } });
    assert.equal(r.status, 201, r.text);
    const result = await standin.flush('?retry=false');
    receiver.reset('/push');
    const attempt = result.attempts.find((a) => a.doc_id === id);
    const task = await couch('GET', `/${encodeURIComponent(DB + '-sentinel')}/task:outbound:${id}`);
    return { id, attempt, queued: task.status === 200 };
  };

  test('User-Agent: Community Health Toolkit/<version> (<platform>,<arch>)', async () => {
    const { id, attempt } = await push('plain', {});
    assert.equal(attempt.status, 200);
    const req = receiver.at('/push').find((q) => q.body.id === id);
    assert.equal(req.headers['user-agent'], `Community Health Toolkit/4.22.0 (${os.platform()},${os.arch()})`);
    assert.equal(req.headers.accept, 'application/json');
    assert.equal(req.headers['content-type'], 'application/json');
  });

  test('301/302/303 are followed with a GET, 307/308 repeat the POST; the final answer decides', async () => {
    for (const status of [301, 302, 303, 307, 308]) {
      const landing = `/landing-${status}`;
      receiver.on(landing, { status: 201 });
      const { id, attempt, queued } = await push(`r${status}`, { status, location: receiver.base + landing });
      assert.equal(attempt.status, 201, `${status}: the final status`);
      assert.equal(attempt.ok, true);
      assert.equal(queued, false);
      const got = receiver.at(landing).at(-1);
      if (status >= 307) {
        assert.equal(got.method, 'POST', `${status}`);
        assert.deepEqual(got.body, { id, kind: `r${status}` });
      } else {
        assert.equal(got.method, 'GET', `${status}`);
        assert.equal(got.body, '');
      }
    }
    // redirected to a failing endpoint: a failure, queued
    receiver.on('/landing-bad', { status: 500 });
    const { attempt, queued } = await push('rbad', { status: 302, location: `${receiver.base}/landing-bad` });
    assert.equal(attempt.status, 500);
    assert.equal(queued, true);
  });

  test('success = 2xx or 301-398 on the final response: a 3xx fetch does not follow counts', async () => {
    let r = await push('304', { status: 304, location: null, contentType: null, body: '' });
    assert.equal(r.attempt.status, 304);
    assert.equal(r.queued, false);
    r = await push('300', { status: 300, location: null });
    assert.equal(r.attempt.ok, false);
    assert.equal(r.queued, true);
    r = await push('399', { status: 399, location: null });
    assert.equal(r.queued, true);
  });

  test('a 2xx whose body claims JSON but does not parse fails, as couch-request reads it', async () => {
    let r = await push('emptyjson', { status: 200, body: '' });
    assert.equal(r.attempt.status, 200);
    assert.equal(r.attempt.ok, false);
    assert.equal(r.attempt.error_code, 'invalid_json');
    assert.equal(r.queued, true);
    r = await push('204', { status: 204, contentType: null, body: '' });
    assert.equal(r.attempt.ok, true);
    r = await push('text', { status: 200, contentType: 'text/plain', body: 'ok' });
    assert.equal(r.attempt.ok, true);
    r = await push('fhirjson', { status: 201, contentType: 'application/fhir+json', body: '' });
    assert.equal(r.attempt.ok, true, 'only application/json* is parsed');
  });
});

// ---------------------------------------------------------------------------
// 7. stock views, no Mango index, unindexed _find counter

describe('stock views and unindexed finds (ddocs/medic-db, hydration.js)', () => {
  test('the medic db has the stock design docs and no Mango index', async () => {
    const client = await medicDoc('_design/medic-client');
    assert.deepEqual(Object.keys(client.views).sort(), ['contacts_by_phone', 'contacts_by_reference', 'reports_by_form', 'reports_by_subject']);
    const medic = await medicDoc('_design/medic');
    assert.deepEqual(Object.keys(medic.views), ['docs_by_shortcode']);
    const r = await standin.call('GET', '/medic/_index', { auth: ADMIN_AUTH });
    assert.deepEqual(r.body.indexes.map((i) => i.type), ['special']);
  });

  test('views answer through /medic as CHT\'s maps do', async () => {
    const view = (ddoc, name, q) => standin.call('GET', `/medic/_design/${ddoc}/_view/${name}?${q}`, { auth: auth(ONLINE) });
    const key = (k) => `key=${encodeURIComponent(JSON.stringify(k))}`;
    let r = await view('medic-client', 'contacts_by_reference', `${key(['shortcode', '12345'])}&include_docs=true`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.rows.map((row) => [row.id, row.doc.name, typeof row.value]), [[ids.person, 'Phone Owner', 'number']]);
    r = await view('medic-client', 'contacts_by_reference', key(['external', 'RC9']));
    assert.deepEqual(r.body.rows.map((row) => row.id), [ids.person]);
    r = await view('medic-client', 'contacts_by_phone', key('+254712000111'));
    assert.deepEqual(r.body.rows.map((row) => row.id), [ids.person]);
    r = await view('medic', 'docs_by_shortcode', key('12345'));
    assert.deepEqual(r.body.rows.map((row) => row.id), [ids.person]);

    const rec = await standin.call('POST', '/api/v2/records', {
      auth: ADMIN_AUTH, body: { _meta: { form: 'INTEROP_FOLLOW_UP' }, patient_uuid: ids.person, reason: 'r' },
    });
    r = await view('medic-client', 'reports_by_subject', `${key(ids.person)}&include_docs=true`);
    assert.ok(r.body.rows.some((row) => row.id === rec.body.id && row.doc.fields.reason === 'r'));
    r = await view('medic-client', 'reports_by_form', `${key(['INTEROP_FOLLOW_UP'])}&reduce=false`);
    assert.ok(r.body.rows.some((row) => row.id === rec.body.id));
    r = await view('medic-client', 'reports_by_form', 'group=true');
    assert.ok(r.body.rows.some((row) => row.key[0] === 'INTEROP_FOLLOW_UP' && row.value === true), '4.x reduce');
  });

  test('GET /_standin/stats counts unindexed _find calls (field names only), views, and resets', async () => {
    await standin.call('POST', '/_standin/stats/reset');
    let r = await standin.call('POST', '/medic/_find', {
      auth: auth(ONLINE), body: { selector: { type: 'person', patient_id: '12345' } },
    });
    assert.equal(r.status, 200);
    assert.match(r.body.warning, /No matching index found/);
    assert.equal(r.body.docs[0]._id, ids.person);
    r = await standin.call('POST', '/medic/_find', { auth: auth(ONLINE), body: { selector: { _id: ids.person } } });
    assert.equal(r.status, 200);
    r = await standin.call('POST', '/medic/_find', {
      auth: auth(ONLINE), body: { selector: { $and: [{ form: 'X' }, { 'fields.task_id': { $eq: 't' } }] }, sort: ['reported_date'] },
    });
    assert.equal(r.status, 400, 'no index can serve the sort');
    await standin.call('GET', `/medic/_design/medic-client/_view/contacts_by_reference?key=${encodeURIComponent('["shortcode","12345"]')}`, { auth: auth(ONLINE) });
    // hydrating a report whose subject is a short code uses the view, not _find
    await standin.call('GET', `/api/v1/hydrate?doc_ids=${encodeURIComponent(JSON.stringify([ids.person]))}`, { auth: auth(ONLINE) });

    let stats = await standin.stats();
    assert.equal(stats.finds, 3);
    assert.equal(stats.unindexed_finds, 3);
    assert.deepEqual(stats.unindexed.map((u) => [u.reason, u.fields]), [
      ['no_matching_index', ['patient_id', 'type']],
      ['all_docs_index', ['_id']],
      ['no_usable_index', ['fields.task_id', 'form']],
    ]);
    assert.equal(stats.view_queries['medic-client/contacts_by_reference'], 1);
    assert.ok(!JSON.stringify(stats).includes('12345'), 'no selector values');

    // a find an index can serve is not counted
    r = await standin.call('POST', '/medic/_index', { auth: ADMIN_AUTH, body: { index: { fields: ['rc_code'] }, name: 'rc' } });
    assert.equal(r.status, 200, r.text);
    r = await standin.call('POST', '/medic/_find', { auth: auth(ONLINE), body: { selector: { rc_code: 'rc9' } } });
    assert.equal(r.status, 200);
    assert.equal(r.body.warning, undefined);
    stats = (await standin.call('POST', '/_standin/stats/reset')).body;
    assert.equal(stats.finds, 4);
    assert.equal(stats.unindexed_finds, 3);
    stats = await standin.stats();
    assert.equal(stats.finds, 0);
    assert.equal(stats.unindexed_finds, 0);
  });

  test('a restart leaves existing design docs alone and removes the Mango indexes older stand-ins made', async () => {
    const before = (await medicDoc('_design/medic-client'))._rev;
    for (const field of ['patient_id', 'place_id']) {
      const r = await couch('POST', `/${encodeURIComponent(DB)}/_index`, { index: { fields: [field] } });
      assert.equal(r.status, 200, r.text);
    }
    await standin.stop();
    standin = await startStandin(settingsFile, { db: DB });
    assert.equal((await medicDoc('_design/medic-client'))._rev, before);
    const r = await couch('GET', `/${encodeURIComponent(DB)}/_index`);
    const left = r.body.indexes.map((i) => (i.type === 'special' ? i.name : `${i.name}:${i.def.fields.map((f) => Object.keys(f)[0])}`));
    assert.deepEqual(left.sort(), ['_all_docs', 'rc:rc_code'], 'the legacy ones removed, the test\'s own kept');
  });
});
