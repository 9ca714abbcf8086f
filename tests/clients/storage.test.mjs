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
import { deflateSync } from 'node:zlib';
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

/** A PNG of `width` × `height` (RGB gradient), made here so the test needs no image library. */
function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) {
      raw[row + 1 + x * 3] = x % 256;
      raw[row + 2 + x * 3] = y % 256;
      raw[row + 3 + x * 3] = 128;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The width and height in a PNG's header. */
function pngSize(bytes) {
  assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47], 'a PNG');
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

test('transforms: createSignedUrl and download with { transform } render the asked size', async () => {
  const path = 'm1/f9/wide.png';
  const original = png(800, 600);
  const stored = await serviceClient().from('evidence').upload(path, original, { contentType: 'image/png' });
  assert.equal(stored.error, null);

  // A signed link to one rendering, as Supabase hands it out: /render/image/sign/...
  const { data: signed, error } = await serviceClient()
    .from('evidence')
    .createSignedUrl(path, 60, { transform: { width: 200, height: 200, resize: 'contain' } });
  assert.equal(error, null);
  assert.ok(signed.signedUrl.startsWith(`${base}/storage/v1/render/image/sign/evidence/`), signed.signedUrl);
  const first = await fetch(signed.signedUrl);
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('content-type'), 'image/png');
  assert.deepEqual(pngSize(Buffer.from(await first.arrayBuffer())), [200, 150]);
  // Rendered once, then read from the cache: the same bytes.
  const again = Buffer.from(await (await fetch(signed.signedUrl)).arrayBuffer());
  assert.deepEqual(pngSize(again), [200, 150]);
  // The query string cannot change what the token grants, nor reach the original.
  const tampered = await fetch(`${signed.signedUrl}&width=800&height=600`);
  assert.deepEqual(pngSize(Buffer.from(await tampered.arrayBuffer())), [200, 150]);
  const original_ = await fetch(signed.signedUrl.replace('/render/image/sign/', '/object/sign/'));
  assert.equal(original_.status, 403);

  // cover crops to the box; fill stretches.
  for (const [transform, size] of [
    [{ width: 100, height: 100 }, [100, 100]],
    [{ width: 100, height: 100, resize: 'fill' }, [100, 100]],
    [{ height: 60 }, [80, 60]],
  ]) {
    const { data } = await serviceClient().from('evidence').createSignedUrl(path, 60, { transform });
    const bytes = Buffer.from(await (await fetch(data.signedUrl)).arrayBuffer());
    assert.deepEqual(pngSize(bytes), size, JSON.stringify(transform));
  }

  // download(path, { transform }) goes through /render/image/authenticated with the key.
  const { data: blob, error: downloadError } = await serviceClient()
    .from('evidence')
    .download(path, { transform: { width: 400, resize: 'cover' } });
  assert.equal(downloadError, null);
  assert.deepEqual(pngSize(Buffer.from(await blob.arrayBuffer())), [400, 300]);

  // Out of bounds: a clear refusal.
  const tooWide = await serviceClient().from('evidence').createSignedUrl(path, 60, { transform: { width: 5000 } });
  assert.ok(tooWide.error, 'a width over 2500 is refused');
});

test('transforms of a public bucket: getPublicUrl with { transform }', async () => {
  const path = 'p1/thumb.png';
  const stored = await serviceClient().from('user-photos-thumbnails').upload(path, png(300, 300), { contentType: 'image/png' });
  assert.equal(stored.error, null);
  const { data } = serviceClient().from('user-photos-thumbnails').getPublicUrl(path, { transform: { width: 64, height: 64 } });
  assert.ok(data.publicUrl.includes('/render/image/public/user-photos-thumbnails/'), data.publicUrl);
  const response = await fetch(data.publicUrl);
  assert.equal(response.status, 200);
  assert.deepEqual(pngSize(Buffer.from(await response.arrayBuffer())), [64, 64]);
  // A private bucket's objects are not rendered publicly.
  const hidden = await fetch(`${base}/storage/v1/render/image/public/evidence/m1/f9/wide.png?width=10`);
  assert.equal(hidden.status, 404);
});
