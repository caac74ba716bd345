// Phone number normalisation standing in for cht-core's
// shared-libs/phone-number (a wrapper around google-libphonenumber, which is
// not available here: no npm dependencies). normalize(settings, phone) gives
// the E.164 form ("+<country code><national number>") or false, like
// phoneNumber.normalize:
// - letters anywhere make the number invalid (CHT refuses 1-800-MICROSOFT);
// - spaces, dots, hyphens, brackets and slashes are ignored;
// - "+<digits>" is international; so is "00<digits>" (and "011<digits>" when
//   the default country is +1), the common international call prefixes;
// - anything else is a national number of app_settings.default_country_code
//   (no default country code -> invalid, as libphonenumber's unknown region):
//   one leading trunk "0" is dropped (a leading "1" for +1), except for the
//   countries whose numbers keep their 0 (Italy, ...); a national number that
//   already starts with the country code is accepted as it is;
// - app_settings.phone_validation: "none" accepts any number that parses,
//   "partial" and the default ("full") check the length of the national
//   number, per country for the countries in LENGTHS, else 4..(15 - code) digits.
// What differs from libphonenumber: no per-prefix validity rules (a Kenyan
// number starting with 5 passes "full" validation here if it has 9 digits),
// length tables only for the countries below, no short numbers, no
// extensions, no per-region international prefixes beyond 00 / 011.

// ITU-T E.164 assigned country calling codes. No code is a prefix of
// another, so the first match of 1, 2 or 3 digits is the code.
const CALLING_CODES = new Set(`
1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58
60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98
211 212 213 216 218 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234 235
236 237 238 239 240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255 256
257 258 260 261 262 263 264 265 266 267 268 269 290 291 297 298 299
350 351 352 353 354 355 356 357 358 359 370 371 372 373 374 375 376 377 378 379 380
381 382 383 385 386 387 389 420 421 423 500 501 502 503 504 505 506 507 508 509
590 591 592 593 594 595 596 597 598 599 670 672 673 674 675 676 677 678 679 680 681
682 683 685 686 687 688 689 690 691 692 800 808 850 852 853 855 856 870 878 880 881
882 883 886 888 960 961 962 963 964 965 966 967 968 970 971 972 973 974 975 976 977
979 992 993 994 995 996 998
`.trim().split(/\s+/));

// National significant number lengths [min, max] for countries CHT is
// commonly deployed in (and a few others).
const LENGTHS = {
  1: [10, 10], 27: [9, 9], 33: [9, 9], 34: [9, 9], 39: [6, 11], 44: [9, 10], 49: [6, 13],
  62: [9, 12], 63: [8, 10], 91: [10, 10], 92: [9, 10],
  221: [9, 9], 223: [8, 8], 224: [8, 9], 225: [10, 10], 226: [8, 8], 227: [8, 8], 228: [8, 8],
  229: [8, 10], 233: [9, 9], 234: [8, 10], 237: [9, 9], 243: [9, 9], 250: [9, 9], 251: [9, 9],
  252: [7, 9], 254: [9, 9], 255: [9, 9], 256: [9, 9], 257: [8, 8], 258: [8, 9], 260: [9, 9],
  261: [9, 9], 263: [9, 10], 265: [7, 9], 266: [8, 8], 509: [8, 8], 855: [8, 9], 880: [8, 10],
  977: [8, 10],
};

// Countries whose national numbers keep their leading 0 in E.164.
const KEEPS_LEADING_ZERO = new Set(['39', '225', '378', '379']);
// Countries without a "0" trunk prefix (national numbers are dialled as they are).
const NO_TRUNK_PREFIX = new Set(['34', '45', '47', '223', '226', '227', '228', '221', '351', '352']);

const PUNCTUATION = /[\s.\-()/[\]\u2010-\u2015\u00AD\u2212]/g;

const splitCountryCode = (digits) => {
  for (let n = 1; n <= 3 && n < digits.length; n++) {
    const code = digits.slice(0, n);
    if (CALLING_CODES.has(code)) {
      return [code, digits.slice(n)];
    }
  }
  return null;
};

const lengthOk = (code, nsn) => {
  const [min, max] = LENGTHS[code] || [4, 15 - code.length];
  return nsn.length >= min && nsn.length <= max;
};

// [countryCode, nationalNumber] or null when it does not parse
const parse = (settings, phone) => {
  if (typeof phone !== 'string' || /[a-z]/i.test(phone)) {
    return null;
  }
  const compact = phone.trim().replace(PUNCTUATION, '');
  if (!/^\+?\d+$/.test(compact)) {
    return null;
  }
  const defaultCode = settings && settings.default_country_code !== undefined && settings.default_country_code !== null
    ? String(settings.default_country_code).replace(/^\+/, '')
    : '';
  let international = null;
  if (compact.startsWith('+')) {
    international = compact.slice(1);
  } else if (defaultCode === '1' && compact.startsWith('011')) {
    international = compact.slice(3);
  } else if (compact.startsWith('00')) {
    international = compact.slice(2);
  }
  if (international !== null) {
    const split = splitCountryCode(international);
    return split && split[1].length >= 2 && split[1].length <= 17 ? split : null;
  }
  if (!CALLING_CODES.has(defaultCode)) {
    return null; // libphonenumber: unknown region for a national number
  }
  let nsn = compact;
  if (nsn.startsWith(defaultCode) && !lengthOk(defaultCode, trunkless(defaultCode, nsn)) &&
      lengthOk(defaultCode, nsn.slice(defaultCode.length))) {
    nsn = nsn.slice(defaultCode.length); // "254712345678" dialled without the +
  } else {
    nsn = trunkless(defaultCode, nsn);
  }
  return nsn.length >= 2 && nsn.length <= 17 ? [defaultCode, nsn] : null;
};

function trunkless(code, digits) {
  if (code === '1') {
    return digits.length === 11 && digits.startsWith('1') ? digits.slice(1) : digits;
  }
  if (KEEPS_LEADING_ZERO.has(code) || NO_TRUNK_PREFIX.has(code)) {
    return digits;
  }
  return digits.startsWith('0') ? digits.slice(1) : digits;
}

export function normalize(settings, phone) {
  const parsed = parse(settings, phone);
  if (!parsed) {
    return false;
  }
  const [code, nsn] = parsed;
  const validation = String((settings && settings.phone_validation) || '').toLowerCase();
  if (validation !== 'none' && !lengthOk(code, nsn)) {
    return false;
  }
  return `+${code}${nsn}`;
}
