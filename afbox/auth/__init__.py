"""The facility's token auth: its signing identity, WLCG-profile tokens, and the one validator.

identity: signing key, facility CA and server certificate in the state dir (keys 0600).
tokens: minting and unverified inspection.  validate: the rules every service applies.
issuer_app: the HTTPS issuer serving the discovery document and JWKS.
"""
