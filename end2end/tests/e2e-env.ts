// Where the end-to-end servers are (playwright.config.ts starts them with
// ../scripts/e2e-server.sh), shared by the config and the tests.
//
// Two first instances, each with its own company provider (a second
// Latchkey, "Corp SSO", on its own SQLite database):
// - SQLITE: the demo on SQLite, on PORT, with the example API; every spec
//   runs against it (the project `sqlite`);
// - POSTGRES: the demo on PostgreSQL, on POSTGRES_PORT, without the example
//   API; the upstream spec runs against it too (the project
//   `upstream-postgres`), so the upstream sign-in is tested on both databases.
import { execFileSync } from 'node:child_process';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export const PORT = process.env.LATCHKEY_E2E_PORT ?? '3100';
export const UPSTREAM_PORT = process.env.LATCHKEY_E2E_UPSTREAM_PORT ?? '3110';
export const POSTGRES_PORT = process.env.LATCHKEY_E2E_POSTGRES_PORT ?? '3120';
export const POSTGRES_UPSTREAM_PORT = process.env.LATCHKEY_E2E_POSTGRES_UPSTREAM_PORT ?? '3130';
/// The PostgreSQL server the Rust tests use (scripts/test.sh, README); the
/// end-to-end database is another one on the same server.
const TEST_POSTGRES_URL = process.env.LATCHKEY_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/// One first instance as the tests see it: plain data, so that it can be a
/// project's `use` option (fixtures.ts, `e2eInstance`).
export type E2EInstance = {
  /// The first instance's issuer and origin (the project's baseURL).
  origin: string;
  /// Its company provider's issuer: on `localhost`, another host than the
  /// first instance's 127.0.0.1, so the browser keeps their cookies apart.
  upstreamOrigin: string;
  /// The first instance's database.
  databaseUrl: string;
  /// The folder of the master keys (and the SQLite databases), made afresh
  /// by e2e-server.sh and removed when it ends (one run at a time: the ports
  /// are fixed anyway).
  dir: string;
};

/// The first instance on SQLite (E2E_DIR: its folder, also LATCHKEY_E2E_DIR).
export const E2E_DIR = process.env.LATCHKEY_E2E_DIR ?? join(tmpdir(), `latchkey-e2e-${PORT}`);
export const SQLITE: E2EInstance = {
  origin: `http://127.0.0.1:${PORT}`,
  upstreamOrigin: `http://localhost:${UPSTREAM_PORT}`,
  databaseUrl: `sqlite://${E2E_DIR}/latchkey.db`,
  dir: E2E_DIR,
};

/// The first instance on PostgreSQL: the database `latchkey_e2e_<port>` on
/// the test server, dropped and made afresh by e2e-server.sh --postgres.
const postgresDir = join(tmpdir(), `latchkey-e2e-${POSTGRES_PORT}`);
export const POSTGRES: E2EInstance = {
  origin: `http://127.0.0.1:${POSTGRES_PORT}`,
  upstreamOrigin: `http://localhost:${POSTGRES_UPSTREAM_PORT}`,
  databaseUrl: `${TEST_POSTGRES_URL.replace(/\?.*$/, '').replace(/\/[^/]*$/, '')}/latchkey_e2e_${POSTGRES_PORT}`,
  dir: postgresDir,
};

/// Runs the `latchkey` CLI on a first instance's database (while it serves),
/// e.g. to change a setting for one test; returns its standard output. In a
/// test, the `latchkeyCli` fixture (fixtures.ts) runs it on the project's
/// instance. `input` goes to its standard input (e.g. `--password-stdin`).
export function latchkeyCli(args: string[], instance: E2EInstance = SQLITE, input?: string): string {
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/latchkey/target');
  return execFileSync(join(target, 'debug/latchkey'), args, {
    env: {
      ...process.env,
      LATCHKEY_DATABASE_URL: instance.databaseUrl,
      LATCHKEY_MASTER_KEY_FILE: `${instance.dir}/latchkey.key`,
      LATCHKEY_ISSUER: instance.origin,
      LATCHKEY_LOG: 'warn',
    },
    encoding: 'utf8',
    input,
  });
}
