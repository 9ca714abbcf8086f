// node --test finds this file; it runs the TypeScript test (apollo.ts) through tsx. `npm test`
// generates ./generated first (its pretest: graphql-codegen, then tsc).

import { existsSync } from 'node:fs';
import { tsImport } from 'tsx/esm/api';

if (!existsSync(new URL('./generated/graphql.ts', import.meta.url))) {
  throw new Error('codegen/generated is missing: run `npm run codegen` (npm test does)');
}
await tsImport('./apollo.ts', import.meta.url);
