// Lint: typescript-eslint with type information. Runs first in `npm test`; any problem fails it.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'dashboard/dist/**', 'clients/**', 'bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname }
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-duplicate-imports': 'off',
      '@typescript-eslint/no-import-type-side-effects': 'error',
      'no-empty': ['error', { allowEmptyCatch: false }],
      // Store and Bus methods are async by contract, whatever one implementation does inside
      '@typescript-eslint/require-await': 'off',
      // a swallowed background failure is never allowed: a .catch handler must do something
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.property.name='catch'] > ArrowFunctionExpression[body.type='BlockStatement'][body.body.length=0]",
        message: 'a .catch that does nothing swallows a failure: log it once, with what failed'
      }, {
        selector: "CallExpression[callee.property.name='catch'] > Identifier[name=/^noop$/]",
        message: 'a .catch that does nothing swallows a failure: log it once, with what failed'
      }],
      eqeqeq: ['error', 'smart']
    }
  },
  {
    // tests and benchmarks read JSON from the wire: `any` there is the data under test
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // a test's teardown may ignore a client that is already gone; what it checks is asserted
      'no-restricted-syntax': 'off'
    }
  },
  // The layers (docs/architecture.md): imports point down only. Nothing imports broker/ (the
  // program's top); code outside plugins/scheduler/ enters it through its index.ts only. The one
  // exception is the SQLite file's white-box test, which opens the embedded store's own modules.
  {
    files: ['plugins/**/*.ts', 'gateway/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts', 'dashboard/**/*.ts'],
    ignores: ['plugins/scheduler/**', 'test/sqlite-file.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/plugins/scheduler/*/**', '../scheduler/*/**', './scheduler/*/**'], message: 'outside the scheduler, import plugins/scheduler/index.js only' }]
      }]
    }
  },
  {
    files: ['plugins/**/*.ts', 'gateway/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/broker/**'], message: 'broker/ is the top of the program: nothing below imports it' },
          { group: ['**/plugins/scheduler/*/**', '../scheduler/*/**', './scheduler/*/**'], message: 'outside the scheduler, import plugins/scheduler/index.js only' }
        ]
      }]
    },
    ignores: ['plugins/scheduler/**']
  },
  {
    files: ['plugins/scheduler/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/broker/**', '**/gateway/**'], message: 'the scheduler imports neither broker/ nor gateway/' }] }]
    }
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked
  }
)
