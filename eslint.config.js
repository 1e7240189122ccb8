// Lint: typescript-eslint's recommended rules over the TypeScript sources.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', 'kernels/native/build/**', '.scratch/**'] },
  ...tseslint.configs.recommended,
  {
    // Workflow code must stay deterministic: no Node built-ins and no runtime imports of
    // activities, models or kernels (types only), so the workflow bundle cannot do I/O.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', 'fs', 'path', 'os', 'crypto', 'child_process'], message: 'workflows must not use Node built-ins (determinism)' },
          { group: ['../activities/*', '../models/*', '../kernels/*', '../infra/*', '../algorithms/*', '../store/*'], allowTypeImports: true, message: 'workflows may import these as types only' },
        ],
      }],
      'no-restricted-globals': ['error', { name: 'Date', message: 'use workflow time (Date is patched, but keep it explicit)' }],
    },
  },
  {
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
