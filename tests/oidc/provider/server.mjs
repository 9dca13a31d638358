// A real OpenID Connect provider (node-oidc-provider) for Kavach's sign-in tests, on plain HTTP.
// Usage: node server.mjs CONFIG.json, where the config is
//   {"port": 5000, "issuer": "http://127.0.0.1:5000", "clients": [client metadata, ...],
//    "accounts_file": path, "jwks_file": path, "require_pkce": true (the default)}
// accounts_file: {"<login typed at the login form>": {"sub", "email", "email_verified", "name",
// "preferred_username", "groups"}}; jwks_file: {"keys": [private JWKs]}, the first signs.
// tests/oidc/provider.py starts it; it prints "ready ISSUER" once listening.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

const config = readJson(process.argv[2]);
const { keys } = readJson(config.jwks_file);

// The accounts file, keyed by login, is read at each look-up, so a test can change an account
// between sign-ins. The library makes the session's accountId the `sub` claim: the login form's
// answer is turned into the account's sub (below), which is then what the library looks up.
function accounts() {
  return Object.entries(readJson(config.accounts_file))
    .map(([login, account]) => ({ login, claims: { ...account, sub: account.sub ?? login } }));
}

const accountByLogin = (login) => accounts().find((account) => account.login === login);
const accountBySub = (sub) => accounts().find((account) => account.claims.sub === sub);

async function findAccount(ctx, sub) {
  if (accountBySub(sub) === undefined) {
    // A browser signed in as an account since removed is signed out, so asked to sign in again.
    const session = ['authorization', 'resume'].includes(ctx?.oidc?.route) && ctx.oidc.session;
    if (session && session.accountId === sub) {
      delete session.accountId;
      session.authorizations = {};
    }
    return undefined;
  }
  return {
    accountId: sub,
    // The library keeps only the claims the granted scopes ask for.
    async claims() {
      const account = accountBySub(sub);
      if (account === undefined) {
        throw new errors.InvalidGrant('the account no longer exists');
      }
      return account.claims;
    },
  };
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys },
  findAccount,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  // The scopes' claims go in the ID token as well as to userinfo.
  conformIdTokenClaims: false,
  // PKCE for every client unless the config says otherwise, so a relying party that forgets it fails.
  pkce: { required: () => config.require_pkce ?? true },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  // Random per run: the sessions live in memory and end with the process anyway.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
});

// The built-in login form takes any login: one that is not in the accounts file ends the
// interaction with access_denied, which the relying party gets at its redirect_uri.
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
    const chunks = [];
    for await (const chunk of ctx.req) {
      chunks.push(chunk);
    }
    const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
    // The library's own parser takes a body read before it from req.body (and warns once).
    ctx.req.body = form;
    const account = form.prompt === 'login' ? accountByLogin(form.login) : undefined;
    if (account !== undefined) {
      form.login = account.claims.sub;
    } else if (form.prompt === 'login') {
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: 'no account with this login',
      });
      ctx.status = 303;
      ctx.redirect(returnTo);
      return;
    }
  }
  await next();
});

// The log a failed test shows: the library answers server_error and says no more.
provider.on('server_error', (_ctx, error) => console.error('server_error', error));

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${config.issuer}\n`);
});

function shutDown() {
  server.close(() => process.exit(0));
  // Keep-alive connections would hold close() open.
  server.closeAllConnections();
}

process.on('SIGTERM', shutDown);
process.on('SIGINT', shutDown);
