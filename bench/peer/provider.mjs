// node-oidc-provider 9.x for bench/peer.sh: the peer Latchkey is measured
// against, configured for its fastest client_credentials and introspection.
//
// - In-memory adapter (the default): nothing is written anywhere.
// - One confidential client (client_secret_basic) allowed client_credentials.
// - client_credentials with `resource=<PEER_RESOURCE>` issues an EdDSA-signed
//   JWT access token (typ at+jwt) for that resource server; without
//   `resource=` it issues an opaque token (kept in memory), which is what the
//   introspection row introspects: that is introspection's fastest mode (a JWT
//   cannot be introspected by this provider at all).
// - Logging off: no event listeners, no DEBUG, koa's error logging silenced.
//
// Environment (set by bench/peer.sh):
//   PEER_PORT           port to listen on (127.0.0.1)
//   PEER_CLIENT_ID      the client's id
//   PEER_CLIENT_SECRET  its secret
//   PEER_RESOURCE       the resource indicator that gets JWT access tokens
//
// Prints "ready <issuer>" on stdout once it listens.

import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const port = Number(required('PEER_PORT'));
const clientId = required('PEER_CLIENT_ID');
const clientSecret = required('PEER_CLIENT_SECRET');
const resource = required('PEER_RESOURCE');
const issuer = `http://127.0.0.1:${port}`;

// A fresh Ed25519 signing key (the provider's only key).
const ed25519 = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  jwks: { keys: [{ ...ed25519, kid: 'bench-ed25519', alg: 'EdDSA', use: 'sig' }] },
  // ID tokens are never issued here; their default (RS256) has no key.
  clientDefaults: { id_token_signed_response_alg: 'EdDSA' },
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // The client may introspect its own tokens (and nobody else's).
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== resource) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          audience: resource,
          scope: '',
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'EdDSA' } },
        };
      },
    },
  },
  ttl: { ClientCredentials: 600 },
});

// koa logs every error that reaches it to stderr unless silent.
provider.silent = true;

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
