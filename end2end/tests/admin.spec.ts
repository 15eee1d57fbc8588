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
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
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

// Sign-in providers (issue 12): the console adds, edits and removes an
// upstream OpenID provider through the domain (audited). Adding one contacts
// nothing (discovery runs at the first sign-in), so the issuer can be a name
// no one serves. The client secret is write-only: no page, server function
// answer or audit event carries it.
const PROVIDER = {
  name: 'E2E SSO',
  renamed: 'E2E SSO renamed',
  issuer: 'https://sso.e2e.example',
  clientId: 'latchkey-e2e',
  secret: 'e2e-upstream-secret-never-shown',
};
const BAD_REQUEST = 'console: Failed to load resource: the server responded with a status of 400 (Bad Request)';

test('sign-in providers: add, list, edit, refuse a bad value, remove', async ({ page, request, pageErrors }) => {
  await signInAs(page, ADMIN);
  await page.getByRole('link', { name: 'Admin' }).click();
  await page.getByRole('link', { name: 'Sign-in providers' }).click();
  await expect(page).toHaveURL(/\/admin\/upstreams$/);
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
  await expect(page.getByTestId('redirect-uri')).toHaveText(/^http:\/\/127\.0\.0\.1:\d+\/signin\/upstream\/callback$/);

  // An http issuer off loopback: refused inline, the field marked, what was typed kept.
  const add = page.getByTestId('add-upstream');
  await add.getByLabel('Name', { exact: true }).fill(PROVIDER.name);
  await add.getByLabel('Issuer URL').fill('http://example.com');
  await add.getByLabel('Client ID').fill(PROVIDER.clientId);
  await add.getByLabel('Client secret').fill(PROVIDER.secret);
  await expect(add.getByTestId('revoke-at-logout')).toBeChecked();
  await expect(add.getByTestId('end-upstream-session')).not.toBeChecked();
  await add.getByRole('button', { name: 'Add provider' }).click();
  await expect(page.getByTestId('action-error')).toContainText('issuer');
  await expect(page.getByTestId('action-error')).toContainText('must use https');
  await expect(add.getByLabel('Issuer URL')).toHaveAttribute('aria-invalid', 'true');
  await expect(add.getByLabel('Name', { exact: true })).toHaveValue(PROVIDER.name);
  expect(pageErrors.splice(0)).toEqual([BAD_REQUEST]);

  await add.getByLabel('Issuer URL').fill(PROVIDER.issuer);
  await add.getByLabel('Scopes besides openid').fill('profile email');
  await add.getByRole('button', { name: 'Add provider' }).click();
  await expect(page).toHaveURL(/\/admin\/upstreams\/[^/?]+\?saved=added$/);
  await expect(page.getByTestId('notice')).toContainText('Provider added');
  await expect(page.getByTestId('upstream-name')).toHaveText(PROVIDER.name);
  await expect(page.getByTestId('upstream-issuer')).toHaveText(PROVIDER.issuer);
  await expect(page.getByTestId('upstream-revoke')).toHaveText('on');
  await expect(page.getByTestId('health-linked')).toHaveText('0');
  await expect(page.getByTestId('health-pending')).toHaveText('0');
  await expect(page.getByTestId('failures-none')).toBeVisible();
  const id = new URL(page.url()).pathname.split('/').pop()!;
  // The sign-in page offers it at once (rendered on the server: no JavaScript needed).
  expect(await (await request.get('/signin')).text()).toContain(`Sign in with ${PROVIDER.name}`);

  // Listed, and each row leads to its page.
  await page.getByRole('link', { name: 'Sign-in providers' }).first().click();
  const row = page.locator(`[data-testid="upstreams"] tr[data-upstream="${id}"]`);
  await expect(row).toContainText(PROVIDER.name);
  await expect(row).toContainText(PROVIDER.issuer);
  await expect(row).toContainText(PROVIDER.clientId);
  await expect(row.locator('td').nth(3)).toHaveText('on');
  await row.getByRole('link', { name: PROVIDER.name }).click();
  await expect(page.getByTestId('upstream-name')).toHaveText(PROVIDER.name);

  // A bad override is refused and the form keeps what was typed, the override open.
  const settings = page.getByTestId('upstream-settings');
  await expect(settings.getByLabel('Issuer')).not.toBeEditable();
  await expect(settings.getByLabel('Issuer')).toHaveValue(PROVIDER.issuer);
  await expect(settings.getByLabel('New client secret')).toHaveValue('');
  await settings.getByLabel('Name', { exact: true }).fill(PROVIDER.renamed);
  await settings.getByText('Revocation overrides').click();
  await settings.getByLabel('Revocation endpoint').fill('http://example.com/revoke');
  await settings.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByTestId('action-error')).toContainText('revocation_endpoint');
  await expect(settings.getByLabel('Revocation endpoint')).toHaveAttribute('aria-invalid', 'true');
  await expect(settings.getByLabel('Revocation endpoint')).toHaveValue('http://example.com/revoke');
  await expect(settings.getByLabel('Name', { exact: true })).toHaveValue(PROVIDER.renamed);
  await expect(page.getByTestId('upstream-name')).toHaveText(PROVIDER.name);
  expect(pageErrors.splice(0)).toEqual([BAD_REQUEST]);

  // Renamed, revocation at logout switched off, the secret kept (empty field).
  await settings.getByLabel('Revocation endpoint').fill('');
  await settings.getByTestId('revoke-at-logout').uncheck();
  await settings.getByRole('button', { name: 'Save settings' }).click();
  await expect(page.getByTestId('notice')).toContainText('Settings saved');
  await expect(page.getByTestId('upstream-name')).toHaveText(PROVIDER.renamed);
  await expect(page.getByTestId('upstream-revoke')).toHaveText('off');
  await page.reload();
  await expect(page.getByTestId('upstream-name')).toHaveText(PROVIDER.renamed);
  await expect(page.getByTestId('upstream-settings').getByTestId('revoke-at-logout')).not.toBeChecked();
  await expect(page.getByTestId('upstream-settings').getByLabel('Scopes besides openid')).toHaveValue('profile email');

  // The secret is in no page, no server function answer and no audit event.
  expect(await page.content()).not.toContain(PROVIDER.secret);
  const answer = await page.request.post('/api/console/upstream', {
    headers: { Accept: 'application/json' },
    form: { provider_id: id },
  });
  expect(answer.status()).toBe(200);
  const body = await answer.text();
  expect(body).toContain(PROVIDER.renamed);
  expect(body).not.toContain(PROVIDER.secret);
  const audit = await page.request.get('/admin/audit/export?format=json&kind=upstream_provider_changed');
  const events = await audit.text();
  expect(events).toContain(PROVIDER.renamed);
  expect(events).toContain('revoke_at_logout');
  expect(events).not.toContain(PROVIDER.secret);

  // Removed after a confirmation: gone from the list and from the sign-in page.
  await page.getByText('Remove provider', { exact: true }).click();
  await page.getByRole('button', { name: 'Yes, remove it' }).click();
  await expect(page).toHaveURL(/\/admin\/upstreams\?removed=/);
  await expect(page.getByTestId('notice')).toContainText(`${PROVIDER.renamed} removed`);
  await expect(page.locator(`tr[data-upstream="${id}"]`)).toHaveCount(0);
  expect(await (await request.get('/signin')).text()).not.toContain(`Sign in with ${PROVIDER.renamed}`);
  const gone = await page.goto(`/admin/upstreams/${id}`);
  expect(gone!.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Provider not found' })).toBeVisible();
  expect(pageErrors.splice(0)).toEqual([
    'console: Failed to load resource: the server responded with a status of 404 (Not Found)',
  ]);
});

test('sign-in providers without JavaScript: a refusal shows inline, adding and removing work', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await signInAs(page, ADMIN);
  await page.goto('/admin/upstreams');
  const add = page.getByTestId('add-upstream');
  await add.getByLabel('Name', { exact: true }).fill('No-JS SSO');
  await add.getByLabel('Issuer URL').fill('http://example.com');
  await add.getByLabel('Client ID').fill('no-js');
  await add.getByLabel('Client secret').fill('no-js-secret');
  await add.getByRole('button', { name: 'Add provider' }).click();
  await expect(page).toHaveURL(/\/admin\/upstreams\?/);
  await expect(page.getByTestId('action-error')).toContainText('must use https');
  await expect(page.getByTestId('add-upstream').getByLabel('Issuer URL')).toHaveAttribute('aria-invalid', 'true');

  await add.getByLabel('Name', { exact: true }).fill('No-JS SSO');
  await add.getByLabel('Issuer URL').fill('http://localhost:3110');
  await add.getByLabel('Client ID').fill('no-js');
  await add.getByLabel('Client secret').fill('no-js-secret');
  await add.getByRole('button', { name: 'Add provider' }).click();
  await expect(page.getByTestId('upstream-name')).toHaveText('No-JS SSO');
  await page.getByText('Remove provider', { exact: true }).click();
  await page.getByRole('button', { name: 'Yes, remove it' }).click();
  await expect(page.getByTestId('notice')).toContainText('No-JS SSO removed');
  await context.close();
});
