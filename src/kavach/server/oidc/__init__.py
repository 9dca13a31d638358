"""OpenID Connect: issuers' keys, sign-in of people, and platform tokens of workloads."""
