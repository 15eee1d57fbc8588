import { test, expect, signIn, DEMO_USER, SESSION_COOKIE } from './fixtures';

for (const javaScriptEnabled of [true, false]) {
  test.describe(`with JavaScript ${javaScriptEnabled ? 'on (hydrated)' : 'off'}`, () => {
    test.use({ javaScriptEnabled });

    test('the demo user signs in, sees their name and signs out', async ({ page, context }) => {
      await signIn(page, DEMO_USER.username, DEMO_USER.password);
      await expect(page).toHaveURL(/\/$/);
      await expect(page.getByRole('heading', { level: 1, name: 'My apps' })).toBeVisible();
      await expect(page.getByTestId('topbar-username')).toHaveText(DEMO_USER.username);
      const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE);
      expect(cookie, 'session cookie').toBeDefined();
      expect(cookie!.httpOnly).toBe(true);
      expect(cookie!.sameSite).toBe('Lax');

      await page.getByRole('button', { name: 'Sign out' }).click();
      await expect(page).toHaveURL(/\/signin\?signed_out=1$/);
      await expect(page.getByRole('status')).toHaveText('You are signed out.');
      // The dashboard is closed again.
      await page.goto('/');
      await expect(page).toHaveURL(/\/signin\?next=%2F$/);
      await expect(page.getByTestId('topbar-username')).toHaveCount(0);
    });

    test('a wrong password shows the message and creates no session', async ({ page, context }) => {
      await signIn(page, DEMO_USER.username, 'not-the-password');
      await expect(page).toHaveURL(/\/signin\?error=invalid/);
      await expect(page.getByTestId('signin-error')).toHaveText('Wrong username or password.');
      // The username is kept for another try, the password is not.
      await expect(page.getByLabel('Username')).toHaveValue(DEMO_USER.username);
      await expect(page.getByLabel('Password')).toHaveValue('');
      expect((await context.cookies()).map((c) => c.name)).not.toContain(SESSION_COOKIE);
      await page.goto('/');
      await expect(page).toHaveURL(/\/signin\?next=%2F$/);
    });
  });
}

test('an unknown user gets the same message as a wrong password', async ({ page, context }) => {
  await signIn(page, 'nobody-here', 'whatever-password');
  await expect(page.getByTestId('signin-error')).toHaveText('Wrong username or password.');
  expect((await context.cookies()).map((c) => c.name)).not.toContain(SESSION_COOKIE);
});
