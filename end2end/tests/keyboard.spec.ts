// A keyboard-only walk (issue 14): a person with one app and a second
// signed-in browser revokes the app and signs the other browser out using
// only Tab, Shift+Tab, Enter and Space. At each step the focused element is
// the intended one and shows a visible focus indicator; the effects are
// proven afterwards (introspection, the other browser signed out).
import type { Locator, Page } from '@playwright/test';
import { test, expect, addUser, allowApp, signIn, DEMO_NOTES, DEMO_NOTES_BASIC } from './fixtures';

/// Presses `key` and checks that `target` has the focus, and shows it: it
/// matches :focus-visible and its computed style draws an outline (not
/// `none`, at least 2px) or a box shadow.
async function press(page: Page, key: string, target: Locator, what: string) {
  await page.keyboard.press(key);
  await expect(target, `${key} → ${what}`).toBeFocused();
  const focus = await target.evaluate((el) => {
    const s = getComputedStyle(el);
    return {
      focusVisible: el.matches(':focus-visible'),
      outline: s.outlineStyle,
      outlineWidth: parseFloat(s.outlineWidth),
      boxShadow: s.boxShadow,
    };
  });
  expect(focus.focusVisible, `${what} matches :focus-visible`).toBe(true);
  const drawn = (focus.outline !== 'none' && focus.outlineWidth >= 2) || focus.boxShadow !== 'none';
  expect(drawn, `${what} shows its focus: ${JSON.stringify(focus)}`).toBe(true);
}

test('revoke an app and sign out another session with the keyboard alone', async ({ page, browser, latchkeyCli, request }) => {
  const person = addUser(latchkeyCli, 'keys');
  // Set up with the mouse: one app with tokens, and a second browser signed in.
  await signIn(page, person.username, person.password);
  await expect(page.getByTestId('topbar-username')).toHaveText(person.username);
  await allowApp(page, DEMO_NOTES.clientId, 'openid profile notes:read offline_access');
  const code = new URL(page.url()).searchParams.get('code')!;
  const token = await request.post('/oauth/token', {
    headers: { Authorization: DEMO_NOTES_BASIC },
    form: { grant_type: 'authorization_code', code, redirect_uri: DEMO_NOTES.redirectUri },
  });
  expect(token.status()).toBe(200);
  const tokens = await token.json();
  const active = async (t: string) =>
    (await (await request.post('/oauth/introspect', { headers: { Authorization: DEMO_NOTES_BASIC }, form: { token: t } })).json()).active;
  expect(await active(tokens.access_token)).toBe(true);

  const phone = await browser.newContext();
  const other = await phone.newPage();
  await signIn(other, person.username, person.password);
  await expect(other.getByTestId('topbar-username')).toHaveText(person.username);

  // My apps, hydrated; focus starts at the document.
  await page.goto('/');
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
  const card = page.locator(`[data-testid="app-card"][data-app="${DEMO_NOTES.name}"]`);
  await expect(card).toHaveCount(1);
  await expect(page.getByTestId('app-card')).toHaveCount(1);
  const topbar = page.locator('header.topbar');
  await press(page, 'Tab', topbar.getByRole('link', { name: 'Latchkey' }), 'the home link');
  await press(page, 'Tab', topbar.getByRole('link', { name: 'My apps' }), 'My apps');
  await press(page, 'Tab', topbar.getByRole('link', { name: 'Sessions' }), 'Sessions');
  await press(page, 'Tab', topbar.getByRole('link', { name: /^Security/ }), 'Security');
  await press(page, 'Tab', topbar.getByRole('button', { name: 'Sign out' }), 'Sign out');
  await press(page, 'Tab', card.getByRole('link', { name: DEMO_NOTES.name }), 'the app name');
  await press(page, 'Tab', card.getByTestId('app-home'), "the app's home page");
  await press(page, 'Tab', card.getByRole('link', { name: 'Privacy policy' }), "the app's privacy policy");
  await press(page, 'Tab', card.getByRole('link', { name: 'Terms' }), "the app's terms");
  await press(page, 'Tab', card.getByRole('link', { name: 'Details' }), 'Details');
  const revoke = card.locator('summary', { hasText: 'Revoke access' });
  await press(page, 'Tab', revoke, 'Revoke access');
  await press(page, 'Shift+Tab', card.getByRole('link', { name: 'Details' }), 'back to Details');
  await press(page, 'Tab', revoke, 'Revoke access again');
  // Enter opens the confirmation in place.
  const confirm = card.getByRole('group', { name: `Revoke access for ${DEMO_NOTES.name}?` });
  await expect(confirm).toBeHidden();
  await press(page, 'Enter', revoke, 'Revoke access, opened');
  await expect(confirm).toBeVisible();
  const yes = card.getByRole('button', { name: `Yes, revoke ${DEMO_NOTES.name}` });
  await press(page, 'Tab', yes, 'the confirming button');
  // Space presses it; the outcome takes the focus.
  await page.keyboard.press('Space');
  const notice = page.getByTestId('notice');
  await expect(notice).toHaveText(`Access for ${DEMO_NOTES.name} revoked. Its tokens stopped working at once.`);
  await expect(notice).toBeFocused();
  await expect(page.getByTestId('app-card')).toHaveCount(0);
  await expect(page.getByTestId('no-apps')).toBeVisible();
  expect(await active(tokens.access_token)).toBe(false);
  expect(await active(tokens.refresh_token)).toBe(false);

  // Back up to the top bar and on to Sessions.
  await press(page, 'Shift+Tab', topbar.getByRole('button', { name: 'Sign out' }), 'Sign out, from the notice');
  await press(page, 'Shift+Tab', topbar.getByRole('link', { name: /^Security/ }), 'Security, from the notice');
  await press(page, 'Shift+Tab', topbar.getByRole('link', { name: 'Sessions' }), 'Sessions, from the notice');
  // Enter follows the link (in-app navigation): the new page's heading takes
  // the focus, as after a page load Tab starts from the top of the page.
  await press(page, 'Enter', page.getByRole('heading', { level: 1, name: 'Sessions & devices' }), 'the Sessions heading');
  await expect(page).toHaveURL(/\/sessions$/);
  const rows = page.getByTestId('sign-in-session');
  await expect(rows).toHaveCount(2);
  const otherRow = page.locator('[data-testid="sign-in-session"][data-current="false"]');
  const otherButton = otherRow.getByRole('button', { name: /^Sign out \(/ });
  const hereButton = page.locator('[data-testid="sign-in-session"][data-current="true"]').getByRole('button');
  // The rows in their order on the page, this session's too.
  const order = await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-current')));
  for (const current of order) {
    const button = current === 'true' ? hereButton : otherButton;
    await press(page, 'Tab', button, current === 'true' ? "this session's button" : "the other session's button");
    if (current === 'false') break;
  }
  await expect(otherButton).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('notice')).toHaveText('1 session signed out.');
  await expect(page.getByTestId('notice')).toBeFocused();
  await expect(rows).toHaveCount(1);
  await expect(page.locator('[data-testid="sign-in-session"][data-current="true"]')).toHaveCount(1);

  // The other browser is signed out; this one is not.
  await other.goto('/');
  await expect(other).toHaveURL(/\/signin\?next=%2F$/);
  await page.goto('/');
  await expect(page.getByTestId('topbar-username')).toHaveText(person.username);
  await phone.close();
});
