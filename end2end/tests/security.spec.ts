// Apps people recognise and Security activity in real Chromium (issue 14):
// the consent page speaks the scope catalogue's words, sensitive first; an
// app that got access shows up in Security activity, counted in the top bar
// until the page is opened (hydrated navigation included).
import { test, expect, DEMO_USER, DEMO_NOTES } from './fixtures';

test('a new app shows in Security activity, counted until seen', async ({ page }) => {
  await page.goto('/signin');
  await page.getByLabel('Username').fill(DEMO_USER.username);
  await page.getByLabel('Password').fill(DEMO_USER.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page.getByTestId('topbar-username')).toHaveText(DEMO_USER.username);
  // Whatever earlier tests left: seen now.
  await page.goto('/security');
  await expect(page.getByTestId('security-unseen')).toHaveCount(0);

  // The consent page: the app as registered, the catalogue's words, sensitive first.
  await page.route('http://127.0.0.1:8080/**', (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<title>App</title>back at the app' }),
  );
  const params = new URLSearchParams({
    response_type: 'code',
    client_id: DEMO_NOTES.clientId,
    redirect_uri: DEMO_NOTES.redirectUri,
    scope: 'openid notes:read notes:write',
    state: 'e2e',
    prompt: 'consent',
  });
  await page.goto(`/oauth/authorize?${params}`);
  const consent = page.getByTestId('consent');
  await expect(consent.getByTestId('app-description')).toHaveText('Write notes and read them anywhere you sign in.');
  await expect(consent.getByTestId('app-home')).toHaveText('127.0.0.1');
  const scopes = consent.locator('.scope-list li');
  await expect(scopes.first()).toHaveAttribute('data-scope', 'notes:write');
  await expect(scopes.first()).toContainText('Sensitive');
  await expect(scopes.first()).toContainText('Write, change and delete your notes');
  await expect(consent).toContainText('Read your notes');
  await expect(consent).not.toContainText('permission this app defines');
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page).toHaveURL(/^http:\/\/127\.0\.0\.1:8080\/callback\?/);

  // My apps: the app with its home page; the top bar counts one new event.
  await page.goto('/');
  const card = page.locator(`[data-testid="app-card"][data-app="Demo Notes"]`);
  await expect(card.getByTestId('app-home')).toHaveText('127.0.0.1');
  await expect(card.locator('.scope-chips li.sensitive')).toContainText('Write, change and delete your notes');
  await expect(page.getByTestId('security-unseen')).toContainText('1');
  // Opened from the top bar (a hydrated navigation): listed as new, then seen.
  await page.getByTestId('security-link').click();
  await expect(page).toHaveURL(/\/security$/);
  const newest = page.getByTestId('security-event').first();
  await expect(newest).toHaveAttribute('data-kind', 'consent_granted');
  await expect(newest).toContainText('Demo Notes got access to your account');
  await expect(newest).toContainText('New');
  await newest.getByRole('link', { name: 'Review Demo Notes' }).click();
  await expect(page.getByTestId('app-name')).toHaveText('Demo Notes');
  await expect(page.getByTestId('security-unseen')).toHaveCount(0);
});
