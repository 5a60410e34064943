"""The fake Slack Web API answers the real slack_sdk client as Slack would."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.slack_api import SlackAPI, interactive_body, signed_headers, slash_body

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*plan*"}}]


@pytest.fixture
def api() -> Iterator[SlackAPI]:
    with SlackAPI(groups={"S1": ["U1", "U2"]}, expired_triggers={"stale"}) as server:
        yield server


@pytest.fixture
def client(api: SlackAPI) -> WebClient:
    return WebClient(token="xoxb-test", base_url=api.url)


def test_url_has_the_trailing_slash_webclient_needs(api: SlackAPI) -> None:
    assert api.url.startswith("http://127.0.0.1:")
    assert api.url.endswith("/api/")


def test_auth_test_names_the_bot(api: SlackAPI, client: WebClient) -> None:
    resp = client.auth_test()
    assert (resp["user_id"], resp["bot_id"], resp["team_id"]) == ("UBOT", "BBOT", "T111")
    [call] = api.calls("auth.test")
    assert call.token == "xoxb-test"
    assert call.answered == 200


def test_post_then_update_edits_the_stored_message(api: SlackAPI, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="planning", blocks=BLOCKS)
    ts = posted["ts"]
    assert posted["message"] == {"text": "planning", "blocks": BLOCKS, "ts": ts}

    updated = client.chat_update(channel="C1", ts=ts, text="approved", blocks=[])
    assert (updated["channel"], updated["ts"], updated["text"]) == ("C1", ts, "approved")

    message = api.messages[("C1", ts)]
    assert (message["text"], message["blocks"], message["edits"]) == ("approved", [], 1)
    assert [c.method for c in api.calls()] == ["chat.postMessage", "chat.update"]
    assert api.calls("chat.postMessage")[0].params["blocks"] == BLOCKS


def test_each_message_gets_a_fresh_increasing_ts(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel="C1", text=str(i))["ts"] for i in range(3)]
    assert stamps[0] == "1700000000.000101"
    assert stamps == sorted(set(stamps), key=float)


def test_form_encoded_blocks_are_recorded_decoded(api: SlackAPI, client: WebClient) -> None:
    client.api_call(
        "chat.postMessage", data={"channel": "C1", "text": "t", "blocks": json.dumps(BLOCKS)}
    )
    [call] = api.calls("chat.postMessage")
    assert call.params["blocks"] == BLOCKS
    assert call.token == "xoxb-test"


def test_update_of_an_unknown_message_is_message_not_found(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_thread_lists_replies_in_order(api: SlackAPI, client: WebClient) -> None:
    root = client.chat_postMessage(channel="C1", text="root")["ts"]
    client.chat_postMessage(channel="C1", text="one", thread_ts=root)
    client.chat_postMessage(channel="C2", text="elsewhere", thread_ts=root)
    reply = client.chat_postMessage(channel="C1", text="two", thread_ts=root)
    assert reply["message"]["thread_ts"] == root
    assert [m["text"] for m in api.thread("C1", root)] == ["one", "two"]


def test_ephemeral_and_permalink(client: WebClient) -> None:
    assert client.chat_postEphemeral(channel="C1", user="U1", text="psst")["message_ts"]
    link = client.chat_getPermalink(channel="C1", message_ts="1700000000.000101")
    assert link["permalink"] == "https://example.slack.com/archives/C1/p1700000000000101"


def test_rate_limit_raises_429_with_retry_after(api: SlackAPI, client: WebClient) -> None:
    api.rate_limit("chat.postMessage", retry_after=1)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"  # a plain str, not a list
    assert err.value.response["error"] == "ratelimited"
    assert [c.answered for c in api.calls()] == [429]
    client.chat_postMessage(channel="C1", text="hi")  # only the one call was limited
    assert [c.answered for c in api.calls()] == [429, 200]


def test_rate_limit_retry_handler_retries_once(api: SlackAPI, client: WebClient) -> None:
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    api.rate_limit("chat.postMessage", retry_after=0)  # slack_sdk sleeps 0-1 s
    assert client.chat_postMessage(channel="C1", text="hi")["ok"]
    assert [c.answered for c in api.calls("chat.postMessage")] == [429, 200]
    assert len(api.messages) == 1


def test_outage_answers_503_until_it_ends(api: SlackAPI, client: WebClient) -> None:
    api.outage(True)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 503
    assert api.calls()[-1].answered == 503
    api.outage(False)
    assert client.chat_postMessage(channel="C1", text="hi")["ok"]


def test_fail_injects_an_error_the_given_number_of_times(api: SlackAPI, client: WebClient) -> None:
    api.fail("chat.postMessage", "channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError, match="channel_not_found"):
            client.chat_postMessage(channel="C1", text="hi")
    assert client.chat_postMessage(channel="C1", text="hi")["ok"]


def test_usergroup_members_come_from_the_configured_groups(client: WebClient) -> None:
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError, match="no_such_subteam"):
        client.usergroups_users_list(usergroup="S404")


def test_views_open_gives_an_id_and_refuses_expired_triggers(
    api: SlackAPI, client: WebClient
) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Why?"}, "blocks": []}
    opened = client.views_open(trigger_id="fresh", view=view)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["type"] == "modal"
    with pytest.raises(SlackApiError, match="expired_trigger_id"):
        client.views_open(trigger_id="stale", view=view)
    assert [c.params["view"] for c in api.calls("views.open")] == [view, view]


def test_unsupported_methods_answer_ok_false(api: SlackAPI, client: WebClient) -> None:
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        client.apps_connections_open(app_token="xapp-1")
    with pytest.raises(SlackApiError, match="unknown_method"):
        client.api_call("pins.add", params={"channel": "C1"})
    assert [c.method for c in api.calls()] == ["apps.connections.open", "pins.add"]


def test_response_url_posts_are_recorded(api: SlackAPI) -> None:
    resp = WebhookClient(api.response_url("r1")).send(text="done", replace_original=True)
    assert resp.status_code == 200
    [call] = api.calls("response_url")
    assert call.params == {"text": "done", "replace_original": True}
    assert call.path == "/response/r1"


def test_wait_for_sees_calls_made_from_another_thread(api: SlackAPI, client: WebClient) -> None:
    def post_later() -> None:
        time.sleep(0.05)
        client.chat_postMessage(channel="C9", text="late")

    worker = threading.Thread(target=post_later)
    worker.start()
    [call] = api.wait_for("chat.postMessage", predicate=lambda c: c.params["channel"] == "C9")
    worker.join()
    assert call.params["text"] == "late"


def test_wait_for_times_out_listing_what_was_recorded(api: SlackAPI, client: WebClient) -> None:
    client.auth_test()
    with pytest.raises(AssertionError, match=r"'chat.update'.*\n  auth.test -> 200"):
        api.wait_for("chat.update", timeout=0.05)


def test_signed_headers_pass_slack_sdk_verification() -> None:
    body = slash_body(command="/firstmate", text="fix the build", user_id="U1")
    headers = signed_headers(body, "s3cret")
    ts, sig = headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    assert SignatureVerifier("s3cret").is_valid(body, ts, sig)
    assert not SignatureVerifier("other").is_valid(body, ts, sig)


def test_old_timestamps_are_refused_by_slack_sdk() -> None:
    body = interactive_body({"type": "block_actions"})
    headers = signed_headers(body, "s3cret", timestamp=int(time.time()) - 600)
    verifier = SignatureVerifier("s3cret")
    assert not verifier.is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )


def test_bodies_are_form_encoded_as_slack_sends_them() -> None:
    assert parse_qs(slash_body(command="/fm", text="a b&c").decode()) == {
        "command": ["/fm"],
        "text": ["a b&c"],
    }
    payload = {"type": "block_actions", "actions": [{"action_id": "approve"}]}
    [raw] = parse_qs(interactive_body(payload).decode())["payload"]
    assert json.loads(raw) == payload
