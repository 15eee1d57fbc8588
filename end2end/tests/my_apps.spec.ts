// My apps and Sessions in real Chromium, on data made by real OAuth flows:
// the user sees the app with its scopes and last use, revokes it, and the
// protocol (introspection, refresh) proves the tokens are dead. Also: "Sign
// out all other sessions" from a second browser, and the revoke with
// JavaScript off.
import type { APIRequestContext, Browser, Page } from '@playwright/test';
import { test, expect, DEMO_USER, DEMO_NOTES, DEMO_NOTES_BASIC } from './fixtures';

const APP = DEMO_NOTES;
const BASIC = DEMO_NOTES_BASIC;

type Tokens = { access_token: string; refresh_token: string };

async function signInAsAlice(page: Page) {
  await page.goto('/signin');
  await page.getByLabel('Username').fill(DEMO_USER.username);
  await page.getByLabel('Password').fill(DEMO_USER.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page.getByTestId('topbar-username')).toHaveText(DEMO_USER.username);
}

/// A real authorization code flow in this browser: consent (asked again with
/// prompt=consent), the app's callback caught, the code redeemed.
async function grantApp(page: Page, request: APIRequestContext): Promise<Tokens> {
  await page.route('http://127.0.0.1:8080/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<title>App</title>back at the app' }),
  );
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: APP.clientId,
    redirect_uri: APP.redirectUri,
    scope: 'openid profile notes:read offline_access',
    state: 'e2e',
    prompt: 'consent',
  });
  await page.goto(`/oauth/authorize?${params}`);
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page).toHaveURL(/^http:\/\/127\.0\.0\.1:8080\/callback\?/);
  const code = new URL(page.url()).searchParams.get('code')!;
  const res = await request.post('/oauth/token', {
    headers: { Authorization: BASIC },
    form: { grant_type: 'authorization_code', code, redirect_uri: APP.redirectUri },
  });
  expect(res.status()).toBe(200);
  return res.json();
}

async function active(request: APIRequestContext, token: string): Promise<boolean> {
  const res = await request.post('/oauth/introspect', { headers: { Authorization: BASIC }, form: { token } });
  expect(res.status()).toBe(200);
  return (await res.json()).active;
}

async function refreshError(request: APIRequestContext, refreshToken: string): Promise<string> {
  const res = await request.post('/oauth/token', {
    headers: { Authorization: BASIC },
    form: { grant_type: 'refresh_token', refresh_token: refreshToken },
  });
  expect(res.status()).toBe(400);
  return (await res.json()).error;
}

async function revokeFromMyApps(page: Page, request: APIRequestContext, tokens: Tokens, hydrated: boolean) {
  await page.goto('/');
  if (hydrated) {
    await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
    // Marks this document: a full page load would lose the mark.
    await page.evaluate(() => ((window as unknown as { __kept: number }).__kept = 42));
  }
  const card = page.locator(`[data-testid="app-card"][data-app="${APP.name}"]`);
  await expect(card).toBeVisible();
  await expect(card).toContainText('See your username');
  await expect(card).toContainText('Keep access while you are away');
  await expect(card.getByTestId('last-used')).toContainText(/\d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  await expect(card).toContainText(/\d+ active sessions?/);
  expect(await active(request, tokens.access_token)).toBe(true);

  await card.getByText('Revoke access', { exact: true }).click();
  await expect(card.getByRole('group', { name: `Revoke access for ${APP.name}?` })).toContainText(
    `${APP.name} loses: Know who you are`,
  );
  await card.getByRole('button', { name: `Yes, revoke ${APP.name}` }).click();
  await expect(page.getByTestId('notice')).toHaveText(
    `Access for ${APP.name} revoked. Its tokens stopped working at once.`,
  );
  await expect(page.locator(`[data-testid="app-card"][data-app="${APP.name}"]`)).toHaveCount(0);

  // The protocol agrees, from the next request on.
  expect(await active(request, tokens.access_token)).toBe(false);
  expect(await active(request, tokens.refresh_token)).toBe(false);
  expect(await refreshError(request, tokens.refresh_token)).toBe('invalid_grant');
  if (hydrated) {
    expect(await page.evaluate(() => (window as unknown as { __kept?: number }).__kept), 'no full reload').toBe(42);
  }
}

test('the user sees the app, revokes it, and its tokens are dead (hydrated, no reload)', async ({ page, request }) => {
  await signInAsAlice(page);
  const tokens = await grantApp(page, request);
  await revokeFromMyApps(page, request, tokens, true);
});

test.describe('with JavaScript off', () => {
  test.use({ javaScriptEnabled: false });
  test('the same revoke works as plain form posts', async ({ page, request }) => {
    await signInAsAlice(page);
    const tokens = await grantApp(page, request);
    await revokeFromMyApps(page, request, tokens, false);
  });
});

test('the app detail page shows its sessions and signs one out', async ({ page, request }) => {
  await signInAsAlice(page);
  const first = await grantApp(page, request);
  const second = await grantApp(page, request);
  await page.goto('/');
  await page.locator(`[data-testid="app-card"][data-app="${APP.name}"]`).getByRole('link', { name: 'Details' }).click();
  await expect(page.getByTestId('app-name')).toHaveText(APP.name);
  const before = await page.getByTestId('app-session').count();
  expect(before).toBeGreaterThanOrEqual(2);
  await expect(page.getByTestId('activity')).toContainText('You allowed access');
  await page.getByTestId('app-session').first().getByRole('button', { name: /Sign out this session/ }).click();
  await expect(page.getByTestId('notice')).toContainText(`One session of ${APP.name} signed out`);
  await expect(page.getByTestId('app-session')).toHaveCount(before - 1);
  const alive = [await active(request, first.access_token), await active(request, second.access_token)];
  expect(alive.filter(Boolean)).toHaveLength(1);
  // Clean up for the next tests: revoke the app.
  await page.getByText('Revoke access', { exact: true }).click();
  await page.getByRole('button', { name: `Yes, revoke ${APP.name}` }).click();
  await expect(page.getByTestId('notice')).toContainText(`Access for ${APP.name} revoked`);
});

async function newSignedInPage(browser: Browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signInAsAlice(page);
  return { context, page };
}

test('"Sign out all other sessions" from a second browser ends the first and its apps', async ({ browser }) => {
  const laptop = await newSignedInPage(browser);
  const tokens = await grantApp(laptop.page, laptop.context.request);
  const phone = await newSignedInPage(browser);
  await phone.page.goto('/sessions');
  const sessions = phone.page.getByTestId('sign-in-session');
  expect(await sessions.count()).toBeGreaterThanOrEqual(2);
  await expect(phone.page.locator('[data-testid="sign-in-session"][data-current="true"]')).toContainText(
    'This session',
  );
  await phone.page.getByText('Sign out all other sessions', { exact: true }).last().click();
  await phone.page.getByRole('button', { name: 'Yes, sign them out' }).click();
  await expect(phone.page.getByTestId('notice')).toContainText('signed out');
  await expect(phone.page.getByTestId('sign-in-session')).toHaveCount(1);

  // The laptop's sign-in and the app session it started are gone.
  await laptop.page.goto('/');
  await expect(laptop.page).toHaveURL(/\/signin\?next=%2F$/);
  expect(await active(phone.context.request, tokens.access_token)).toBe(false);
  expect(await refreshError(phone.context.request, tokens.refresh_token)).toBe('invalid_grant');
  await laptop.context.close();
  await phone.context.close();
});
