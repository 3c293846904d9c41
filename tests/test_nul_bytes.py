"""A NUL character anywhere a client can put one is a 400, never a 500 (PostgreSQL refuses NUL)."""
import pytest

pytestmark = pytest.mark.django_db

STAFF_URLS = [
    "/admin/ensemble/completionrequest/?status=%00",
    "/admin/ensemble/completionrequest/?ensemble=%00",
    "/admin/ensemble/completionrequest/?aggregation_method__exact=%00",
    "/admin/ensemble/completionrequest/?winner_model=%00",
    "/admin/ensemble/completionrequest/?q=%00",
    "/admin/ensemble/candidate/?model=%00",
    "/admin/ensemble/candidate/?status__exact=%00",
    "/admin/ensemble/ballot/?voter_model=%00",
    "/admin/ensemble/ensembledefinition/?aggregation_method__exact=%00",
    "/admin/ensemble/candidate/?%00=1",
    "/votes/?model=%00",
    "/votes/?search=%00",
    "/leaderboard/?ensemble=%00",
    "/leaderboard/?window=%00",
]
# A session key of eight NULs, as an octal-escaped cookie value that Django decodes.
NUL_SESSION_COOKIE = 'sessionid="' + "\\000" * 8 + '"'


@pytest.mark.parametrize("url", STAFF_URLS)
def test_a_staff_page_given_a_nul_answers_400(admin_client, url):
    response = admin_client.get(url)

    assert response.status_code == 400
    assert "contains a NUL character" in response.content.decode()


def test_the_400_names_the_parameter(admin_client):
    response = admin_client.get("/admin/ensemble/candidate/?model=%00")

    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith("Query parameter 'model' contains a NUL character")


def test_the_leaderboard_json_answers_an_openai_shaped_400(admin_client):
    response = admin_client.get("/leaderboard.json?ensemble=%00")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_value"
    assert "'ensemble'" in response.json()["error"]["message"]


@pytest.mark.parametrize("url", ["/votes/", "/admin/", "/admin/login/"])
def test_a_session_cookie_with_nul_answers_400_before_the_session_is_looked_up(client, url):
    response = client.get(url, HTTP_COOKIE=NUL_SESSION_COOKIE)

    assert response.status_code == 400
    assert "Cookie 'sessionid'" in response.content.decode()


def test_a_form_field_with_nul_answers_400(client):
    response = client.post("/admin/login/", "username=admin%00&password=x",
                           content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert "Form field 'username'" in response.content.decode()


def test_a_staff_page_without_nul_is_served_as_before(admin_client):
    assert admin_client.get("/admin/ensemble/candidate/?model=alpha&status__exact=ok").status_code == 200


# Through the real ASGI server: the site's stack (async) and the API's stack (its own middleware list).

def test_a_page_given_a_nul_answers_400_through_the_asgi_server(http):
    response = http.get("/votes/?model=%00")

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("url", ["/v1/models?limit=%00", "/v1/models/%00", "/v1/responses/resp_%00"])
def test_an_api_path_given_a_nul_answers_an_openai_shaped_400(http, url):
    response = http.get(url)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "NUL character" in response.json()["error"]["message"]


def test_an_api_request_with_a_nul_session_cookie_answers_400(http):
    response = http.post("/v1/chat/completions", headers={"Cookie": NUL_SESSION_COOKIE},
                         json={"model": "trio", "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_value"
