// openid-client (npm; https://github.com/panva/openid-client, a certified
// OpenID Connect relying-party library) against the real Latchkey: the
// library runs in this test process as an app's back end would, Chromium
// plays the person (alice signs in and answers the consent page). Beside the
// Rust `openidconnect` crate test (server/tests), this is the second
// independent client implementation the server is checked with (issue 14).
//
// What is proven, each through the library's own calls: discovery; the
// authorization code grant with PKCE S256 (and a wrong verifier refused);
// the ID token's claims; refresh with rotation; userinfo; RFC 7009
// revocation, after which refresh, introspection and userinfo all refuse the
// tokens; RP-initiated logout, after which the sign-in's refresh token is dead.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Page } from '@playwright/test';
import * as oidc from 'openid-client';
import { test, expect, DEMO_USER } from './fixtures';

/// The app's own address: a tiny HTTP server in this process on a port the
/// system picks (127.0.0.1:0, never one of the fixed test ports), answering
/// every request with a page; the browser really lands there, with the code
/// or after signing out. (page.route did not catch the end-session
/// endpoint's redirect when tried, so the app is real here.)
let app: Server;
let appOrigin: string;
const redirectUri = () => `${appOrigin}/oidc-client/callback`;
const postLogoutUri = () => `${appOrigin}/oidc-client/signed-out`;

test.beforeAll(async () => {
  app = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!DOCTYPE html><html lang="en"><title>App</title><p>back at the app</p></html>');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  appOrigin = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
});
test.afterAll(async () => {
  await new Promise((resolve) => app.close(resolve));
});

type Registered = { clientId: string; secret: string; name: string };
let registered: Registered | undefined;

/// A confidential client of its own, registered once per worker with the
/// CLI on the project's instance (as scripts/e2e-server.sh registers one):
/// the app's redirect and post-logout URIs, the default grants.
function registerClient(cli: (args: string[]) => string): Registered {
  if (!registered) {
    const name = `openid-client RP ${process.pid}-${Date.now()}`;
    const out = JSON.parse(
      cli(['client', 'add', '--name', name, '--redirect-uri', redirectUri(), '--post-logout-redirect-uri', postLogoutUri(), '--json']),
    );
    registered = { clientId: out.client.client_id, secret: out.client_secret, name };
    expect(registered.clientId).toBeTruthy();
    expect(registered.secret).toBeTruthy();
  }
  return registered;
}

/// `url` exactly, followed by a query.
const withQuery = (url: string) => new RegExp(`^${url.replace(/[/.:]/g, '\\$&')}\\?`);

/// Discovery by openid-client. Latchkey's test issuer is plain http on
/// loopback, which openid-client 6 refuses unless allowed.
async function discover(issuer: string, rp: Registered): Promise<oidc.Configuration> {
  return oidc.discovery(new URL(issuer), rp.clientId, undefined, oidc.ClientSecretBasic(rp.secret), {
    execute: [oidc.allowInsecureRequests],
  });
}

type Flow = { verifier: string; state: string; nonce: string; callback: URL };

/// The browser part of the code flow: the authorization URL openid-client
/// built (PKCE S256, state, nonce; prompt=consent so the consent page is
/// always shown), alice signs in on Latchkey's page (unless `signedIn`, this
/// browser's sign-in is then used) and allows the app on its consent page,
/// and the URL the browser lands on at the app (with the code) is returned.
async function browserCodeFlow(page: Page, config: oidc.Configuration, rpName: string, signedIn = false): Promise<Flow> {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri(),
    scope: 'openid profile offline_access',
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    prompt: 'consent',
  });
  expect(url.searchParams.get('code_challenge_method')).toBe('S256');
  expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);

  await page.goto(url.href);
  if (!signedIn) {
    await expect(page).toHaveURL(/\/signin\?next=%2Foauth%2Fauthorize%3F/);
    await page.getByLabel('Username').fill(DEMO_USER.username);
    await page.getByLabel('Password').fill(DEMO_USER.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }
  await expect(page.getByTestId('consent')).toBeVisible();
  await expect(page.getByTestId('consent-client')).toHaveText(rpName);
  await page.getByRole('button', { name: 'Allow' }).click();
  await expect(page).toHaveURL(withQuery(redirectUri()));
  await expect(page.locator('body')).toHaveText('back at the app');
  return { verifier, state, nonce, callback: new URL(page.url()) };
}

/// The whole code flow: the browser part, then openid-client's code
/// exchange (it checks state, iss, the ID token's iss/aud/exp/nonce).
async function signInWithOpenidClient(page: Page, config: oidc.Configuration, rpName: string) {
  const flow = await browserCodeFlow(page, config, rpName);
  return oidc.authorizationCodeGrant(config, flow.callback, {
    pkceCodeVerifier: flow.verifier,
    expectedState: flow.state,
    expectedNonce: flow.nonce,
    idTokenExpected: true,
  });
}

/// The OAuth error a call of openid-client was answered with (token endpoint).
async function oauthError(call: Promise<unknown>): Promise<string> {
  const e = await call.then(
    () => {
      throw new Error('expected the server to refuse');
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(oidc.ResponseBodyError);
  return (e as oidc.ResponseBodyError).error;
}

/// The Bearer challenge's error of a refused userinfo call, and its status.
async function userinfoRefusal(call: Promise<unknown>): Promise<{ status: number; error: string | undefined }> {
  const e = await call.then(
    () => {
      throw new Error('expected userinfo to refuse');
    },
    (e: unknown) => e,
  );
  expect(e).toBeInstanceOf(oidc.WWWAuthenticateChallengeError);
  const challenge = e as oidc.WWWAuthenticateChallengeError;
  const bearer = challenge.cause.find((c) => c.scheme === 'bearer');
  return { status: challenge.status, error: bearer?.parameters.error };
}

async function isActive(config: oidc.Configuration, token: string): Promise<boolean> {
  return (await oidc.tokenIntrospection(config, token)).active;
}

test.describe('openid-client against Latchkey', () => {
  let rp: Registered;
  let config: oidc.Configuration;

  test.beforeEach(async ({ latchkeyCli, baseURL }) => {
    rp = registerClient(latchkeyCli);
    config = await discover(baseURL!, rp);
  });

  test('discovery', async ({ baseURL }) => {
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(baseURL);
    expect(meta.authorization_endpoint).toBe(`${baseURL}/oauth/authorize`);
    expect(meta.token_endpoint).toBe(`${baseURL}/oauth/token`);
    expect(meta.userinfo_endpoint).toBe(`${baseURL}/oauth/userinfo`);
    expect(meta.revocation_endpoint).toBe(`${baseURL}/oauth/revoke`);
    expect(meta.introspection_endpoint).toBe(`${baseURL}/oauth/introspect`);
    expect(meta.end_session_endpoint).toBe(`${baseURL}/oauth/logout`);
    expect(meta.jwks_uri).toBe(`${baseURL}/oauth/jwks`);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.supportsPKCE()).toBe(true);
    expect(config.clientMetadata().client_id).toBe(rp.clientId);
  });

  test('authorization code with PKCE S256: the ID token and a wrong verifier refused', async ({ page, baseURL }) => {
    const tokens = await signInWithOpenidClient(page, config, rp.name);
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.scope).toBe('openid profile offline_access');
    expect(tokens.access_token).toBeTruthy();
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.expiresIn()).toBeGreaterThan(0);
    const claims = tokens.claims()!;
    expect(claims).toBeDefined();
    expect(claims.iss).toBe(baseURL);
    expect(claims.aud).toBe(rp.clientId);
    expect(claims.azp).toBe(rp.clientId);
    expect(claims.sub).toMatch(/\S/);
    expect(claims.preferred_username).toBe(DEMO_USER.username);
    expect(typeof claims.sid).toBe('string');
    expect(typeof claims.at_hash).toBe('string');
    expect(claims.auth_time).toBeLessThanOrEqual(claims.iat);
    expect(claims.exp).toBeGreaterThan(claims.iat);
    expect(claims.nonce).toBeTruthy();

    // The code's verifier is checked: another verifier is refused (and the
    // code is used up by the attempt, so the right one fails afterwards too).
    const flow = await browserCodeFlow(page, config, rp.name, true);
    const exchange = (verifier: string) =>
      oidc.authorizationCodeGrant(config, flow.callback, {
        pkceCodeVerifier: verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
    expect(await oauthError(exchange(oidc.randomPKCECodeVerifier()))).toBe('invalid_grant');
    expect(await oauthError(exchange(flow.verifier))).toBe('invalid_grant');
  });

  test('refresh: new tokens, and the old refresh token is rotated out', async ({ page }) => {
    const first = await signInWithOpenidClient(page, config, rp.name);
    const second = await oidc.refreshTokenGrant(config, first.refresh_token!);
    expect(second.access_token).toBeTruthy();
    expect(second.refresh_token).toBeTruthy();
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.refresh_token).not.toBe(first.refresh_token);
    // Latchkey issues no new ID token on refresh (OpenID Connect Core §12.2: optional).
    expect(second.id_token).toBeUndefined();
    // Rotation: the old refresh token is no longer live, the new one is.
    expect(await isActive(config, first.refresh_token!)).toBe(false);
    expect(await isActive(config, second.refresh_token!)).toBe(true);
    expect(await isActive(config, second.access_token)).toBe(true);
    // The new one refreshes in turn...
    const third = await oidc.refreshTokenGrant(config, second.refresh_token!);
    expect(third.refresh_token).not.toBe(second.refresh_token);
    // ...and presenting a rotated-out one again is refused and, as reuse
    // (RFC 9700 §4.14), ends the whole session: the latest tokens die too.
    expect(await oauthError(oidc.refreshTokenGrant(config, second.refresh_token!))).toBe('invalid_grant');
    expect(await isActive(config, third.refresh_token!)).toBe(false);
    expect(await isActive(config, third.access_token)).toBe(false);
  });

  test('userinfo names the ID token\'s subject', async ({ page }) => {
    const tokens = await signInWithOpenidClient(page, config, rp.name);
    const sub = tokens.claims()!.sub;
    const info = await oidc.fetchUserInfo(config, tokens.access_token, sub);
    expect(info.sub).toBe(sub);
    expect(info.preferred_username).toBe(DEMO_USER.username);
    // openid-client compares the subject: the check is live.
    await expect(oidc.fetchUserInfo(config, tokens.access_token, `${sub}-someone-else`)).rejects.toThrow();
  });

  test('RFC 7009 revocation: the token endpoint, introspection and userinfo refuse the tokens after', async ({ page }) => {
    const tokens = await signInWithOpenidClient(page, config, rp.name);
    const sub = tokens.claims()!.sub;
    expect(await isActive(config, tokens.access_token)).toBe(true);
    expect(await isActive(config, tokens.refresh_token!)).toBe(true);
    expect((await oidc.fetchUserInfo(config, tokens.access_token, sub)).sub).toBe(sub);

    await oidc.tokenRevocation(config, tokens.refresh_token!, { token_type_hint: 'refresh_token' });

    expect(await oauthError(oidc.refreshTokenGrant(config, tokens.refresh_token!))).toBe('invalid_grant');
    expect(await isActive(config, tokens.refresh_token!)).toBe(false);
    expect(await isActive(config, tokens.access_token)).toBe(false);
    expect(await userinfoRefusal(oidc.fetchUserInfo(config, tokens.access_token, sub))).toEqual({
      status: 401,
      error: 'invalid_token',
    });
  });

  test('RP-initiated logout ends the sign-in and its refresh token', async ({ page }) => {
    const tokens = await signInWithOpenidClient(page, config, rp.name);
    expect(await isActive(config, tokens.refresh_token!)).toBe(true);
    const state = oidc.randomState();
    const url = oidc.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: postLogoutUri(),
      state,
    });
    expect(url.href.startsWith(config.serverMetadata().end_session_endpoint!)).toBe(true);

    // The hint names this browser's own sign-in: it ends at once, and the
    // browser is sent back to the app's registered address with the state.
    await page.goto(url.href);
    await expect(page).toHaveURL(withQuery(postLogoutUri()));
    await expect(page.locator('body')).toHaveText('back at the app');
    expect(new URL(page.url()).searchParams.get('state')).toBe(state);

    expect(await oauthError(oidc.refreshTokenGrant(config, tokens.refresh_token!))).toBe('invalid_grant');
    expect(await isActive(config, tokens.access_token)).toBe(false);
    // And the browser is signed out of Latchkey.
    await page.goto('/');
    await expect(page).toHaveURL(/\/signin\?next=%2F$/);
  });
});
