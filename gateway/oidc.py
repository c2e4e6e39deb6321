"""People, through the hospital's OpenID Provider: the web page's login and the bearer JWTs the API accepts.

The gateway is the web page's back end for the login (authorization code with PKCE S256, RFC 7636): it
sends the browser to the provider, exchanges the code itself, checks the ID token (issuer, audience = the
page's client id, nonce) and keeps the access token in an HttpOnly, SameSite=Strict cookie; the page's own
script never sees a token. Every access token, from that cookie or as `Authorization: Bearer` on the API, is
checked the same way: signature under a key of the provider's JWKS (from its discovery document, a URL or a
file), the algorithm among GATEWAY_OIDC_ALGORITHMS (asymmetric only: `none` and HS* are refused at start-up,
so a token signed with the public key as an HMAC secret is refused too), issuer, audience
(GATEWAY_OIDC_AUDIENCE, the API's resource indicator, RFC 8707), expiry and not-before (GATEWAY_OIDC_LEEWAY_S).

Roles come from a configurable claim (a dotted path, e.g. `realm_access.roles`) and map to permissions by
GATEWAY_OIDC_ROLE_PERMISSIONS; a person is named `user:<GATEWAY_OIDC_NAME_CLAIM>` in the audit trail.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx2
import jwt

from gateway.errors import AuthenticationFailed
from gateway.identity import PERSON_PREFIX, Caller, Permission

JWKS_REFRESH_S = 60.0  # an unknown key id fetches the JWKS again, at most this often (a rotated key)


class TokenRefused(AuthenticationFailed):
    def __init__(self, reason: str) -> None:
        super().__init__(f"bearer token refused: {reason}")


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    audience: str
    redirect_url: str | None
    algorithms: tuple[str, ...]
    roles_claim: str
    name_claim: str
    sites_claim: str | None  # GATEWAY_OIDC_SITES_CLAIM: the sites whose studies a person may review
    role_permissions: dict[str, frozenset[Permission]]
    leeway_s: float
    jwks_url: str | None
    jwks_document: dict[str, Any] | None  # GATEWAY_OIDC_JWKS_FILE, read at start-up


@dataclass(frozen=True)
class Login:
    """One login under way: what the callback must see again (kept in a short-lived HttpOnly cookie)."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Login:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def cookie(self) -> str:
        return ".".join((self.state, self.nonce, self.verifier))

    @classmethod
    def from_cookie(cls, value: str) -> Login | None:
        parts = value.split(".")
        return cls(*parts) if len(parts) == 3 and all(parts) else None


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _sites(value: object) -> frozenset[str]:
    """The sites a token's claim names (a list, or one string); none when it names none: restricted, it sees nothing."""
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(str(site) for site in value) if isinstance(value, list) else frozenset()


class OpenIdProvider:
    """The hospital's provider as the gateway uses it: its endpoints, its keys, and the check of a token."""

    def __init__(self, config: OidcConfig, http: httpx2.AsyncClient) -> None:
        self.config = config
        self._http = http
        self._metadata: dict[str, Any] = {}
        self._keys: jwt.PyJWKSet | None = None
        self._keys_fetched = 0.0

    async def start(self) -> None:
        """The discovery document and the keys, read once at start-up (a provider that cannot be read stops it)."""
        url = f"{self.config.issuer.rstrip('/')}/.well-known/openid-configuration"
        self._metadata = await self._json(url)
        if self._metadata.get("issuer") != self.config.issuer:
            raise ValueError(f"the provider at {url} names another issuer: {self._metadata.get('issuer')!r}")
        await self._load_keys()

    async def _json(self, url: str) -> dict[str, Any]:
        response = await self._http.get(url)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    async def _load_keys(self) -> None:
        document = self.config.jwks_document or await self._json(self.config.jwks_url or self._metadata["jwks_uri"])
        self._keys = jwt.PyJWKSet.from_dict(document)
        self._keys_fetched = time.monotonic()

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        for attempt in range(2):
            assert self._keys is not None, "start() reads the keys"
            found = next((key for key in self._keys.keys if key.key_id == kid), None)
            if found is not None:
                return found
            stale = time.monotonic() - self._keys_fetched > JWKS_REFRESH_S
            if attempt or self.config.jwks_document is not None or not stale:
                break
            await self._load_keys()
        raise TokenRefused("signed with a key the provider does not publish")

    async def caller(self, token: str) -> Caller:
        """The person (or service) a valid access token names, with the permissions their roles map to."""
        claims = await self.verified(token, self.config.audience)
        name = _claim(claims, self.config.name_claim) or claims.get("sub")
        roles = _claim(claims, self.config.roles_claim) or []
        roles = [roles] if isinstance(roles, str) else roles
        permissions = frozenset().union(*(self.config.role_permissions.get(str(role), frozenset()) for role in roles))
        full_name = claims.get("name") if isinstance(claims.get("name"), str) else None
        sites = None if self.config.sites_claim is None else _sites(_claim(claims, self.config.sites_claim))
        return Caller(name=f"{PERSON_PREFIX}{name}", permissions=permissions, full_name=full_name, sites=sites)

    async def verified(self, token: str, audience: str, nonce: str | None = None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefused("not a JWT") from None
        if header.get("alg") not in self.config.algorithms:
            raise TokenRefused(f"algorithm {header.get('alg')!r} is not accepted")
        key = await self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(self.config.algorithms),
                audience=audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("expired") from None
        except jwt.InvalidSignatureError:
            raise TokenRefused("its signature does not verify") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("issued for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("issued by another provider") from None
        except jwt.PyJWTError as error:
            raise TokenRefused(type(error).__name__) from None
        if nonce is not None and not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise TokenRefused("the ID token's nonce is not this login's")
        return claims

    def authorization_url(self, login: Login) -> str:
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self._redirect_url(),
            "scope": "openid profile roles",
            # Every sign-in authenticates anew: signing out of the page ends only the gateway's session, and on a
            # shared reading-room workstation the provider's would otherwise sign the next person in as the last.
            "prompt": "login",
            "state": login.state,
            "nonce": login.nonce,
            "code_challenge": login.challenge,
            "code_challenge_method": "S256",
            "resource": self.config.audience,
        }
        return f"{self._metadata['authorization_endpoint']}?{urllib.parse.urlencode(query)}"

    def _redirect_url(self) -> str:
        if self.config.redirect_url is None:
            raise AuthenticationFailed("the web page's login is not configured (GATEWAY_OIDC_REDIRECT_URL)")
        return self.config.redirect_url

    async def exchange(self, code: str, login: Login) -> tuple[str, int]:
        """The access token (and its lifetime in s) for an authorization code; the ID token is checked too."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_url(),
            "client_id": self.config.client_id,
            "code_verifier": login.verifier,
            "resource": self.config.audience,
        }
        response = await self._http.post(self._metadata["token_endpoint"], data=form)
        if response.status_code != 200:
            raise AuthenticationFailed(f"the provider refused the login's code ({response.status_code})")
        tokens = response.json()
        await self.verified(str(tokens.get("id_token", "")), self.config.client_id, nonce=login.nonce)
        access = str(tokens.get("access_token", ""))
        await self.caller(access)  # the token the page will carry is one the API accepts
        return access, int(tokens.get("expires_in", 300))
