// The admin console in real Chromium, with effects proven at the protocol
// level: refresh switched off → a real refresh fails with unauthorized_client;
// access TTL 5m → the next token lives 300 s; "revoke all tokens of this
// client" → introspection inactive; a bad value → inline message, nothing
// saved; a non-admin gets 403 on /admin and on the admin API.
import type { APIRequestContext, Browser, Page } from '@playwright/test';
import { test, expect, DEMO_USER } from './fixtures';

const ADMIN = { username: 'admin', password: 'latchkey-admin-demo' };
const APP = {
  clientId: 'demo-notes',
  secret: 'demo-notes-secret-for-local-use-only',
  redirectUri: 'http://127.0.0.1:8080/callback',
};
const BASIC = 'Basic ' + Buffer.from(`${APP.clientId}:${APP.secret}`).toString('base64');

async function signInAs(page: Page, who: { username: string; password: string }) {
  await page.goto('/signin');
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('topbar-username')).toHaveText(who.username);
}

/// Alice runs a real code flow for the demo app in her own browser.
async function aliceTokens(browser: Browser): Promise<{ access_token: string; refresh_token: string }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signInAs(page, DEMO_USER);
  await page.route('http://127.0.0.1:8080/**', (route) => route.fulfill({ status: 200, body: 'back at the app' }));
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: APP.clientId,
    redirect_uri: APP.redirectUri,
    scope: 'openid offline_access',
    state: 'admin-e2e',
    prompt: 'consent',
  });
  await page.goto(`/oauth/authorize?${params}`);
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page).toHaveURL(/8080\/callback/);
  const code = new URL(page.url()).searchParams.get('code')!;
  const res = await context.request.post('/oauth/token', {
    headers: { Authorization: BASIC },
    form: { grant_type: 'authorization_code', code, redirect_uri: APP.redirectUri },
  });
  expect(res.status()).toBe(200);
  const tokens = await res.json();
  await context.close();
  return tokens;
}

async function refresh(request: APIRequestContext, refreshToken: string) {
  return request.post('/oauth/token', {
    headers: { Authorization: BASIC },
    form: { grant_type: 'refresh_token', refresh_token: refreshToken },
  });
}

function claims(jwt: string) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

async function savePolicy(page: Page, values: Record<string, string>) {
  const form = page.getByTestId('policy-form');
  for (const [key, value] of Object.entries(values)) {
    const field = form.getByTestId(`policy-${key}`);
    if ((await field.evaluate((el) => el.tagName)) === 'SELECT') {
      await field.selectOption(value);
    } else {
      await field.fill(value);
    }
  }
  await form.getByRole('button', { name: 'Save policy' }).click();
}

test('policy and revocation from the console take effect at the protocol level', async ({ page, browser, request, pageErrors }) => {
  const tokens = await aliceTokens(browser);
  await signInAs(page, ADMIN);
  await page.getByRole('link', { name: 'Admin' }).click();
  await expect(page.getByTestId('chart')).toHaveCount(2);
  await page.getByRole('link', { name: 'Clients' }).click();
  await page.getByRole('link', { name: 'Demo Notes', exact: true }).click();
  await expect(page.getByTestId('client-name')).toHaveText('Demo Notes');
  await expect(page.getByTestId('policy-state-access_ttl')).toContainText('Inherits default (10m)');
  await expect(page.getByTestId('refresh-warning')).toContainText(/Switching refresh off stops \d+ live refresh token/);

  // Out of range: an inline message, nothing saved.
  await savePolicy(page, { access_ttl: '30s' });
  await expect(page.getByTestId('action-error')).toContainText('access');
  await page.reload();
  await expect(page.getByTestId('policy-state-access_ttl')).toContainText('Inherits default (10m)');
  // Chromium logs the refused save's 400 itself: expected, and the only one.
  expect(pageErrors.splice(0)).toEqual([
    'console: Failed to load resource: the server responded with a status of 400 (Bad Request)',
  ]);

  // Refresh off: Alice's app can no longer refresh.
  await savePolicy(page, { refresh_enabled: 'off' });
  await expect(page.getByTestId('notice')).toContainText('Policy saved');
  let res = await refresh(request, tokens.refresh_token);
  expect(res.status()).toBe(400);
  expect((await res.json()).error).toBe('unauthorized_client');

  // Back on, with 5-minute access tokens: the next token lives 300 s.
  await savePolicy(page, { refresh_enabled: 'inherit', access_ttl: '5m' });
  await expect(page.getByTestId('policy-state-access_ttl')).toContainText('Override: 5m');
  res = await refresh(request, tokens.refresh_token);
  expect(res.status()).toBe(200);
  const renewed = await res.json();
  const c = claims(renewed.access_token);
  expect(c.exp - c.iat).toBe(300);
  expect(renewed.expires_in).toBe(300);

  // Revoke all tokens of the client: introspection says inactive at once.
  await page.getByText('Revoke all tokens of this client', { exact: true }).click();
  await page.getByRole('button', { name: 'Yes, revoke everything' }).click();
  await expect(page.getByTestId('notice')).toContainText('no token of this client works any more');
  const introspection = await request.post('/oauth/introspect', {
    headers: { Authorization: BASIC },
    form: { token: renewed.access_token },
  });
  expect(await introspection.json()).toEqual({ active: false });
  res = await refresh(request, renewed.refresh_token);
  expect((await res.json()).error).toBe('invalid_grant');

  // The audit log shows it and exports the filtered rows.
  await page.goto('/admin/audit?kind=revoked');
  await expect(page.getByTestId('audit')).toContainText('revoked');
  const csv = await page.request.get('/admin/audit/export?format=csv&kind=revoked');
  expect(csv.status()).toBe(200);
  expect(csv.headers()['content-type']).toContain('text/csv');
  const lines = (await csv.text()).trim().split('\r\n');
  expect(lines[0]).toBe('id,at,time,kind,actor_user_id,actor_client_id,subject_user_id,client_id,ip,detail');
  expect(lines.length).toBeGreaterThan(1);
  expect(lines.slice(1).every((l) => l.split(',')[3] === 'revoked')).toBe(true);
  await page.goto(`/admin/clients/${APP.clientId}`);

  // Leave the defaults as they were for other tests.
  await savePolicy(page, { access_ttl: '' });
  await expect(page.getByTestId('policy-state-access_ttl')).toContainText('Inherits default (10m)');
});

test('a non-admin gets 403 on the console and on the admin API', async ({ page, request, pageErrors }) => {
  await signInAs(page, DEMO_USER);
  await expect(page.getByRole('link', { name: 'Admin' })).toHaveCount(0);
  const res = await page.goto('/admin/clients');
  expect(res!.status()).toBe(403);
  await expect(page.getByTestId('forbidden')).toBeVisible();
  expect(pageErrors.splice(0)).toEqual([
    'console: Failed to load resource: the server responded with a status of 403 (Forbidden)',
  ]);
  const fn = await page.request.post('/api/console/home', { headers: { Accept: 'application/json' } });
  expect(fn.status()).toBe(403);
  // The REST API wants a bearer token with latchkey:admin.
  const api = await request.get('/api/admin/clients');
  expect(api.status()).toBe(401);
  const exported = await page.request.get('/admin/audit/export?format=csv');
  expect(exported.status()).toBe(403);
});
