import { defineConfig } from '@playwright/test';
import { E2E_DIR, PORT, UPSTREAM_PORT } from './tests/e2e-env';

// Debian's Chromium (apt-get install chromium); Playwright's own browser download
// is not reachable from these machines.
const port = PORT; // LATCHKEY_E2E_PORT, default 3100
// The guard crate's example API (notes_api), started by the same script.
const notesApiPort = process.env.NOTES_API_PORT ?? '3200';
// The second Latchkey, the company's provider ("Corp SSO"), on
// http://localhost:UPSTREAM_PORT; E2E_DIR holds both databases (tests/e2e-env.ts).

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
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
  webServer: {
    // A fresh SQLite database with the demo data, on its own port, the
    // company's provider, and the example API next to them: its /healthz
    // answers 200 once all are up and it has loaded Latchkey's revocation feed.
    command: `bash ../scripts/e2e-server.sh ${port} ${notesApiPort} ${UPSTREAM_PORT} "${E2E_DIR}"`,
    url: `http://127.0.0.1:${notesApiPort}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
  },
});
