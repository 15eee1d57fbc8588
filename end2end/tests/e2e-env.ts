// Where the end-to-end servers are (playwright.config.ts starts them with
// ../scripts/e2e-server.sh), shared by the config and the tests.
import { execFileSync } from 'node:child_process';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

export const PORT = process.env.LATCHKEY_E2E_PORT ?? '3100';
export const UPSTREAM_PORT = process.env.LATCHKEY_E2E_UPSTREAM_PORT ?? '3110';
/// The servers' databases and master keys, made afresh by e2e-server.sh and
/// removed when it ends (one run at a time: the ports are fixed anyway).
export const E2E_DIR = process.env.LATCHKEY_E2E_DIR ?? join(tmpdir(), `latchkey-e2e-${PORT}`);

/// Runs the `latchkey` CLI on the first instance's database (while it serves),
/// e.g. to change a setting for one test; returns its standard output.
export function latchkeyCli(args: string[]): string {
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/latchkey/target');
  return execFileSync(join(target, 'debug/latchkey'), args, {
    env: {
      ...process.env,
      LATCHKEY_DATABASE_URL: `sqlite://${E2E_DIR}/latchkey.db`,
      LATCHKEY_MASTER_KEY_FILE: `${E2E_DIR}/latchkey.key`,
      LATCHKEY_ISSUER: `http://127.0.0.1:${PORT}`,
      LATCHKEY_LOG: 'warn',
    },
    encoding: 'utf8',
  });
}
