"""Who may see the pages: staff, and for the aggregates-only JSON, also a request with a Trio API key.

Prompts and answers are private data, so every page requires a logged-in staff member:
anonymous visitors are sent to the login page, other users get 403.
"""
from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import resolve_url

from ..api.auth import bearer_key
from ..api.errors import openai_error
from ..keys import api_key_check


def staff_required(view):
    """Let staff through; send anonymous visitors to log in; refuse everyone else with 403.

    `user_passes_test` would send a logged-in non-staff user back to the login page in a loop.
    """
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), resolve_url(settings.LOGIN_URL))
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("Vote history is for staff only.")
        return view(request, *args, **kwargs)
    return guarded


def staff_or_api_key_required(view):
    """Let in what `staff_required` lets in, and also a request bearing a valid Trio API key.

    For dashboards and scripts reading aggregates (never prompts or answers): they have no browser
    session, but they may have an API key. A key that is wrong or revoked gets the API's 401, and
    so does a request with neither key nor session: a script wants JSON, not the login page.
    """
    for_staff = staff_required(view)

    @wraps(view)
    def guarded(request, *args, **kwargs):
        key = bearer_key(request)
        if key is None and not request.user.is_authenticated:
            response = openai_error(401, "Sign in as staff, or send a Trio API key in an Authorization "
                                         "header: Bearer YOUR_KEY.", code="invalid_api_key")
            response["WWW-Authenticate"] = 'Bearer realm="trio"'
            return response
        if key is None:
            return for_staff(request, *args, **kwargs)
        if api_key_check(key) is None:
            return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
        return view(request, *args, **kwargs)
    return guarded
