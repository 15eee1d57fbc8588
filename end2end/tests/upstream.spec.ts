// Signing in through the company's identity provider (issue 12) in real
// Chromium: a second Latchkey plays "Corp SSO" (scripts/e2e-server.sh), with
// the user carol and a client for this instance. The sign-in page's button
// takes the browser there; carol signs in and answers the consent page; the
// callback signs her in here. Signing out here revokes the provider's tokens:
// its own My apps page shows the app session gone.
//
// Both databases of the first instance: the project `sqlite` runs this
// against the demo on SQLite, `upstream-postgres` against the demo on
// PostgreSQL, each with a provider of its own; where they are is the
// project's `e2eInstance` (playwright.config.ts, tests/e2e-env.ts).
import type { Browser, Page } from '@playwright/test';
import { test, expect, UPSTREAM } from './fixtures';
import type { E2EInstance } from './e2e-env';

const escape = (s: string) => s.replace(/[/.?]/g, '\\$&');
/// A page of this instance: `path` exactly.
const here = (e2e: E2EInstance, path: string) => new RegExp(`^${escape(e2e.origin)}${escape(path)}$`);
/// A page of the provider: `path`, a regular expression, at its start.
const atUpstream = (e2e: E2EInstance, path: string) => new RegExp(`^${escape(e2e.upstreamOrigin)}${path}`);

/// Carol's card for this instance at the provider's My apps (in a browser
/// signed in there).
const upstreamCard = (page: Page) =>
  page.locator(`[data-testid="app-card"][data-app="${UPSTREAM.clientName}"]`);

/// Every test starts with carol not having allowed this instance at the
/// provider yet, so the provider asks for consent: in a browser of its own,
/// carol signs in there and revokes the app in her My apps if it is listed.
async function forgetConsentAtUpstream(e2e: E2EInstance, browser: Browser) {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(`${e2e.upstreamOrigin}/signin`);
  await page.getByLabel('Username').fill(UPSTREAM.username);
  await page.getByLabel('Password').fill(UPSTREAM.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'My apps' })).toBeVisible();
  await expect(page.getByTestId('topbar-username')).toHaveText(UPSTREAM.username);
  if ((await upstreamCard(page).count()) > 0) {
    await upstreamCard(page).getByText('Revoke access', { exact: true }).click();
    await upstreamCard(page).getByRole('button', { name: `Yes, revoke ${UPSTREAM.clientName}` }).click();
    await expect(upstreamCard(page)).toHaveCount(0);
  }
  await context.close();
}

/// From this instance's sign-in page: the provider's button, carol's sign-in
/// at the provider, and its consent page (shown: nothing allowed yet)
/// answered `decision`.
async function throughUpstream(e2e: E2EInstance, page: Page, decision: 'Allow' | 'Deny') {
  await page.goto('/signin');
  const buttons = page.getByTestId('upstream-buttons');
  await expect(buttons.getByRole('button')).toHaveText([`Sign in with ${UPSTREAM.name}`]);
  await buttons.getByRole('button', { name: `Sign in with ${UPSTREAM.name}` }).click();

  // The provider's own sign-in page, on its own host; back to its
  // authorization endpoint afterwards.
  await expect(page).toHaveURL(atUpstream(e2e, '/signin\\?next=%2Foauth%2Fauthorize%3F'));
  await expect(page.getByTestId('upstream-buttons')).toHaveCount(0);
  await page.getByLabel('Username').fill(UPSTREAM.username);
  await page.getByLabel('Password').fill(UPSTREAM.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();

  await expect(page).toHaveURL(atUpstream(e2e, '/oauth/authorize\\?'));
  const consent = page.getByTestId('consent');
  await expect(consent.getByTestId('consent-client')).toHaveText(UPSTREAM.clientName);
  await expect(consent).toContainText('127.0.0.1');
  await consent.getByRole('button', { name: decision, exact: true }).click();
}

/// Carol's sign-in here, now the one in this browser.
async function expectSignedInAsCarol(e2e: E2EInstance, page: Page) {
  await expect(page).toHaveURL(here(e2e, '/'));
  await expect(page.getByRole('heading', { level: 1, name: 'My apps' })).toBeVisible();
  await expect(page.getByTestId('topbar-username')).toHaveText(UPSTREAM.username);

  await page.goto('/sessions');
  const current = page.locator('[data-testid="sign-in-session"][data-current="true"]');
  await expect(current).toHaveCount(1);
  await expect(current).toContainText(`with ${UPSTREAM.name}`);
}

/// Signs out here: the sign-in page says so, the dashboard is closed.
async function signOut(e2e: E2EInstance, page: Page) {
  await page.getByRole('button', { name: 'Sign out' }).first().click();
  await expect(page).toHaveURL(here(e2e, '/signin?signed_out=1'));
  await expect(page.getByRole('status')).toHaveText('You are signed out.');
  await page.goto('/');
  await expect(page).toHaveURL(here(e2e, '/signin?next=%2F'));
  await expect(page.getByTestId('topbar-username')).toHaveCount(0);
}

/// At the provider, in this browser (still signed in there): carol's app
/// session for this instance is live, or, after signing out here, ended by
/// the revocation Latchkey sends (RFC 7009, through its outbox: asynchronous,
/// so the page is loaded again until it says so).
async function expectUpstreamSession(e2e: E2EInstance, page: Page, text: string) {
  await expect(async () => {
    await page.goto(e2e.upstreamOrigin + '/');
    await expect(upstreamCard(page)).toContainText(text, { timeout: 1_000 });
  }).toPass({ timeout: 15_000 });
}

test.beforeEach(async ({ browser, e2eInstance }) => {
  await forgetConsentAtUpstream(e2eInstance, browser);
});

test('signs in through Corp SSO, shows it on Sessions, and signing out revokes the upstream session', async ({ page, e2eInstance: e2e }) => {
  await throughUpstream(e2e, page, 'Allow');
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
  await expectSignedInAsCarol(e2e, page);
  await expectUpstreamSession(e2e, page, '1 active session');
  await page.goto('/');
  await signOut(e2e, page);
  await expectUpstreamSession(e2e, page, 'No active session');
});

test.describe('with JavaScript off', () => {
  test.use({ javaScriptEnabled: false });

  test('the provider button is a plain form: the same sign-in and sign-out work', async ({ page, e2eInstance: e2e }) => {
    await throughUpstream(e2e, page, 'Allow');
    await expectSignedInAsCarol(e2e, page);
    // Really without JavaScript: nothing hydrated the page.
    await expect(page.locator('body[data-hydrated]')).toHaveCount(0);
    await signOut(e2e, page);
    await expectUpstreamSession(e2e, page, 'No active session');
  });
});

test('denying at the provider ends on the sign-in page, not signed in', async ({ page, e2eInstance: e2e }) => {
  await throughUpstream(e2e, page, 'Deny');
  await expect(page).toHaveURL(new RegExp(`^${escape(e2e.origin)}/signin\\?(.*&)?error=upstream_denied(&|$)`));
  await expect(page.getByTestId('signin-error')).toHaveText(
    "Signing in was cancelled at your organisation's sign-in service. You are not signed in.",
  );
  await expect(page.getByTestId('topbar-username')).toHaveCount(0);
  // The provider button is still there to try again.
  await expect(page.getByRole('button', { name: `Sign in with ${UPSTREAM.name}` })).toBeVisible();
  await page.goto('/');
  await expect(page).toHaveURL(here(e2e, '/signin?next=%2F'));
  // Nothing was allowed at the provider either.
  await page.goto(e2e.upstreamOrigin + '/');
  await expect(page.getByTestId('topbar-username')).toHaveText(UPSTREAM.username);
  await expect(upstreamCard(page)).toHaveCount(0);
});

// The provider's "end upstream session" switch (off by default, as in the
// other tests) is on for this test only: the CLI on the running instance's
// database, switched off again at the end (tests run one at a time).
test('with "end upstream session" on, signing out offers signing out of Corp SSO too, which ends both', async ({ page, e2eInstance: e2e, latchkeyCli }) => {
  await throughUpstream(e2e, page, 'Allow');
  await expectSignedInAsCarol(e2e, page);
  await page.goto('/');
  latchkeyCli(['upstream', 'set', UPSTREAM.name, '--end-upstream-session', 'on']);
  try {
    await page.getByRole('button', { name: 'Sign out' }).first().click();
    const offer = page.getByTestId('upstream-signed-out');
    await expect(offer.getByRole('heading', { level: 1 })).toHaveText('You are signed out of Latchkey');
    await expect(offer).toContainText(`You signed in with ${UPSTREAM.name}, and you are still signed in there.`);
    // Signed out here already, whatever is chosen next.
    const probe = await page.context().newPage();
    await probe.goto('/');
    await expect(probe).toHaveURL(here(e2e, '/signin?next=%2F'));
    await probe.close();

    // RP-initiated logout at the provider: the ID token names this browser's
    // sign-in there, so it ends at once and comes back to this sign-in page.
    await offer.getByRole('link', { name: `Sign out of ${UPSTREAM.name} too` }).click();
    await expect(page).toHaveURL(here(e2e, '/signin'));
    await expect(page.getByRole('button', { name: `Sign in with ${UPSTREAM.name}` })).toBeVisible();
    await page.goto(e2e.upstreamOrigin + '/');
    await expect(page).toHaveURL(atUpstream(e2e, '/signin\\?next=%2F$'));
  } finally {
    latchkeyCli(['upstream', 'set', UPSTREAM.name, '--end-upstream-session', 'off']);
  }
});
