// What the page looks like right after an action, in real Chromium.
// Hydrated: every confirmation is closed and focus is on the result notice, so
// one more click or Enter cannot confirm something nobody chose (three apps,
// revoked by mouse and then by keyboard; the third survives); after a refused
// action, on the inline error. JavaScript off: a
// refused policy value ends on the console page with the message inline and
// the form, not on leptos' raw `ServerError|…` text, and nothing is saved.
import type { Browser, Page } from '@playwright/test';
import { test, expect, allowApp, signIn, DEMO_USER } from './fixtures';

const ADMIN = { username: 'admin', password: 'latchkey-admin-demo' };
const CALLBACK = 'http://127.0.0.1:8080/callback';

async function signInAs(page: Page, who: { username: string; password: string }) {
  await signIn(page, who.username, who.password);
  await expect(page.getByTestId('topbar-username')).toHaveText(who.username);
}

/// Registers one client per name through the console (as the admin, in their
/// own browser); returns their client ids.
async function registerClients(browser: Browser, names: string[]): Promise<string[]> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signInAs(page, ADMIN);
  const ids: string[] = [];
  for (const name of names) {
    await page.goto('/admin/clients');
    await page.getByLabel('Name', { exact: true }).fill(name);
    await page.getByLabel('Redirect URIs (one per line)', { exact: true }).fill(CALLBACK);
    await page.getByRole('button', { name: 'Register' }).click();
    await expect(page).toHaveURL(/\/admin\/clients\/[^/?]+\?saved=created$/);
    await expect(page.getByTestId('client-name')).toHaveText(name);
    ids.push(new URL(page.url()).pathname.split('/').pop()!);
  }
  await context.close();
  return ids;
}

const card = (page: Page, name: string) => page.locator(`[data-testid="app-card"][data-app="${name}"]`);
const activeTestId = (page: Page) => page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? null);

/// After an action: the notice says what happened, no confirmation is open
/// anywhere, and focus is on the notice.
async function settledOn(page: Page, revoked: string) {
  await expect(page.getByTestId('notice')).toHaveText(`Access for ${revoked} revoked. Its tokens stopped working at once.`);
  await expect(card(page, revoked)).toHaveCount(0);
  await expect(page.locator('details.confirm[open]')).toHaveCount(0);
  await expect.poll(() => activeTestId(page)).toBe('notice');
}

test('after a revoke no confirmation stays open and focus is on the notice (mouse, then keyboard)', async ({
  page,
  browser,
}) => {
  const names = ['Trio Alpha', 'Trio Beta', 'Trio Gamma'];
  const ids = await registerClients(browser, names);
  await signInAs(page, DEMO_USER);
  for (const id of ids) await allowApp(page, id, 'openid profile');

  await page.goto('/');
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
  const cards = page.getByTestId('app-card');
  await expect(cards.nth(2)).toBeVisible();
  // Newest first: the three just allowed lead the list, in some order.
  const shown = await Promise.all([0, 1, 2].map((i) => cards.nth(i).getAttribute('data-app')));
  expect([...shown].sort()).toEqual(names);
  const [first, second, third] = shown as string[];

  // By mouse: the first card's confirmation, confirmed.
  await card(page, first).getByText('Revoke access', { exact: true }).click();
  await expect(card(page, first).locator('details.confirm[open]')).toHaveCount(1);
  await card(page, first).getByRole('button', { name: `Yes, revoke ${first}` }).click();
  await settledOn(page, first);
  // The card that moved into its place shows its own confirmation closed.
  await expect(cards.first()).toHaveAttribute('data-app', second);
  await expect(card(page, second).getByRole('button', { name: `Yes, revoke ${second}` })).toBeHidden();

  // By keyboard, from the notice: Tab to the next card's summary, Enter, Tab to its button, Enter.
  const summary = card(page, second).locator('details.confirm > summary');
  for (let i = 0; i < 10 && !(await summary.evaluate((el) => el === document.activeElement)); i++) {
    await page.keyboard.press('Tab');
  }
  await expect(summary).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(card(page, second).locator('details.confirm[open]')).toHaveCount(1);
  await page.keyboard.press('Tab');
  await expect(card(page, second).getByRole('button', { name: `Yes, revoke ${second}` })).toBeFocused();
  await page.keyboard.press('Enter');
  await settledOn(page, second);

  // One more Enter revokes nothing: focus is on the notice, and the next confirmation is closed.
  await page.keyboard.press('Enter');
  await expect(card(page, third)).toBeVisible();
  await expect(card(page, third).getByRole('button', { name: `Yes, revoke ${third}` })).toBeHidden();
  await page.reload();
  await expect(card(page, third)).toBeVisible();
  await expect(card(page, first)).toHaveCount(0);
  await expect(card(page, second)).toHaveCount(0);
});

test('a refused action closes every confirmation and focuses the inline error (hydrated)', async ({
  page,
  pageErrors,
}) => {
  await signInAs(page, ADMIN);
  await page.goto('/admin/clients/demo-notes');
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
  const before = await page.getByTestId('policy-state-access_ttl').textContent();
  // A confirmation left open, then a refused save elsewhere on the page.
  await page.getByText('Delete client', { exact: true }).click();
  await expect(page.locator('details.confirm[open]')).toHaveCount(1);
  await page.getByTestId('policy-access_ttl').fill('abc');
  await page.getByRole('button', { name: 'Save policy' }).click();
  await expect(page.getByTestId('action-error')).toHaveText(
    'access_ttl: "abc" is not a duration (use e.g. 90s, 15m, 1h, 30d)',
  );
  await expect(page.locator('details.confirm[open]')).toHaveCount(0);
  await expect.poll(() => activeTestId(page)).toBe('action-error');
  await expect(page.getByTestId('policy-state-access_ttl')).toHaveText(before!);
  // Chromium logs the refused save's 400 itself: expected, and the only one.
  expect(pageErrors.splice(0)).toEqual([
    'console: Failed to load resource: the server responded with a status of 400 (Bad Request)',
  ]);
});

test.describe('with JavaScript off', () => {
  test.use({ javaScriptEnabled: false });

  test('a refused policy value ends on the console page with the message inline, nothing saved', async ({ page }) => {
    await signInAs(page, ADMIN);

    // The defaults.
    await page.goto('/admin/defaults');
    const before = await page.getByTestId('policy-state-access_ttl').textContent();
    await page.getByTestId('policy-access_ttl').fill('abc');
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'GET' && r.url().includes('/admin/defaults')),
      page.getByRole('button', { name: 'Save defaults' }).click(),
    ]);
    expect(response.status()).toBe(200);
    await expect(page).toHaveURL(/\/admin\/defaults\?__path=/);
    await expect(page.locator('body')).not.toContainText('ServerError|');
    await expect(page.getByTestId('action-error')).toHaveText(
      'access_ttl: "abc" is not a duration (use e.g. 90s, 15m, 1h, 30d)',
    );
    await expect(page.getByTestId('policy-access_ttl')).toBeVisible();
    await expect(page.getByRole('button', { name: 'Save defaults' })).toBeVisible();
    await expect(page.getByTestId('policy-state-access_ttl')).toHaveText(before!);

    // A client's policy.
    await page.goto('/admin/clients/demo-notes');
    const clientBefore = await page.getByTestId('policy-state-access_ttl').textContent();
    await page.getByTestId('policy-access_ttl').fill('0');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await expect(page).toHaveURL(/\/admin\/clients\/demo-notes\?__path=/);
    await expect(page.getByTestId('action-error')).toContainText('access_ttl: 0s is outside');
    await expect(page.getByTestId('policy-form')).toBeVisible();
    await expect(page.getByTestId('notice')).toHaveCount(0);
    await page.goto('/admin/clients/demo-notes');
    await expect(page.getByTestId('policy-state-access_ttl')).toHaveText(clientBefore!);
  });
});
