// The official @supabase/storage-js client against a real ward (embedded default, local
// storage backend): signed upload URLs are created with a service-role key, the upload goes
// through `uploadToSignedUrl` without any credential (raw body and Blob/multipart), and the
// bytes come back through a ward-issued signed download URL.
//
// Run: npm ci && npm test (in tests/clients). It builds ward with `cargo build` unless WARD_BIN
// names a binary, and starts it on a free port with a fresh WARD_DATA_DIR.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { StorageClient } from '@supabase/storage-js';
import { startWard } from './ward.mjs';

let ward;
let base;
let serviceKey;

before(async () => {
  ward = await startWard();
  base = ward.base;
  serviceKey = ward.serviceKey;
});

after(async () => {
  await ward?.stop();
});

function serviceClient() {
  const key = serviceKey();
  return new StorageClient(`${base}/storage/v1`, { apikey: key, Authorization: `Bearer ${key}` });
}

/** What a browser holds: no credentials at all, only the token ward handed out. */
function anonymousClient() {
  return new StorageClient(`${base}/storage/v1`, {});
}

test('uploadToSignedUrl with a raw body, then a signed download URL, returns the same bytes', async () => {
  const path = 'm1/f1/report 2024.pdf';
  const { data: intent, error } = await serviceClient().from('evidence').createSignedUploadUrl(path);
  assert.equal(error, null);
  assert.ok(intent.signedUrl.startsWith(`${base}/storage/v1/object/upload/sign/evidence/`));

  const bytes = randomBytes(100_000);
  const uploaded = await anonymousClient()
    .from('evidence')
    .uploadToSignedUrl(intent.path, intent.token, bytes, { contentType: 'application/pdf' });
  assert.equal(uploaded.error, null);
  assert.equal(uploaded.data.fullPath, `evidence/${path}`);

  const { data: signed, error: signError } = await serviceClient().from('evidence').createSignedUrl(path, 60);
  assert.equal(signError, null);
  const response = await fetch(signed.signedUrl);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'application/pdf');
  assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);

  const ranged = await fetch(signed.signedUrl, { headers: { range: 'bytes=10-19' } });
  assert.equal(ranged.status, 206);
  assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), bytes.subarray(10, 20));

  const info = await serviceClient().from('evidence').info(path);
  assert.equal(info.error, null);
  assert.equal(info.data.size, bytes.length);
  const downloaded = await serviceClient().from('evidence').download(path);
  assert.equal(downloaded.error, null);
  assert.deepEqual(Buffer.from(await downloaded.data.arrayBuffer()), bytes);
});

test('uploadToSignedUrl with a Blob (multipart) keeps its type; the token cannot be reused', async () => {
  const path = 'p1/ph1/face.png';
  const { data: intent } = await serviceClient().from('user-photos').createSignedUploadUrl(path);
  const bytes = randomBytes(4096);
  const first = await anonymousClient()
    .from('user-photos')
    .uploadToSignedUrl(path, intent.token, new Blob([bytes], { type: 'image/png' }));
  assert.equal(first.error, null);

  const again = await anonymousClient()
    .from('user-photos')
    .uploadToSignedUrl(path, intent.token, new Blob([Buffer.from('overwrite')], { type: 'image/png' }));
  assert.ok(again.error, 'a second upload with the same token is refused');
  assert.equal(again.error.status, 409);

  const { data: signed } = await serviceClient().from('user-photos').createSignedUrl(path, 60, { download: true });
  const response = await fetch(signed.signedUrl);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'image/png');
  assert.match(response.headers.get('content-disposition') ?? '', /attachment/);
  assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);

  // Private: no public URL, and a token for this object opens no other.
  const publicUrl = anonymousClient().from('user-photos').getPublicUrl(path).data.publicUrl;
  assert.equal((await fetch(publicUrl)).status, 404);
  const other = await anonymousClient()
    .from('user-photos')
    .uploadToSignedUrl('p1/ph1/other.png', intent.token, new Blob([bytes], { type: 'image/png' }));
  assert.equal(other.error?.status, 403);
});

test('public buckets are read through getPublicUrl; remove deletes', async () => {
  const path = 'p1/ph1/thumb.webp';
  const { data: intent } = await serviceClient().from('user-photos-thumbnails').createSignedUploadUrl(path);
  const bytes = randomBytes(512);
  const uploaded = await anonymousClient()
    .from('user-photos-thumbnails')
    .uploadToSignedUrl(path, intent.token, bytes, { contentType: 'image/webp' });
  assert.equal(uploaded.error, null);
  const publicUrl = anonymousClient().from('user-photos-thumbnails').getPublicUrl(path).data.publicUrl;
  const response = await fetch(publicUrl);
  assert.equal(response.status, 200);
  assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);

  assert.equal((await serviceClient().from('user-photos-thumbnails').exists(path)).data, true);
  const removed = await serviceClient().from('user-photos-thumbnails').remove([path]);
  assert.equal(removed.error, null);
  assert.equal(removed.data.length, 1);
  assert.equal((await fetch(publicUrl)).status, 404);
  assert.equal((await serviceClient().from('user-photos-thumbnails').exists(path)).data, false);
});
