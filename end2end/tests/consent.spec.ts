// The authorization code flow in real Chromium: an app sends a signed-out user
// to /oauth/authorize, they sign in, see the consent page, answer it, and land
// back at the app; the app's code then works at the token endpoint.
import { test, expect, DEMO_USER } from './fixtures';

const APP = {
  clientId: 'demo-notes',
  secret: 'demo-notes-secret-for-local-use-only',
  redirectUri: 'http://127.0.0.1:8080/callback',
};

function authorizeUrl(state: string, extra: Record<string, string> = {}) {
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: APP.clientId,
    redirect_uri: APP.redirectUri,
    scope: 'openid profile notes:read',
    state,
    nonce: 'nonce-e2e',
    ...extra,
  });
  return `/oauth/authorize?${params}`;
}

// Nothing listens on the app's address: answer its callback here and keep the URL.
async function catchCallback(page: import('@playwright/test').Page) {
  await page.route('http://127.0.0.1:8080/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<title>App</title><p>back at the app</p>' }),
  );
}

async function signInHere(page: import('@playwright/test').Page) {
  await expect(page).toHaveURL(/\/signin\?next=%2Foauth%2Fauthorize/);
  await page.getByLabel('Username').fill(DEMO_USER.username);
  await page.getByLabel('Password').fill(DEMO_USER.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

test('a signed-out user signs in, allows the app and the code works', async ({ page, request }) => {
  await catchCallback(page);
  await page.goto(authorizeUrl('state-allow'));
  await signInHere(page);
  const consent = page.getByTestId('consent');
  await expect(consent).toBeVisible();
  await expect(page.getByTestId('consent-client')).toHaveText('Demo Notes');
  await expect(consent).toContainText('See your username');
  await expect(consent).toContainText('notes:read');
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page).toHaveURL(/^http:\/\/127\.0\.0\.1:8080\/callback\?/);
  const back = new URL(page.url());
  expect(back.searchParams.get('state')).toBe('state-allow');
  expect(back.searchParams.get('iss')).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const code = back.searchParams.get('code')!;
  expect(code).toBeTruthy();

  const basic = 'Basic ' + Buffer.from(`${APP.clientId}:${APP.secret}`).toString('base64');
  const token = await request.post('/oauth/token', {
    headers: { Authorization: basic },
    form: { grant_type: 'authorization_code', code, redirect_uri: APP.redirectUri },
  });
  expect(token.status()).toBe(200);
  const body = await token.json();
  expect(body.scope).toBe('openid profile notes:read');
  expect(body.id_token.split('.')).toHaveLength(3);
  const introspection = await request.post('/oauth/introspect', {
    headers: { Authorization: basic },
    form: { token: body.access_token },
  });
  expect((await introspection.json()).active).toBe(true);

  // Consent is remembered: the next request goes straight back with a code
  // (read from the redirect itself, with the browser's cookies).
  const again = await page.request.get(authorizeUrl('state-again'), { maxRedirects: 0 });
  expect(again.status()).toBe(303);
  const location = new URL(again.headers()['location']);
  expect(location.origin + location.pathname).toBe(APP.redirectUri);
  expect(location.searchParams.get('state')).toBe('state-again');
  expect(location.searchParams.get('code')).toBeTruthy();
});

test('deny sends the user back with access_denied and no code', async ({ page }) => {
  await catchCallback(page);
  await page.goto(authorizeUrl('state-deny', { scope: 'openid email' }));
  await signInHere(page);
  await page.getByRole('button', { name: 'Deny' }).click();
  await expect(page).toHaveURL(/callback\?/);
  const back = new URL(page.url());
  expect(back.searchParams.get('error')).toBe('access_denied');
  expect(back.searchParams.get('state')).toBe('state-deny');
  expect(back.searchParams.has('code')).toBe(false);
});

test('an unregistered redirect URI stops on an error page', async ({ page, pageErrors, baseURL }) => {
  const response = await page.goto(authorizeUrl('s', { redirect_uri: 'https://evil.example/cb' }));
  expect(response!.status()).toBe(400);
  await expect(page.getByTestId('oauth-error')).toContainText('has not registered');
  expect(new URL(page.url()).origin).toBe(baseURL);
  // Chromium logs the 400 itself as a console error: expected here, and the only one.
  expect(pageErrors).toEqual([
    'console: Failed to load resource: the server responded with a status of 400 (Bad Request)',
  ]);
  pageErrors.length = 0;
});
