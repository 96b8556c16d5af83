import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * GraphQL Code Generator: typed documents for every `graphql(...)` call in the
 * app, from the API schema the gateway serves (scripts/web-app-build.ts writes
 * web/schema.graphql from the composed supergraph first). A schema change that
 * breaks an operation or a field the app reads fails here or at the type check.
 */
const config: CodegenConfig = {
  schema: 'web/schema.graphql',
  documents: ['web/src/**/*.{ts,tsx}', '!web/src/gql/**'],
  ignoreNoDocuments: false,
  emitLegacyCommonJSImports: false,
  generates: {
    'web/src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        strictScalars: true,
        // Micros and Count are integers the graph sends as JSON numbers (exact up to 2^53 − 1).
        scalars: { DateTime: 'string', Micros: 'number', Count: 'number' },
      },
    },
  },
};

export default config;
