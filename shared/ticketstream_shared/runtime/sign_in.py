"""Pages a browser opens on a service (its API's documentation, reporting's dashboard) need a key, like every
endpoint. A browser cannot send a bearer header when it navigates, so without a key such a page answers 401 with a
sign-in form, and 403 with the form saying why for a key whose role may not see it; signing in (a POST to the page's
`/session`) checks the key and puts it in an HttpOnly, SameSite=Strict cookie, which the shared authentication
accepts in place of the header, for the page and for the requests it makes. Neither the sign-in nor a request that
would change something is taken with the cookie from another site's page (runtime/auth.py `from_another_page`).
"""

from __future__ import annotations

import re
from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ticketstream_shared.contract import Role
from ticketstream_shared.contract.events import IDENTIFIER_PATTERN

from .auth import KEY_COOKIE, from_another_page, require_role
from .refusals import Forbidden

SESSION_SECONDS = 8 * 3600

_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Service desk: sign in</title>
<style>body{{font-family:system-ui,sans-serif;margin:3rem}}input,button{{font-size:1rem;padding:.3rem}}</style></head>
<body><h1>Service desk</h1><p>{message}</p>
<form method="post" action="{action}"><input type="hidden" name="next" value="{back_to}"><label>API key
<input id="key" name="key" type="password" autocomplete="off" required></label> <button id="sign-in">Sign in</button>
</form></body></html>"""
#: What a page below a SignedInPage's path may be called (a ticket's page): where a sign-in may send the browser back.
_PAGE_BELOW = re.compile("/" + IDENTIFIER_PATTERN.removeprefix("^").removesuffix("$"))


class SignedInPage:
    """A page at `path` (or pages below it, one per thing shown: `path`/<id>) for the keys of `roles`, signed in to
    at `path`/session, which sends the browser back to the page it was asked on."""

    def __init__(self, path: str, roles: tuple[Role, ...], asked: str, refused: str) -> None:
        self.path = path
        self.session_path = f"{path}/session"
        self._roles = roles
        #: What the form says to a caller with no key or an unknown one, and to a key signing in whose role may not.
        self._asked = asked
        self._refused = refused
        #: Signing in and out, for the service to include beside the page.
        self.router = APIRouter(include_in_schema=False)
        self.router.add_api_route(self.session_path, self.open_session, methods=["POST"])
        self.router.add_api_route(f"{self.session_path}/end", self.close_session, methods=["POST"])

    def _form(self, message: str, status_code: int, back_to: str) -> HTMLResponse:
        form = _FORM.format(message=escape(message), action=escape(self.session_path), back_to=escape(back_to))
        return HTMLResponse(form, status_code, {"WWW-Authenticate": "Bearer"})

    def _back_to(self, asked: str) -> str:
        """The page to go back to after signing in: the one asked for, if it is this page or one below it (never
        another site: the form's field is the browser's to change), else this page."""
        below = asked.removeprefix(self.path)
        return asked if below != asked and (not below or _PAGE_BELOW.fullmatch(below)) else self.path

    async def refusal(
        self, request: Request, *, signing_in: bool = False, back_to: str | None = None
    ) -> HTMLResponse | None:
        """None if the caller of `request` may see the page; else the sign-in form saying why: for no key or an
        unknown one, the page's request for one; for a key whose role may not, the refusal's own words. A key given
        to the form and refused is told the page's words for it either way."""
        back_to = self._back_to(back_to or request.url.path)
        try:
            require_role(await request.app.state.principal(request), *self._roles)
        except HTTPException as not_known:
            return self._form(self._refused if signing_in else self._asked, not_known.status_code, back_to)
        except Forbidden as not_allowed:
            return self._form(self._refused if signing_in else str(not_allowed), status.HTTP_403_FORBIDDEN, back_to)
        return None

    async def open_session(self, request: Request) -> Response:
        """The form's POST: the key checked, then kept in the cookie and the browser sent to the page. Only from this
        service's own form: another site's page could otherwise sign a browser in with a key of its choosing."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        back_to = self._back_to(form.get("next", [""])[0])
        if from_another_page(request):
            return self._form(
                "Sign in here: a sign-in sent from the page of another site is not taken.",
                status.HTTP_403_FORBIDDEN,
                back_to,
            )
        key = form.get("key", [""])[0].strip()
        if page := await self.refusal(_with_bearer(request, key), signing_in=True, back_to=back_to):
            return page
        signed_in = RedirectResponse(back_to, status_code=status.HTTP_303_SEE_OTHER)
        signed_in.set_cookie(KEY_COOKIE, key, max_age=SESSION_SECONDS, httponly=True, samesite="strict")
        return signed_in

    async def close_session(self, request: Request) -> Response:
        """Signing out (a shared computer): the browser forgets the key and is sent to the sign-in form. Only from
        this service's own pages, as signing in."""
        if from_another_page(request):
            refused = "Sign out here: a sign-out sent from the page of another site is not taken."
            return self._form(refused, status.HTTP_403_FORBIDDEN, self.path)
        signed_out = RedirectResponse(self.path, status_code=status.HTTP_303_SEE_OTHER)
        signed_out.delete_cookie(KEY_COOKIE, httponly=True, samesite="strict")
        return signed_out

    @property
    def sign_out_form(self) -> str:
        """The button that signs out, for the page to show."""
        return (
            f'<form id="sign-out-form" method="post" action="{escape(self.session_path)}/end">'
            "<button>Sign out</button></form>"
        )


def _with_bearer(request: Request, key: str) -> Request:
    """The same request as if the key had come in the Authorization header (in place of any it came with: the key
    checked is the key kept)."""
    scope = dict(request.scope)
    others = [(name, value) for name, value in request.scope["headers"] if name != b"authorization"]
    scope["headers"] = [*others, (b"authorization", f"Bearer {key}".encode())]
    return Request(scope)
