// Screenshots of every page at desktop and phone width, written to
// end2end/screenshots/ for people to look at. Runs only with LATCHKEY_SCREENSHOTS=1.
import { test, expect, allowApp, signIn, DEMO_USER, UPSTREAM } from './fixtures';
import { latchkeyCli, SQLITE } from './e2e-env';

const sizes = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
];

test.skip(!process.env.LATCHKEY_SCREENSHOTS, 'set LATCHKEY_SCREENSHOTS=1 to refresh the screenshots');

for (const size of sizes) {
  test(`pages at ${size.name} width`, async ({ page, pageErrors }) => {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.goto('/signin');
    await page.screenshot({ path: `screenshots/sign-in-${size.name}.png`, fullPage: true });
    await signIn(page, DEMO_USER.username, 'wrong-password');
    await expect(page.getByTestId('signin-error')).toBeVisible();
    await page.screenshot({ path: `screenshots/sign-in-error-${size.name}.png`, fullPage: true });
    await signIn(page, DEMO_USER.username, DEMO_USER.password);
    await expect(page.getByTestId('topbar-username')).toBeVisible();
    await page.screenshot({ path: `screenshots/home-${size.name}.png`, fullPage: true });

    const authorize = new URLSearchParams({
      response_type: 'code',
      client_id: 'demo-notes',
      redirect_uri: 'http://127.0.0.1:8080/callback',
      scope: 'openid profile email offline_access notes:read notes:write',
      state: 's',
      prompt: 'consent',
    });
    // The demo app with a logo (Latchkey's own mark stands in for one).
    latchkeyCli(['client', 'set', 'demo-notes', '--logo-uri', `${SQLITE.origin}/favicon.svg`]);
    await page.goto(`/oauth/authorize?${authorize}`);
    await expect(page.getByTestId('consent')).toBeVisible();
    await page.screenshot({ path: `screenshots/consent-${size.name}.png`, fullPage: true });
    await page.route('http://127.0.0.1:8080/**', (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<title>App</title>back at the app' }),
    );
    await page.getByRole('button', { name: 'Allow' }).click();
    await expect(page).toHaveURL(/8080\/callback/);
    const code = new URL(page.url()).searchParams.get('code')!;
    const basic = 'Basic ' + Buffer.from('demo-notes:demo-notes-secret-for-local-use-only').toString('base64');
    const token = await page.request.post('/oauth/token', {
      headers: { Authorization: basic },
      form: { grant_type: 'authorization_code', code, redirect_uri: 'http://127.0.0.1:8080/callback' },
    });
    expect(token.status()).toBe(200);
    await page.goto('/');
    await expect(page.getByTestId('app-card').first()).toBeVisible();
    await page.screenshot({ path: `screenshots/my-apps-${size.name}.png`, fullPage: true });
    const card = page.locator('[data-testid="app-card"][data-app="Demo Notes"]');
    await card.getByText('Revoke access', { exact: true }).click();
    await page.screenshot({ path: `screenshots/revoke-confirm-${size.name}.png`, fullPage: true });
    await card.getByRole('link', { name: 'Details' }).click();
    await expect(page.getByTestId('app-detail')).toBeVisible();
    await page.screenshot({ path: `screenshots/app-detail-${size.name}.png`, fullPage: true });
    await page.goto('/sessions');
    await expect(page.getByTestId('sign-in-session').first()).toBeVisible();
    await page.screenshot({ path: `screenshots/sessions-${size.name}.png`, fullPage: true });
    await page.goto('/security');
    await expect(page.getByTestId('security-event').first()).toBeVisible();
    await page.screenshot({ path: `screenshots/security-${size.name}.png`, fullPage: true });

    // The admin console, after the other tests made some activity.
    await page.getByRole('button', { name: 'Sign out' }).first().click();
    await expect(page).toHaveURL(/signed_out=1/);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('latchkey-admin-demo');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expect(page.getByTestId('topbar-username')).toHaveText('admin');
    await page.goto('/admin');
    await expect(page.getByTestId('chart')).toHaveCount(2);
    await page.screenshot({ path: `screenshots/admin-charts-${size.name}.png`, fullPage: true });
    await page.goto('/admin/clients/demo-notes');
    await expect(page.getByTestId('policy-form')).toBeVisible();
    await page.screenshot({ path: `screenshots/admin-client-policy-${size.name}.png`, fullPage: true });
    await page.goto('/admin/clients/demo-notes-api');
    await expect(page.getByTestId('resource-server')).toContainText('http://127.0.0.1:3200');
    await page.screenshot({ path: `screenshots/admin-resource-server-${size.name}.png`, fullPage: true });
    await page.goto('/admin/clients');
    await page.screenshot({ path: `screenshots/admin-clients-${size.name}.png`, fullPage: true });
    await page.goto('/admin/scopes');
    await expect(page.getByTestId('scope-row').first()).toBeVisible();
    await page.screenshot({ path: `screenshots/admin-scopes-${size.name}.png`, fullPage: true });
    await page.goto('/admin/users');
    await page.screenshot({ path: `screenshots/admin-users-${size.name}.png`, fullPage: true });
    await page.goto('/admin/audit');
    await page.screenshot({ path: `screenshots/admin-audit-${size.name}.png`, fullPage: true });
    authorize.set('redirect_uri', 'https://evil.example/cb');
    await page.goto(`/oauth/authorize?${authorize}`);
    await expect(page.getByTestId('oauth-error')).toBeVisible();
    await page.screenshot({ path: `screenshots/authorize-error-${size.name}.png`, fullPage: true });
    // Chromium logs the error page's 400 status as a console error: expected.
    expect(pageErrors.splice(0)).toEqual([
      'console: Failed to load resource: the server responded with a status of 400 (Bad Request)',
    ]);
    await page.goto('/oauth/logout');
    await expect(page.getByTestId('logout-confirm')).toBeVisible();
    await page.screenshot({ path: `screenshots/logout-confirm-${size.name}.png`, fullPage: true });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect(page.getByTestId('signed-out')).toBeVisible();
    await page.screenshot({ path: `screenshots/signed-out-${size.name}.png`, fullPage: true });
  });
}

// Right after an action: My apps after a hydrated revoke (notice focused, no
// confirmation open), and the policy page with an inline error (JavaScript off).
for (const size of sizes) {
  test(`after an action at ${size.name} width`, async ({ page, browser }) => {
    await page.setViewportSize({ width: size.width, height: size.height });
    await signIn(page, DEMO_USER.username, DEMO_USER.password);
    await expect(page.getByTestId('topbar-username')).toBeVisible();
    await allowApp(page, 'demo-notes', 'openid profile notes:read');
    await page.goto('/');
    await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
    const card = page.locator('[data-testid="app-card"][data-app="Demo Notes"]');
    await card.getByText('Revoke access', { exact: true }).click();
    await card.getByRole('button', { name: 'Yes, revoke Demo Notes' }).click();
    await expect(page.getByTestId('notice')).toBeFocused();
    await expect(page.locator('details.confirm[open]')).toHaveCount(0);
    await page.screenshot({ path: `screenshots/my-apps-revoked-${size.name}.png`, fullPage: true });

    const noJs = await browser.newContext({ javaScriptEnabled: false, viewport: { width: size.width, height: size.height } });
    const admin = await noJs.newPage();
    await signIn(admin, 'admin', 'latchkey-admin-demo');
    await expect(admin.getByTestId('topbar-username')).toHaveText('admin');
    await admin.goto('/admin/clients/demo-notes');
    await admin.getByTestId('policy-access_ttl').fill('abc');
    await admin.getByRole('button', { name: 'Save policy' }).click();
    await expect(admin.getByTestId('action-error')).toBeVisible();
    await admin.getByTestId('action-error').scrollIntoViewIfNeeded();
    await admin.screenshot({ path: `screenshots/admin-policy-error-${size.name}.png`, fullPage: true });
    await noJs.close();
  });
}

// Signing in through the company's provider (issue 12): the sign-in page with
// its button, and — with the provider's "end upstream session" switch on for
// this test only (the CLI on the running instance's database, switched off
// again at the end; tests run one at a time) — the page after signing out
// that offers signing out of the provider too.
for (const size of sizes) {
  test(`signing in through ${UPSTREAM.name} at ${size.name} width`, async ({ page }) => {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.goto('/signin');
    await expect(page.getByRole('button', { name: `Sign in with ${UPSTREAM.name}` })).toBeVisible();
    await page.screenshot({ path: `screenshots/sign-in-upstream-${size.name}.png`, fullPage: true });

    await page.getByRole('button', { name: `Sign in with ${UPSTREAM.name}` }).click();
    await page.getByLabel('Username').fill(UPSTREAM.username);
    await page.getByLabel('Password').fill(UPSTREAM.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    // The provider asks only until carol has allowed this instance once.
    const consent = page.getByTestId('consent');
    await expect(consent.or(page.getByTestId('topbar-username'))).toBeVisible();
    if (await consent.isVisible()) await consent.getByRole('button', { name: 'Allow' }).click();
    await expect(page.getByTestId('topbar-username')).toHaveText(UPSTREAM.username);
    await expect(page).toHaveURL(/^http:\/\/127\.0\.0\.1:/);

    latchkeyCli(['upstream', 'set', UPSTREAM.name, '--end-upstream-session', 'on']);
    try {
      await page.getByRole('button', { name: 'Sign out' }).first().click();
      await expect(page.getByTestId('upstream-signed-out')).toBeVisible();
      await page.screenshot({ path: `screenshots/signed-out-upstream-${size.name}.png`, fullPage: true });
    } finally {
      latchkeyCli(['upstream', 'set', UPSTREAM.name, '--end-upstream-session', 'off']);
    }
  });
}

// The console's sign-in providers: the list with the form to add one, and
// the company's provider with a revocation that failed (its revocation
// endpoint pointed at a closed port for this test only, then cleared again:
// one sign-in through it ends while the endpoint cannot be reached).
for (const size of sizes) {
  test(`sign-in providers in the console at ${size.name} width`, async ({ page, browser }) => {
    await page.setViewportSize({ width: size.width, height: size.height });
    latchkeyCli(['upstream', 'set', UPSTREAM.name, '--revocation-endpoint', 'http://127.0.0.1:9/revoke']);
    try {
      const carol = await browser.newContext({ viewport: { width: size.width, height: size.height } });
      const signedIn = await carol.newPage();
      await signedIn.goto('/signin');
      await signedIn.getByRole('button', { name: `Sign in with ${UPSTREAM.name}` }).click();
      await signedIn.getByLabel('Username').fill(UPSTREAM.username);
      await signedIn.getByLabel('Password').fill(UPSTREAM.password);
      await signedIn.getByRole('button', { name: 'Sign in', exact: true }).click();
      const consent = signedIn.getByTestId('consent');
      await expect(consent.or(signedIn.getByTestId('topbar-username'))).toBeVisible();
      if (await consent.isVisible()) await consent.getByRole('button', { name: 'Allow' }).click();
      await expect(signedIn.getByTestId('topbar-username')).toHaveText(UPSTREAM.username);
      await signedIn.getByRole('button', { name: 'Sign out' }).first().click();
      await expect(signedIn).toHaveURL(/signed_out=1/);
      await carol.close();

      await signIn(page, 'admin', 'latchkey-admin-demo');
      await expect(page.getByTestId('topbar-username')).toHaveText('admin');
      await page.goto('/admin/upstreams');
      await expect(page.getByTestId('upstreams')).toContainText(UPSTREAM.name);
      await page.screenshot({ path: `screenshots/admin-upstreams-${size.name}.png`, fullPage: true });
      await page.getByRole('link', { name: UPSTREAM.name, exact: true }).click();
      await expect(page.getByTestId('upstream-name')).toHaveText(UPSTREAM.name);
      // The outbox worker tries at once; the failure shows after its attempt.
      await expect(async () => {
        await page.reload();
        await expect(page.getByTestId('revocation-failures')).toBeVisible({ timeout: 1000 });
      }).toPass({ timeout: 20_000 });
      await page.screenshot({ path: `screenshots/admin-upstream-${size.name}.png`, fullPage: true });
    } finally {
      latchkeyCli(['upstream', 'set', UPSTREAM.name, '--revocation-endpoint', 'none']);
    }
  });
}

// Sign-in throttling: the page a locked username gets, and the admin's user
// page that lifts the lock (clicked here, so the later specs sign in as usual).
test('sign-in throttling at both widths', async ({ page }) => {
  for (let i = 0; i < 5; i++) {
    await page.goto('/signin');
    await signIn(page, DEMO_USER.username, `wrong-password-${i}`);
  }
  await expect(page.getByTestId('signin-error')).toContainText('Too many failed sign-ins. Try again in 1 minute.');
  for (const size of sizes) {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.screenshot({ path: `screenshots/sign-in-throttled-${size.name}.png`, fullPage: true });
  }
  await page.goto('/signin');
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('latchkey-admin-demo');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page.getByTestId('topbar-username')).toHaveText('admin');
  await page.goto('/admin/users');
  await page.getByRole('link', { name: DEMO_USER.username, exact: true }).click();
  await expect(page.getByTestId('sign-in-locked')).toBeVisible();
  for (const size of sizes) {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.screenshot({ path: `screenshots/admin-user-locked-${size.name}.png`, fullPage: true });
  }
  await page.getByRole('button', { name: 'Allow sign-in again' }).click();
  await expect(page.getByTestId('sign-in-locked')).toHaveCount(0);
  await expect(page.getByText('Failed sign-ins forgotten')).toBeVisible();
});

// The dark palette (prefers-color-scheme: dark, issue 14): the main pages,
// signed in as alice with an app and as the admin, `*-dark-<size>.png`.
for (const size of sizes) {
  test(`dark palette at ${size.name} width`, async ({ page }) => {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto('/signin');
    await page.screenshot({ path: `screenshots/sign-in-dark-${size.name}.png`, fullPage: true });
    await signIn(page, DEMO_USER.username, DEMO_USER.password);
    await expect(page.getByTestId('topbar-username')).toBeVisible();
    await page.goto(`/oauth/authorize?${new URLSearchParams({
      response_type: 'code', client_id: 'demo-notes', redirect_uri: 'http://127.0.0.1:8080/callback',
      scope: 'openid profile notes:read', state: 's', prompt: 'consent',
    })}`);
    await expect(page.getByTestId('consent')).toBeVisible();
    await page.screenshot({ path: `screenshots/consent-dark-${size.name}.png`, fullPage: true });
    await allowApp(page, 'demo-notes', 'openid profile notes:read');
    await page.goto('/');
    await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
    const card = page.locator('[data-testid="app-card"][data-app="Demo Notes"]');
    await card.getByText('Revoke access', { exact: true }).click();
    // The focus ring on the confirming button, as a keyboard user sees it.
    await card.getByRole('button', { name: 'Yes, revoke Demo Notes' }).focus();
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Tab');
    await page.screenshot({ path: `screenshots/my-apps-dark-${size.name}.png`, fullPage: true });
    await card.getByRole('link', { name: 'Details' }).click();
    await expect(page.getByTestId('app-detail')).toBeVisible();
    await page.screenshot({ path: `screenshots/app-detail-dark-${size.name}.png`, fullPage: true });
    await page.goto('/sessions');
    await expect(page.getByTestId('sign-in-session').first()).toBeVisible();
    await page.screenshot({ path: `screenshots/sessions-dark-${size.name}.png`, fullPage: true });
    await page.goto('/security');
    await expect(page.getByTestId('security-event').first()).toBeVisible();
    await page.screenshot({ path: `screenshots/security-dark-${size.name}.png`, fullPage: true });
    await page.getByRole('button', { name: 'Sign out' }).first().click();
    await expect(page).toHaveURL(/signed_out=1/);
    await signIn(page, 'admin', 'latchkey-admin-demo');
    await expect(page.getByTestId('topbar-username')).toHaveText('admin');
    await page.goto('/admin');
    await expect(page.getByTestId('chart')).toHaveCount(2);
    await page.screenshot({ path: `screenshots/admin-charts-dark-${size.name}.png`, fullPage: true });
    await page.goto('/admin/clients/demo-notes');
    await expect(page.getByTestId('policy-form')).toBeVisible();
    await page.screenshot({ path: `screenshots/admin-client-policy-dark-${size.name}.png`, fullPage: true });
    await page.goto('/admin/scopes');
    await expect(page.getByTestId('scope-row').first()).toBeVisible();
    await page.screenshot({ path: `screenshots/admin-scopes-dark-${size.name}.png`, fullPage: true });
    await page.goto('/admin/audit');
    await page.screenshot({ path: `screenshots/admin-audit-dark-${size.name}.png`, fullPage: true });
  });
}
