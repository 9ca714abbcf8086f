// Starts a real ward for the client tests: the embedded default (its own PostgreSQL cluster
// and local storage) on a free port, with a fresh WARD_DATA_DIR and a JWT secret of the test's
// own, so tests can mint Supabase-shaped tokens. Builds ward with `cargo build` unless WARD_BIN
// names a binary.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

function b64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

async function waitForReady(url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`ward exited with ${child.exitCode} before it was ready`);
    try {
      const response = await fetch(`${url}/ready`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('ward was not ready in time');
}

/** The demo people's auth user ids (src/demo.rs). */
export const PEOPLE = {
  'citizen@demo.test': '00000000-0000-4000-8000-0000000b0001',
  'worker@demo.test': '00000000-0000-4000-8000-0000000b0002',
  'manager@demo.test': '00000000-0000-4000-8000-0000000b0003',
  'saps@demo.test': '00000000-0000-4000-8000-0000000b0004',
  'admin@demo.test': '00000000-0000-4000-8000-0000000b0005',
  'citizen@other.test': '00000000-0000-4000-8000-0000000b0006',
  'manager@other.test': '00000000-0000-4000-8000-0000000b0007',
};

/** Starts ward (with `extraEnv` set besides); call `stop()` when done. */
export async function startWard(extraEnv = {}) {
  const jwtSecret = randomBytes(32).toString('hex');
  let bin = process.env.WARD_BIN;
  if (!bin) {
    const built = spawnSync('cargo', ['build', '--quiet', '--bin', 'ward'], { cwd: root, stdio: 'inherit' });
    assert.equal(built.status, 0, 'cargo build failed');
    bin = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'debug', 'ward');
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'ward-js-'));
  // The embedded cluster runs as the `postgres` user when ward runs as root: it must get in.
  chmodSync(dataDir, 0o755);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { ...process.env };
  for (const name of ['DATABASE_URL', 'DATABASE_OWNER_URL', 'SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'WARD_STORAGE', 'WARD_PUBLIC_URL']) {
    delete env[name];
  }
  Object.assign(env, {
    WARD_DATA_DIR: dataDir,
    WARD_BIND: `127.0.0.1:${port}`,
    SUPABASE_JWT_SECRET: jwtSecret,
    WARD_LOG: 'warn',
    ...extraEnv,
  });
  const child = spawn(bin, ['serve'], { cwd: dataDir, env, stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForReady(base, child, 180_000);

  /** An HS256 JWT signed with this ward's secret, as Supabase signs its tokens. */
  const sign = (claims) => {
    const body = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}`;
    return `${body}.${createHmac('sha256', jwtSecret).update(body).digest('base64url')}`;
  };
  const now = () => Math.floor(Date.now() / 1000);
  return {
    base,
    port,
    sign,
    serviceKey: () => sign({ role: 'service_role', iss: 'supabase', iat: now(), exp: now() + 600 }),
    tokenFor: (email) =>
      sign({ sub: PEOPLE[email], aud: 'authenticated', role: 'authenticated', email, iat: now(), exp: now() + 600 }),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
