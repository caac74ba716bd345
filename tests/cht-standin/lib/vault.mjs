// CHT's credential vault (PUT /api/v1/credentials/{key}): one doc per key,
// `credential:<key>` in the `<medic>-vault` database, the secret encrypted
// (AES-256-GCM; the key is derived from the CouchDB admin password, so only
// a holder of the admin credentials can read it back).

import crypto from 'node:crypto';

export function vaultFor(db, adminPassword) {
  const key = crypto.createHash('sha256').update(`cht-standin-vault:${adminPassword ?? ''}`).digest();

  const encrypt = (plain) => {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [iv, cipher.getAuthTag(), ct].map((b) => b.toString('base64')).join(':');
  };
  const decrypt = (stored) => {
    const [iv, tag, ct] = stored.split(':').map((s) => Buffer.from(s, 'base64'));
    const decipher = crypto.createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
  };

  return {
    async setCredentials(id, password) {
      const _id = `credential:${id}`;
      for (let i = 0; i < 5; i++) {
        const existing = await db.get(_id);
        const doc = { ...(existing || { _id }), password: encrypt(password) };
        const r = await db.put(doc);
        if (!r.conflict) {
          return;
        }
      }
      throw new Error('could not store credential (conflicts)');
    },
    async getCredentials(id) {
      const doc = await db.get(`credential:${id}`);
      if (!doc || typeof doc.password !== 'string') {
        return undefined;
      }
      try {
        return decrypt(doc.password);
      } catch {
        return undefined; // stored under another admin password
      }
    },
  };
}
