import { defineConfig } from '@playwright/test';

// Debian's Chromium (apt-get install chromium); Playwright's own browser download
// is not reachable from these machines.
const port = process.env.LATCHKEY_E2E_PORT ?? '3100';
// The guard crate's example API (notes_api), started by the same script.
const notesApiPort = process.env.NOTES_API_PORT ?? '3200';

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
    // A fresh SQLite database with the demo data, on its own port, and the
    // example API next to it: its /healthz answers 200 once both are up and
    // it has loaded Latchkey's revocation feed.
    command: `bash ../scripts/e2e-server.sh ${port} ${notesApiPort}`,
    url: `http://127.0.0.1:${notesApiPort}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'ignore',
    stderr: 'pipe',
  },
});
