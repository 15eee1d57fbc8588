import { test as base, expect, Page } from '@playwright/test';
import { E2EInstance, SQLITE, latchkeyCli } from './e2e-env';

export const DEMO_USER = { username: 'alice', password: 'alice-demo-password' };
export const SESSION_COOKIE = 'latchkey_session';
/// The demo data's confidential app (`latchkey demo`) and its Basic credentials.
export const DEMO_NOTES = {
  clientId: 'demo-notes',
  secret: 'demo-notes-secret-for-local-use-only',
  redirectUri: 'http://127.0.0.1:8080/callback',
  name: 'Demo Notes',
};
export const DEMO_NOTES_BASIC =
  'Basic ' + Buffer.from(`${DEMO_NOTES.clientId}:${DEMO_NOTES.secret}`).toString('base64');
/// The company's identity provider: a second Latchkey (scripts/e2e-server.sh),
/// registered on the first one as the upstream provider `name`, with the user
/// `username` and the client `clientName` for the first instance. The same
/// for every first instance; where it is, is the project's (`e2eInstance`).
export const UPSTREAM = {
  name: 'Corp SSO',
  clientName: 'Latchkey of the team',
  username: 'carol',
  password: 'carol-password-1',
};

/// The project's option (playwright.config.ts): which first instance its
/// tests run against; its baseURL is the instance's origin.
export type E2EOptions = { e2eInstance: E2EInstance };

type E2EFixtures = {
  pageErrors: string[];
  /// The `latchkey` CLI on the project's first instance (its database and
  /// key); `input` goes to its standard input.
  latchkeyCli: (args: string[], input?: string) => string;
};

export const test = base.extend<E2EFixtures & E2EOptions>({
  e2eInstance: [SQLITE, { option: true }],
  latchkeyCli: async ({ e2eInstance }, use) => {
    await use((args, input) => latchkeyCli(args, e2eInstance, input));
  },
  /// Fails the test on any uncaught page error or console error (a failed hydration shows up here).
  pageErrors: [
    async ({ page }, use) => {
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      await use(errors);
      expect(errors, 'errors in the page').toEqual([]);
    },
    { auto: true },
  ],
});

export { expect };

export async function signIn(page: Page, username: string, password: string) {
  await page.goto('/');
  await expect(page).toHaveURL(/\/signin\?next=%2F$/);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/// The signed-in person allows `clientId` on the real consent page (asked again
/// with prompt=consent); the app's callback on 127.0.0.1:8080 is caught. The
/// grant exists from then on (My apps lists it).
export async function allowApp(page: Page, clientId: string, scope: string) {
  await page.route('http://127.0.0.1:8080/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<title>App</title>back at the app' }),
  );
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: 'http://127.0.0.1:8080/callback',
    scope,
    state: 'e2e',
    prompt: 'consent',
  });
  await page.goto(`/oauth/authorize?${params}`);
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page).toHaveURL(/^http:\/\/127\.0\.0\.1:8080\/callback\?/);
}

/// A new person of their own (the CLI's `user add`), for a test that needs an
/// account no other test touches: no apps, one sign-in of its own.
export function addUser(cli: (args: string[], input?: string) => string, prefix: string) {
  const user = { username: `${prefix}-${process.pid}-${Date.now()}`, password: `${prefix}-password-for-e2e` };
  cli(['user', 'add', '--username', user.username, '--password-stdin'], `${user.password}\n`);
  return user;
}
