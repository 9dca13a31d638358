"""A real OpenID Connect provider for sign-in tests, and a browser that signs in at it."""
