"""Loaded as sitecustomize (PYTHONPATH) by jobs-local's Cognito (cognito-idp) moto server.

Two behaviours of Cognito that moto lacks and that the API's bound on
revocation rests on (docs/api.md, "Bounds"):

1. Token lifetimes. moto issues every ID and access token for one hour;
   Cognito uses the app client's IdTokenValidity and AccessTokenValidity in
   the units of its TokenValidityUnits (hours when unset).
2. Renewal of a removed user. moto renews tokens from a refresh token whether
   the user was disabled (it renews) or deleted (it fails with a 500);
   Cognito answers NotAuthorizedException in both cases: a disabled user
   "can't sign in", a deleted one does not exist.
"""

import functools

try:
    from moto.cognitoidp.exceptions import NotAuthorizedError
    from moto.cognitoidp.models import CognitoIdpUserPool
except Exception:  # not a moto with Cognito: nothing to change
    CognitoIdpUserPool = None

_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
_VALIDITY = {"id": ("IdTokenValidity", "IdToken"), "access": ("AccessTokenValidity", "AccessToken")}

if CognitoIdpUserPool is not None:
    _create_jwt = CognitoIdpUserPool.create_jwt
    _create_tokens_from_refresh_token = CognitoIdpUserPool.create_tokens_from_refresh_token

    @functools.wraps(_create_jwt)
    def create_jwt(self, client_id, username, token_use, expires_in=60 * 60, extra_data=None):
        client = self.clients.get(client_id)
        names = _VALIDITY.get(token_use)
        if client is not None and names is not None:
            config = client.extended_config
            validity = config.get(names[0])
            if validity:
                unit = (config.get("TokenValidityUnits") or {}).get(names[1], "hours")
                expires_in = int(validity) * _SECONDS.get(unit, 3600)
        return _create_jwt(self, client_id, username, token_use, expires_in=expires_in, extra_data=extra_data)

    @functools.wraps(_create_tokens_from_refresh_token)
    def create_tokens_from_refresh_token(self, refresh_token):
        found = self.refresh_tokens.get(refresh_token)
        if found:
            user = self._get_user(found[1])
            if user is None:
                raise NotAuthorizedError("User does not exist.")
            if not user.enabled:
                raise NotAuthorizedError("User is disabled.")
        return _create_tokens_from_refresh_token(self, refresh_token)

    CognitoIdpUserPool.create_jwt = create_jwt
    CognitoIdpUserPool.create_tokens_from_refresh_token = create_tokens_from_refresh_token
