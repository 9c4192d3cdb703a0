"""The dashboards' token check: where a token is looked for, and the redirect that drops it from the URL."""
from tornado.httputil import HTTPHeaders

from afbox.plugins.http_guard import COOKIE, request_token, without_token


def test_token_from_header_url_or_cookie():
    assert request_token("/status", HTTPHeaders({"Authorization": "Bearer abc"})) == ("abc", False)
    assert request_token("/status?x=1&token=abc", HTTPHeaders()) == ("abc", True)
    assert request_token("/status", HTTPHeaders({"Cookie": f"a=b; {COOKIE}=abc"})) == ("abc", False)
    assert request_token("/status", HTTPHeaders()) == (None, False)
    assert request_token("/status", HTTPHeaders({"Authorization": "token abc"})) == (None, False)


def test_redirect_keeps_the_page_and_other_arguments():
    assert without_token("/status?token=abc") == "/status"
    assert without_token("/individual-task-stream?width=3&token=abc") == "/individual-task-stream?width=3"
