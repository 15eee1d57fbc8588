// The guard crate's example API (`notes_api`, started next to Latchkey by
// scripts/e2e-server.sh) in front of a real browser flow: alice allows Demo
// Notes `notes:read` in Chromium, the token works at the API, she revokes the
// app in My apps, and the API — which validates tokens locally and learns of
// revocations through Latchkey's feed — answers 401.
import type { APIRequestContext } from '@playwright/test';
import { test, expect, signIn, allowApp, DEMO_USER, DEMO_NOTES, DEMO_NOTES_BASIC } from './fixtures';

const API = `http://127.0.0.1:${process.env.NOTES_API_PORT ?? '3200'}`;
const APP = DEMO_NOTES;
const BASIC = DEMO_NOTES_BASIC;

async function notesStatus(request: APIRequestContext, token: string): Promise<number> {
  const res = await request.get(`${API}/notes`, { headers: { Authorization: `Bearer ${token}` } });
  return res.status();
}

test('revoking the app in My apps makes the example API refuse its token', async ({ page, request }) => {
  await signIn(page, DEMO_USER.username, DEMO_USER.password);
  await expect(page.getByTestId('topbar-username')).toHaveText(DEMO_USER.username);
  await allowApp(page, APP.clientId, 'notes:read');
  const code = new URL(page.url()).searchParams.get('code')!;
  const redeemed = await request.post('/oauth/token', {
    headers: { Authorization: BASIC },
    form: { grant_type: 'authorization_code', code, redirect_uri: APP.redirectUri },
  });
  expect(redeemed.status()).toBe(200);
  const token: string = (await redeemed.json()).access_token;

  // The API takes it: a notes:read token whose audience is the API.
  const notes = await request.get(`${API}/notes`, { headers: { Authorization: `Bearer ${token}` } });
  expect(notes.status()).toBe(200);
  expect((await notes.json()).notes).toEqual([]);
  // No token, or a made-up one: refused (the 200 above is the guard's answer).
  expect((await request.get(`${API}/notes`)).status()).toBe(401);
  expect(await notesStatus(request, 'not-a-token')).toBe(401);

  await page.goto('/');
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
  const card = page.locator(`[data-testid="app-card"][data-app="${APP.name}"]`);
  await card.getByText('Revoke access', { exact: true }).click();
  await card.getByRole('button', { name: `Yes, revoke ${APP.name}` }).click();
  await expect(page.getByTestId('notice')).toHaveText(
    `Access for ${APP.name} revoked. Its tokens stopped working at once.`,
  );

  // The revocation reaches the API through the feed (polled, no timing claim).
  await expect.poll(() => notesStatus(request, token), { timeout: 20_000 }).toBe(401);
  const health = await request.get(`${API}/healthz`);
  expect(health.status()).toBe(200);
  expect((await health.json()).entries).toBeGreaterThanOrEqual(1);
});
