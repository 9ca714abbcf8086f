// The official tus-js-client against a real ward (embedded default, local storage backend):
// a citizen asks GraphQL for an upload intent, uploads the file resumably to the intent's
// `resumableUrl` with the intent's token as `x-signature`, through a TCP proxy that cuts the
// connection mid-upload, and the client resumes from the offset the server kept. The file is
// then confirmed and read back through a signed link, byte for byte.
//
// Run: npm ci && npm test (in tests/clients).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import * as tus from 'tus-js-client';
import { freePort, startWard } from './ward.mjs';

const TICKET = '00000000-0000-4000-8000-0000000e0001'; // demo ticket 1, the citizen's (src/demo.rs)
const MiB = 1024 * 1024;

let ward;
let proxy;

/**
 * A TCP proxy in front of ward. `cutAfter(n)` makes the next connection that carries more
 * than n request bytes drop both sides mid-stream, as a phone losing its network would.
 */
function startProxy(listenPort, targetPort) {
  let cutAt = null;
  const state = { cuts: 0 };
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    let sent = 0;
    client.on('data', (chunk) => {
      sent += chunk.length;
      if (cutAt !== null && sent > cutAt) {
        cutAt = null;
        state.cuts += 1;
        client.destroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => client.write(chunk));
    upstream.on('end', () => client.end());
    client.on('end', () => upstream.end());
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  return new Promise((ok) =>
    server.listen(listenPort, '127.0.0.1', () =>
      ok({
        state,
        cutAfter: (n) => {
          cutAt = n;
        },
        close: () => new Promise((r) => server.close(r)),
      }),
    ),
  );
}

before(async () => {
  const proxyPort = await freePort();
  // Signed URLs and TUS locations point at the proxy, so every byte goes through it.
  ward = await startWard({ WARD_PUBLIC_URL: `http://127.0.0.1:${proxyPort}` });
  proxy = await startProxy(proxyPort, ward.port);
});

after(async () => {
  await proxy?.close();
  await ward?.stop();
});

async function graphql(email, query, variables) {
  const response = await fetch(`${ward.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ward.tokenFor(email)}` },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

async function intent(contentType, sizeBytes, filename = 'clip.mp4') {
  const reply = await graphql(
    'citizen@demo.test',
    `mutation($input: CreateUploadIntentInput!) {
       createUploadIntent(input: $input) { id bucket path token resumableUrl }
     }`,
    { input: { ticketId: TICKET, purpose: 'EVIDENCE', filename, contentType, sizeBytes } },
  );
  assert.equal(reply.errors, undefined, JSON.stringify(reply.errors));
  return reply.data.createUploadIntent;
}

/** Runs one tus upload to its end: resolves with what happened, rejects on error. */
function upload(body, options) {
  return new Promise((resolve, reject) => {
    const seen = { heads: [], patches: 0, retries: 0 };
    const up = new tus.Upload(body, {
      retryDelays: [0, 100, 300, 1000],
      ...options,
      onAfterResponse(req, res) {
        if (req.getMethod() === 'HEAD') seen.heads.push(Number(res.getHeader('Upload-Offset')));
        if (req.getMethod() === 'PATCH') seen.patches += 1;
        options.onAfterResponse?.(req, res, up);
      },
      onShouldRetry() {
        seen.retries += 1;
        return true;
      },
      onChunkComplete(size, accepted, total) {
        options.onChunkComplete?.(size, accepted, total, up);
      },
      onSuccess() {
        resolve({ ...seen, url: up.url });
      },
      onError: reject,
    });
    options.onCreate?.(up);
    up.start();
  });
}

function tusOptions(planned, contentType, extra = {}) {
  return {
    endpoint: planned.resumableUrl,
    headers: { 'x-signature': planned.token },
    metadata: { bucketName: planned.bucket, objectName: planned.path, contentType },
    ...extra,
  };
}

async function confirmAndRead(planned) {
  const reply = await graphql(
    'citizen@demo.test',
    `mutation($id: ID!) { confirmUpload(intentId: $id) { sizeBytes contentType signedUrl(expiresIn: 60) } }`,
    { id: planned.id },
  );
  assert.equal(reply.errors, undefined, JSON.stringify(reply.errors));
  const media = reply.data.confirmUpload;
  const response = await fetch(media.signedUrl);
  assert.equal(response.status, 200);
  return { media, bytes: Buffer.from(await response.arrayBuffer()) };
}

const sha = (b) => createHash('sha256').update(b).digest('hex');

test('an upload cut mid-stream resumes from the offset the server kept and arrives whole', async () => {
  const size = 12 * MiB;
  const planned = await intent('video/mp4', size);
  assert.match(planned.resumableUrl, /\/storage\/v1\/upload\/resumable\/sign$/);
  const body = randomBytes(size);

  // One PATCH for the whole file, cut once 5 MiB of it went through.
  proxy.cutAfter(5 * MiB);
  const run = await upload(body, tusOptions(planned, 'video/mp4'));
  assert.equal(proxy.state.cuts, 1, 'the connection was cut');
  assert.ok(run.retries >= 1, 'the client retried');
  const resumedAt = run.heads.at(-1);
  assert.ok(resumedAt > 0 && resumedAt < size, `resumed from ${resumedAt}, not from the start nor the end`);

  const { media, bytes } = await confirmAndRead(planned);
  assert.equal(media.sizeBytes, size);
  assert.equal(media.contentType, 'video/mp4');
  assert.equal(sha(bytes), sha(body), 'the bytes arrive whole and in order');
});

test('a paused upload resumes later from its URL', async () => {
  const size = 3 * MiB + 17;
  const planned = await intent('video/mp4', size);
  const body = randomBytes(size);

  // Pause after the first chunk of 1 MiB.
  let url;
  await new Promise((resolve, reject) => {
    const up = new tus.Upload(body, {
      ...tusOptions(planned, 'video/mp4', { chunkSize: MiB }),
      onChunkComplete() {
        url = up.url;
        up.abort().then(resolve, reject);
      },
      onError: reject,
    });
    up.start();
  });
  assert.ok(url.includes('/storage/v1/upload/resumable/sign/'), url);

  // A new client (another app start) picks the upload up by its URL.
  const run = await upload(body, tusOptions(planned, 'video/mp4', { uploadUrl: url, chunkSize: MiB }));
  assert.deepEqual(run.heads, [MiB], 'the server had the first chunk');
  assert.equal(run.patches, 3);
  const { bytes } = await confirmAndRead(planned);
  assert.equal(sha(bytes), sha(body));
});

test('the intent bounds the upload: size, type, path and token', async () => {
  const planned = await intent('video/mp4', MiB);
  const refused = async (body, options) => {
    const error = await upload(body, { ...options, retryDelays: [] }).then(
      () => null,
      (e) => e,
    );
    assert.ok(error, 'the upload was refused');
    return error.originalResponse?.getStatus();
  };
  // More than the intent promised (and than Upload-Length may say).
  assert.equal(await refused(randomBytes(MiB + 1), tusOptions(planned, 'video/mp4')), 413);
  // Another content type than the intent's.
  assert.equal(await refused(randomBytes(10), tusOptions(planned, 'text/html')), 400);
  // The intent's token for another object.
  const elsewhere = tusOptions(planned, 'video/mp4');
  elsewhere.metadata.objectName = `${planned.path}.other`;
  assert.equal(await refused(randomBytes(10), elsewhere), 403);
  // No token at all.
  assert.equal(await refused(randomBytes(10), { ...tusOptions(planned, 'video/mp4'), headers: {} }), 400);
  // Upserts are refused: ward never overwrites.
  const upsert = tusOptions(planned, 'video/mp4');
  upsert.headers['x-upsert'] = 'true';
  assert.equal(await refused(randomBytes(10), upsert), 400);

  // Nothing arrived for the intent.
  const reply = await graphql('citizen@demo.test', `mutation($id: ID!) { confirmUpload(intentId: $id) { id } }`, {
    id: planned.id,
  });
  assert.equal(reply.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
});
