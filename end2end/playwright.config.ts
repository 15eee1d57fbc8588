import { execFileSync } from 'node:child_process';
import { defineConfig } from '@playwright/test';
import { POSTGRES, POSTGRES_PORT, POSTGRES_UPSTREAM_PORT, PORT, SQLITE, UPSTREAM_PORT } from './tests/e2e-env';
import type { E2EOptions } from './tests/fixtures';

// Debian's Chromium (apt-get install chromium); Playwright's own browser download
// is not reachable from these machines.
//
// Two first instances (tests/e2e-env.ts), each started with its own company
// provider by ../scripts/e2e-server.sh:
// - SQLITE (127.0.0.1:3100, provider localhost:3110, LATCHKEY_E2E_PORT and
//   LATCHKEY_E2E_UPSTREAM_PORT) with the example API (notes_api) on
//   NOTES_API_PORT (3200): the project `sqlite`, every spec;
// - POSTGRES (127.0.0.1:3120, provider localhost:3130,
//   LATCHKEY_E2E_POSTGRES_PORT and LATCHKEY_E2E_POSTGRES_UPSTREAM_PORT) on
//   the database latchkey_e2e_3120, made afresh on the test PostgreSQL
//   (the server of LATCHKEY_TEST_POSTGRES_URL) and dropped at the end,
//   without the API: the project `upstream-postgres`, upstream.spec.ts only,
//   so that the upstream sign-in runs on both databases (issue 12).
// Like the Rust tests (scripts/test.sh), the PostgreSQL part must run with
// CI=true; elsewhere it is left out with a notice when no PostgreSQL answers
// (or with LATCHKEY_E2E_POSTGRES=0).
const notesApiPort = process.env.NOTES_API_PORT ?? '3200';

function postgresAnswers(): boolean {
  try {
    execFileSync('pg_isready', ['-q', '-d', POSTGRES.databaseUrl], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}
// Decided once, in the runner: its workers load this file again and inherit
// the answer, so they see the same projects.
if (process.env.LATCHKEY_E2E_POSTGRES === undefined) {
  const on = process.env.CI === 'true' || postgresAnswers();
  if (!on) {
    console.warn(`No PostgreSQL answers at ${POSTGRES.databaseUrl}: the project upstream-postgres is left out.`);
  }
  process.env.LATCHKEY_E2E_POSTGRES = on ? '1' : '0';
}
const withPostgres = process.env.LATCHKEY_E2E_POSTGRES !== '0';

const serverOptions = {
  reuseExistingServer: false,
  timeout: 60_000,
  stdout: 'ignore',
  stderr: 'pipe',
  // SIGTERM (not SIGKILL) so that e2e-server.sh removes its folder and drops
  // its PostgreSQL database.
  gracefulShutdown: { signal: 'SIGTERM', timeout: 10_000 },
} as const;

export default defineConfig<E2EOptions>({
  testDir: './tests',
  timeout: 30_000,
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'off',
    screenshot: 'only-on-failure',
  },
  projects: [
    {
      name: 'sqlite',
      use: { baseURL: SQLITE.origin, e2eInstance: SQLITE },
    },
    ...(withPostgres
      ? [
          {
            name: 'upstream-postgres',
            testMatch: '**/upstream.spec.ts',
            use: { baseURL: POSTGRES.origin, e2eInstance: POSTGRES },
          },
        ]
      : []),
  ],
  webServer: [
    {
      // A fresh SQLite database with the demo data, on its own port, the
      // company's provider, and the example API next to them: its /healthz
      // answers 200 once all are up and it has loaded Latchkey's revocation feed.
      command: `bash ../scripts/e2e-server.sh ${PORT} ${notesApiPort} ${UPSTREAM_PORT} "${SQLITE.dir}"`,
      url: `http://127.0.0.1:${notesApiPort}/healthz`,
      ...serverOptions,
    },
    ...(withPostgres
      ? [
          {
            // A fresh PostgreSQL database with the demo data and its own
            // provider, no API: the first instance's /healthz answers once
            // both are up (the script starts the provider first).
            command: `bash ../scripts/e2e-server.sh --postgres "${POSTGRES.databaseUrl}" --no-notes-api ${POSTGRES_PORT} - ${POSTGRES_UPSTREAM_PORT} "${POSTGRES.dir}"`,
            url: `${POSTGRES.origin}/healthz`,
            ...serverOptions,
          },
        ]
      : []),
  ],
});
