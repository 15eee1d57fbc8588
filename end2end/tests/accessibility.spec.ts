// Everyone can use it (issue 14): axe-core (@axe-core/playwright) checks
// every page against the WCAG 2.0 and 2.1 A and AA rules, signed out and
// signed in, as a person and as the admin, at desktop and phone width, in the
// light and the dark palette (prefers-color-scheme emulated). Zero violations
// is the bar: a failure lists each violation's rule, help and elements.
import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';
import { test, expect, addUser, signIn, DEMO_USER, DEMO_NOTES, UPSTREAM } from './fixtures';

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const ADMIN = { username: 'admin', password: 'latchkey-admin-demo' };
const sizes = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
] as const;
const schemes = ['light', 'dark'] as const;

type Finding = { page: string; rule: string; impact: string; help: string; targets: string[] };

/// Runs axe on what the page shows now; returns its violations, labelled.
/// Also checks that axe looked at this page (its URL) and found rules to pass.
async function audit(page: Page, label: string): Promise<Finding[]> {
  const results = await new AxeBuilder({ page }).withTags(TAGS).analyze();
  expect(results.url, `axe ran on ${label}`).toBe(page.url());
  expect(results.passes.length, `axe passed rules on ${label}`).toBeGreaterThan(0);
  return results.violations.map((v) => ({
    page: label,
    rule: v.id,
    impact: v.impact ?? '',
    help: v.help,
    targets: v.nodes.map((n) => n.target.join(' ')),
  }));
}

/// A dashboard page, once hydrated (what people use from then on).
async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
}

/// The relative luminance of a computed CSS colour (rgb()/rgba()).
function luminance(css: string): number {
  const [r, g, b] = css.match(/[\d.]+/g)!.slice(0, 3).map((c) => {
    const v = Number(c) / 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

for (const scheme of schemes) {
  for (const size of sizes) {
    test(`every page, ${scheme}, ${size.name} width: no WCAG 2.1 A/AA violation`, async ({ page, pageErrors, latchkeyCli, baseURL }) => {
      test.setTimeout(180_000);
      await page.setViewportSize({ width: size.width, height: size.height });
      await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'no-preference' });
      const found: Finding[] = [];
      const check = async (label: string) => found.push(...(await audit(page, label)));

      // Signed out.
      await page.goto('/signin');
      await hydrated(page);
      // The palette follows the emulated scheme (the dark run checks the dark one).
      const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
      const fg = await page.evaluate(() => getComputedStyle(document.body).color);
      if (scheme === 'dark') {
        expect(luminance(bg), `dark background, got ${bg}`).toBeLessThan(0.05);
        expect(luminance(fg), `light text, got ${fg}`).toBeGreaterThan(0.6);
      } else {
        expect(luminance(bg), `light background, got ${bg}`).toBeGreaterThan(0.85);
        expect(luminance(fg), `dark text, got ${fg}`).toBeLessThan(0.05);
      }
      await expect(page.getByRole('button', { name: `Sign in with ${UPSTREAM.name}` })).toBeVisible();
      await check('sign-in');
      await page.goto('/signin?error=invalid');
      await expect(page.getByTestId('signin-error')).toBeVisible();
      await check('sign-in with an error');
      await page.goto('/signin?error=throttled&minutes=1');
      await expect(page.getByTestId('signin-error')).toContainText('Too many failed sign-ins');
      await check('sign-in throttled');

      // My apps with no app: a person of their own.
      const newcomer = addUser(latchkeyCli, `axe-${scheme}-${size.name}`);
      await signIn(page, newcomer.username, newcomer.password);
      await expect(page.getByTestId('no-apps')).toBeVisible();
      await hydrated(page);
      await check('My apps, no apps');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await expect(page).toHaveURL(/\/signin\?signed_out=1/);
      await hydrated(page);
      await check('signed out (dashboard)');

      // Alice: the consent page, My apps with apps, the app, sessions.
      await signIn(page, DEMO_USER.username, DEMO_USER.password);
      await expect(page.getByTestId('topbar-username')).toHaveText(DEMO_USER.username);
      await page.route('http://127.0.0.1:8080/**', (route) =>
        route.fulfill({ status: 200, contentType: 'text/html', body: '<title>App</title>back at the app' }),
      );
      const authorize = new URLSearchParams({
        response_type: 'code',
        client_id: DEMO_NOTES.clientId,
        redirect_uri: DEMO_NOTES.redirectUri,
        scope: 'openid profile email offline_access notes:read notes:write',
        state: 'axe',
        prompt: 'consent',
      });
      await page.goto(`/oauth/authorize?${authorize}`);
      await expect(page.getByTestId('consent')).toBeVisible();
      await check('consent');
      await page.getByRole('button', { name: 'Allow' }).click();
      await expect(page).toHaveURL(/^http:\/\/127\.0\.0\.1:8080\/callback\?/);

      await page.goto('/');
      await hydrated(page);
      const card = page.locator(`[data-testid="app-card"][data-app="${DEMO_NOTES.name}"]`);
      await expect(card).toBeVisible();
      await check('My apps, with apps');
      await card.getByText('Revoke access', { exact: true }).click();
      await expect(card.getByRole('button', { name: `Yes, revoke ${DEMO_NOTES.name}` })).toBeVisible();
      await check('My apps, revoke confirmation open');
      await card.getByRole('link', { name: 'Details' }).click();
      await expect(page.getByTestId('app-detail')).toBeVisible();
      await hydrated(page);
      await check('app detail');
      await page.goto('/sessions');
      await expect(page.getByTestId('sign-in-session').first()).toBeVisible();
      await hydrated(page);
      await check('sessions');
      await page.goto('/security');
      await expect(page.getByTestId('security-event').first()).toBeVisible();
      await hydrated(page);
      await check('security activity');

      // Pages that say no: the console for a non-admin (403), an unknown
      // path (404), an authorization request that cannot go back (400).
      await page.goto('/admin');
      await expect(page.getByTestId('forbidden')).toBeVisible();
      await check('admin, not an admin (403)');
      await page.goto('/no-such-page');
      await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
      await hydrated(page);
      await check('not found (404)');
      authorize.set('redirect_uri', 'https://evil.example/cb');
      await page.goto(`/oauth/authorize?${authorize}`);
      await expect(page.getByTestId('oauth-error')).toBeVisible();
      await check('authorization error (400)');

      // RP-initiated logout: the confirmation, then the signed-out page.
      await page.goto(`/oauth/logout?client_id=${DEMO_NOTES.clientId}`);
      await expect(page.getByTestId('logout-confirm')).toBeVisible();
      await check('logout confirmation');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await expect(page.getByTestId('signed-out')).toBeVisible();
      await check('logout, signed out');

      // The admin console, every page.
      await signIn(page, ADMIN.username, ADMIN.password);
      await expect(page.getByTestId('topbar-username')).toHaveText(ADMIN.username);
      const adminPages: [string, string, () => Promise<void>][] = [
        ['admin home', '/admin', () => expect(page.getByTestId('chart')).toHaveCount(2)],
        ['admin clients', '/admin/clients', () => expect(page.getByRole('link', { name: DEMO_NOTES.name, exact: true })).toBeVisible()],
        ['admin client', `/admin/clients/${DEMO_NOTES.clientId}`, () => expect(page.getByTestId('policy-form')).toBeVisible()],
        ['admin resource server', '/admin/clients/demo-notes-api', () => expect(page.getByTestId('resource-server')).toBeVisible()],
        ['admin defaults', '/admin/defaults', () => expect(page.getByRole('button', { name: 'Save defaults' })).toBeVisible()],
        ['admin scopes', '/admin/scopes', () => expect(page.getByTestId('scope-row').first()).toBeVisible()],
        ['admin users', '/admin/users', () => expect(page.getByRole('link', { name: DEMO_USER.username, exact: true })).toBeVisible()],
        ['admin upstreams', '/admin/upstreams', () => expect(page.getByTestId('upstreams')).toContainText(UPSTREAM.name)],
        ['admin audit', '/admin/audit', () => expect(page.locator('table.audit tbody tr').first()).toBeVisible()],
      ];
      for (const [label, path, ready] of adminPages) {
        await page.goto(path);
        await ready();
        await hydrated(page);
        await check(label);
      }
      await page.goto('/admin/users');
      await page.getByRole('link', { name: DEMO_USER.username, exact: true }).click();
      await expect(page.getByRole('heading', { level: 1 })).toContainText(DEMO_USER.username);
      await hydrated(page);
      await check('admin user');
      await page.goto('/admin/upstreams');
      await page.getByRole('link', { name: UPSTREAM.name, exact: true }).click();
      await expect(page.getByTestId('upstream-name')).toHaveText(UPSTREAM.name);
      await hydrated(page);
      await check('admin upstream');
      // A form with an inline error (the policy refused).
      await page.goto(`/admin/clients/${DEMO_NOTES.clientId}`);
      await hydrated(page);
      await page.getByTestId('policy-access_ttl').fill('abc');
      await page.getByRole('button', { name: 'Save policy' }).click();
      await expect(page.getByTestId('action-error')).toBeVisible();
      await check('admin client, policy error');
      expect(new URL(page.url()).origin).toBe(baseURL);

      expect(found, JSON.stringify(found, null, 2)).toEqual([]);
      // Chromium logs the 403, 404 and 400 statuses (the last one the refused
      // policy's server function) as console errors: expected, and the only ones.
      expect(pageErrors.splice(0)).toEqual(
        [403, 404, 400, 400].map((s) => expect.stringMatching(new RegExp(`^console: Failed to load resource: .* ${s} `))),
      );
    });
  }
}

// prefers-reduced-motion: the buttons' colour transitions run by default and
// are switched off for people who asked their system for less motion.
test('reduced motion switches transitions off', async ({ page }) => {
  const duration = async () =>
    page.getByRole('button', { name: 'Sign in', exact: true }).evaluate((el) => getComputedStyle(el).transitionDuration);
  await page.emulateMedia({ reducedMotion: 'no-preference' });
  await page.goto('/signin');
  expect(await duration()).not.toMatch(/^0s(, 0s)*$/);
  await page.emulateMedia({ reducedMotion: 'reduce' });
  expect(await duration()).toMatch(/^0s(, 0s)*$/);
});
