// Bundles the playground with esbuild: `node build.mjs OUT_DIR [SOURCE_DIR]` writes
// playground.js and playground.css, and gzipped copies, to OUT_DIR: React's production
// build, minified, no source maps. ward's build.rs runs it from a copy next to the npm install
// it made in OUT_DIR; packages resolve from the working directory's node_modules.
// By hand: `npm ci && node build.mjs dist`.

import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(process.argv[2] ?? join(here, 'dist'));
const sourceDir = resolve(process.argv[3] ?? here);

await build({
  entryPoints: { playground: join(sourceDir, 'src/main.jsx') },
  outdir: outDir,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  jsx: 'automatic',
  legalComments: 'none',
  nodePaths: [join(process.cwd(), 'node_modules')],
  define: { 'process.env.NODE_ENV': '"production"' },
  loader: { '.woff2': 'dataurl', '.woff': 'dataurl', '.ttf': 'dataurl', '.svg': 'dataurl' },
  logLevel: 'warning',
});

for (const name of ['playground.js', 'playground.css']) {
  const path = join(outDir, name);
  writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: 9 }));
}
