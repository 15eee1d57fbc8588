// Screenshots of every page at desktop and phone width, written to
// end2end/screenshots/ for people to look at. Runs only with LATCHKEY_SCREENSHOTS=1.
import { test, expect, signIn, DEMO_USER } from './fixtures';

const sizes = [
  { name: 'desktop', width: 1280, height: 800 },
  { name: 'phone', width: 390, height: 844 },
];

test.skip(!process.env.LATCHKEY_SCREENSHOTS, 'set LATCHKEY_SCREENSHOTS=1 to refresh the screenshots');

for (const size of sizes) {
  test(`pages at ${size.name} width`, async ({ page }) => {
    await page.setViewportSize({ width: size.width, height: size.height });
    await page.goto('/signin');
    await page.screenshot({ path: `screenshots/sign-in-${size.name}.png`, fullPage: true });
    await signIn(page, DEMO_USER.username, 'wrong-password');
    await expect(page.getByTestId('signin-error')).toBeVisible();
    await page.screenshot({ path: `screenshots/sign-in-error-${size.name}.png`, fullPage: true });
    await signIn(page, DEMO_USER.username, DEMO_USER.password);
    await expect(page.getByTestId('username')).toBeVisible();
    await page.screenshot({ path: `screenshots/home-${size.name}.png`, fullPage: true });
  });
}
