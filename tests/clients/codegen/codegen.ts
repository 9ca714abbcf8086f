// graphql-codegen: typed documents for operations.graphql from ward's published SDL.
// Run by `npm run codegen` (npm test's pretest); paths are relative to tests/clients.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../../schema.graphql',
  documents: 'codegen/operations.graphql',
  generates: {
    'codegen/generated/graphql.ts': {
      plugins: ['typescript', 'typescript-operations', 'typed-document-node'],
      config: {
        // Every custom scalar must be mapped: a new one in the schema fails codegen.
        strictScalars: true,
        scalars: { DateTime: 'string' },
        enumsAsTypes: true,
        useTypeImports: true,
      },
    },
  },
  // Fail (exit non-zero) on invalid operations or an unreadable schema; never half-write.
  noSilentErrors: true,
};

export default config;
