// JSON records, as cht-core api/src/services/records.js createRecordByJSON
// builds them (getDataRecord + smsparser.merge + report/validate).

import { PublicError } from './http.mjs';
import { normalize as normalizePhone } from './phone.mjs';

const DATE_NUMBER_STRING = /(\d{13,})/;
const empty = (val) => val === '' || val === null || val === undefined;

// moment(value).valueOf() for the shapes a JSON client sends: ms numbers,
// "YYYY-MM-DD" (moment parses it as LOCAL midnight), other ISO strings.
const momentValue = (value) => {
  if (typeof value === 'number') {
    return value;
  }
  if (value instanceof Date) {
    return value.valueOf();
  }
  if (typeof value === 'string') {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
    if (m) {
      return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])).valueOf();
    }
    return new Date(value).valueOf();
  }
  if (value === undefined) {
    return Date.now(); // moment(undefined) is "now"
  }
  return NaN; // moment(null) / objects: invalid date
};

// Number, or undefined (keep "now")
const parseSentTimestamp = (ts) => {
  if (typeof ts === 'number') {
    return ts;
  }
  if (typeof ts === 'string') {
    if (DATE_NUMBER_STRING.test(ts)) {
      return Number(ts);
    }
    return momentValue(ts);
  }
  return undefined;
};

// smsparser.merge: copy the form-defined key (dot notation makes sub-objects)
const merge = (key, record, formData) => {
  if (key.length > 1) {
    const tmp = key.shift();
    if (formData[tmp]) {
      if (!record[tmp]) {
        record[tmp] = {};
      }
      merge(key, record[tmp], formData[tmp]);
    }
  } else {
    record[key[0]] = formData[key[0]];
  }
};

// report/validate.js: per form field (looked up with its key as defined, no
// dot traversal): a required field whose value is undefined/null is missing;
// a present value of the wrong JSON type (integer, string, boolean, complex)
// gives sys.incorrect_type; the missing ones come last, in one
// sys.missing_fields error. Fields with a `list` are not type-checked.
const validate = (def, formData) => {
  const errors = [];
  const missing = [];
  const exists = (v) => v !== undefined && v !== null;
  for (const [k, field] of Object.entries(def.fields || {})) {
    const value = formData[k];
    if (field && field.required && !exists(value)) {
      missing.push(k);
    } else if (exists(value) && field && !field.list) {
      const wrong =
        (field.type === 'integer' && (typeof value !== 'number' || !Number.isInteger(value))) ||
        (field.type === 'string' && typeof value !== 'string') ||
        (field.type === 'boolean' && typeof value !== 'boolean') ||
        (field.type === 'complex' && typeof value !== 'object');
      if (wrong) {
        errors.push({ code: 'sys.incorrect_type', ctx: { expectedType: field.type, key: k } });
      }
    }
  }
  if (missing.length) {
    errors.push({ code: 'sys.missing_fields', ctx: { fields: missing } });
  }
  return errors;
};

// api/resources/translations/messages-en.properties, rendered as CHT's
// config.translate does ({{x}} placeholders; an array shows as "a,b").
const MESSAGES = {
  'sys.missing_fields': 'Missing or invalid fields: {{fields}}.',
  'sys.incorrect_type': 'Incorrect type of field {{key}}, expected {{expectedType}}.',
  'sys.empty': 'Message appears empty.',
  'sys.form_not_found': "Form '{{form}}' not found.",
  extra_fields: 'Extra fields.',
};

const translate = (code, ctx = {}) => {
  const template = MESSAGES[code];
  if (!template) {
    return code;
  }
  return template.replace(/\{\{(.+?)\}\}/g, (_, name) => String(ctx[name.trim()]));
};

// records.js addError: the message is rendered, the ctx dropped:
// the stored error is {code, message}.
const addError = (record, error) => {
  if (typeof error === 'string') {
    error = { code: error };
  }
  if (!error.message) {
    error.message = translate(error.code, error.ctx);
    delete error.ctx;
  }
  record.errors.push(error);
};

const getForm = (settings, code) => {
  const forms = settings.forms;
  return forms && Object.prototype.hasOwnProperty.call(forms, code) ? forms[code] : undefined;
};

const getDataRecord = (formData, options, def, settings) => {
  const record = {
    type: 'data_record',
    from: normalizePhone(settings, options.from) || options.from,
    form: options.form,
    errors: [],
    tasks: [],
    fields: {},
    reported_date: Date.now(),
    // CHT keeps the POSTed _meta here ("keep POST data part of record")
    sms_message: options,
  };
  const ts = parseSentTimestamp(options.reported_date);
  if (ts) {
    record.reported_date = ts;
  }
  if (def.facility_reference) {
    const val = formData[def.facility_reference];
    record.refid = val && typeof val.toUpperCase === 'function' ? val.toUpperCase() : val;
  }
  for (const k of Object.keys(def.fields || {})) {
    merge(k.split('.'), record.fields, formData);
  }
  for (const err of validate(def, formData)) {
    addError(record, err);
  }
  if (typeof options.message === 'string' && !options.message.trim()) {
    addError(record, 'sys.empty');
  }
  return record;
};

// Throws PublicError (-> 500 "Server error" with details) for bad input,
// exactly where CHT does.
export function createRecordByJSON(data, settings) {
  if (Array.isArray(data) || empty(data._meta)) {
    throw new PublicError('Missing _meta property.');
  }
  if (empty(data._meta.form)) {
    throw new PublicError('Missing required field: form');
  }
  const options = data._meta;
  if (typeof options.form !== 'string') {
    throw new Error('options.form.toUpperCase is not a function'); // what CHT hits: 500 without details
  }
  options.form = options.form.toUpperCase();
  delete data._meta;

  const def = getForm(settings, options.form);
  if (!def) {
    throw new PublicError('Form not found: ' + options.form);
  }
  const fields = def.fields || {};
  const corrected = {};
  for (const k of Object.keys(data)) {
    // the type lookup uses the key as sent, the stored key is lower-cased
    const field = Object.prototype.hasOwnProperty.call(fields, k) ? fields[k] : undefined;
    if (field) {
      if (field.type === 'date') {
        data[k] = momentValue(data[k]);
      } else if (field.type === 'boolean' && [1, 0].includes(data[k])) {
        data[k] = !!data[k];
      }
    }
    corrected[k.toLowerCase()] = data[k];
  }
  return getDataRecord(corrected, options, def, settings);
}
