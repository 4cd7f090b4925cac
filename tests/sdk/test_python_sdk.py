"""The official Ark Python SDK (PyPI: ark-email) against the ark-auth demo server.

Run by tests/sdk/run.sh, which builds and starts the demo server with a keys file it
generated and passes, in the environment:

  ARK_BASE_URL       the server's API root, e.g. http://127.0.0.1:3000/v1 (the SDK reads it)
  ARK_SDK_KEYS_FILE  JSON {name: plaintext key} of the keys the server was loaded with:
                     full (*), live (live, emails:send), reader (emails:read only),
                     limited (*, 1 request/s), hammer (emails:send, 2 requests/s),
                     tenant (domains:manage, tenant tn_42), expired (*, expired)

This file starts nothing itself.
"""

import concurrent.futures
import json
import os
import threading
import time
import urllib.error
import urllib.request

import ark
import pytest
from ark import Ark

EMAIL = dict(
    from_="demo@example.com",
    to=["user@example.com"],
    subject="Hello from the SDK test",
    text="hello",
)


@pytest.fixture(scope="session")
def base_url():
    url = os.environ.get("ARK_BASE_URL")
    if not url:
        pytest.fail("ARK_BASE_URL is not set: run tests/sdk/run.sh")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def keys():
    path = os.environ.get("ARK_SDK_KEYS_FILE")
    if not path:
        pytest.fail("ARK_SDK_KEYS_FILE is not set: run tests/sdk/run.sh")
    with open(path) as f:
        return json.load(f)


class Recorder:
    """Counts what went over the wire, via httpx event hooks (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.statuses = []
        self.retry_after = []

    def hook(self, response):
        with self.lock:
            self.statuses.append(response.status_code)
            if response.status_code == 429:
                self.retry_after.append(response.headers.get("retry-after"))

    def client(self, **kw):
        return ark.DefaultHttpxClient(event_hooks={"response": [self.hook]})


def sdk(key, recorder=None, **kw):
    """A client that, like any user's, takes its base URL from ARK_BASE_URL."""
    if recorder is not None:
        kw["http_client"] = recorder.client()
    return Ark(api_key=key, **kw)


def raw_request(base_url, method, path, key, body=None):
    """One request with no retry at all: (status, headers, json body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base_url + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.headers, json.loads(res.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def assert_no_secret(err, key):
    """Nothing the client gets back repeats the presented key's body."""
    secret = key[len("ark_test_"):]
    assert secret not in str(err)
    assert secret not in json.dumps(err.body)
    assert all(secret not in v for v in err.response.headers.values())


# --- success ------------------------------------------------------------------------


def test_send_with_full_access_test_key(keys):
    client = sdk(keys["full"])
    raw = client.emails.with_raw_response.send(**EMAIL)
    sent = raw.parse()
    assert sent.success is True
    assert sent.data.id.startswith("msg_")
    # `test` is not in the SDK's model: pydantic keeps it as an extra attribute.
    assert sent.data.test is True
    assert sent.data.to_dict()["test"] is True
    assert sent.data.status == "pending"
    assert sent.data.to == ["user@example.com"]
    # meta.requestId is echoed in X-Request-Id; the handler's response has rate-limit headers.
    assert sent.meta.request_id == raw.headers["x-request-id"]
    assert int(raw.headers["x-ratelimit-limit"]) == 10
    assert 0 <= int(raw.headers["x-ratelimit-remaining"]) < 10
    assert int(raw.headers["x-ratelimit-reset"]) >= int(time.time())
    assert raw.retries_taken == 0


def test_live_key_is_not_flagged_test(keys):
    sent = sdk(keys["live"]).emails.send(**EMAIL)
    assert sent.data.id.startswith("msg_")
    assert sent.data.test is False


def test_request_id_is_propagated(keys):
    client = sdk(keys["full"])
    raw = client.emails.with_raw_response.send(
        **EMAIL, extra_headers={"X-Request-Id": "sdk-test-123"}
    )
    assert raw.headers["x-request-id"] == "sdk-test-123"
    assert raw.parse().meta.request_id == "sdk-test-123"


def test_retrieve_and_list(keys):
    client = sdk(keys["full"])
    sent = client.emails.send(**EMAIL, tag="sdk")
    got = client.emails.retrieve(sent.data.id)
    assert got.success is True
    assert got.data.id == sent.data.id
    assert got.data.from_ == "demo@example.com"
    assert got.data.to == "user@example.com"
    assert got.data.scope == "outgoing"
    assert got.data.tag == "sdk"
    assert got.data.timestamp_iso.year >= 2024
    page = client.emails.list(per_page=100)
    assert sent.data.id in [e.id for e in page.data]
    assert page.total >= 1
    with pytest.raises(ark.NotFoundError):
        client.emails.retrieve("msg_does_not_exist")


def test_batch_and_raw(keys):
    client = sdk(keys["full"])
    batch = client.emails.send_batch(
        from_="demo@example.com",
        emails=[
            {"to": ["a@example.com"], "subject": "one", "text": "1"},
            {"to": ["b@example.com"], "subject": "two", "text": "2"},
        ],
    )
    assert batch.data.total == 2 and batch.data.accepted == 2 and batch.data.failed == 0
    assert set(batch.data.messages) == {"a@example.com", "b@example.com"}
    assert batch.data.messages["a@example.com"].id.startswith("msg_")
    raw = client.emails.send_raw(
        from_="demo@example.com", to=["c@example.com"], raw_message="U3ViamVjdDogaGkKCmhp"
    )
    assert raw.data.id.startswith("msg_")
    assert raw.data.test is True


def test_limits_report_the_keys_rate_limit(keys):
    limits = sdk(keys["tenant"]).limits.retrieve()  # any valid key may ask
    rl = limits.data.rate_limit
    assert rl.limit == 10 and rl.period == "second"
    assert 0 <= rl.remaining < 10
    assert rl.reset >= int(time.time())


def test_tenant_scoped_key(keys):
    client = sdk(keys["tenant"])
    domains = client.tenants.domains.list("tn_42")
    assert domains.success is True and domains.data.domains == []
    with pytest.raises(ark.PermissionDeniedError) as e:
        client.tenants.domains.list("tn_7")
    assert e.value.body["error"]["code"] == "permission_denied"
    with pytest.raises(ark.PermissionDeniedError) as e:
        client.tenants.webhooks.list("tn_42")
    assert "webhooks:manage" in e.value.body["error"]["message"]
    # An organisation-level key may address any tenant.
    assert sdk(keys["full"]).tenants.domains.list("tn_7").success is True


# --- 401 / 403: the SDK's error classes, no retry ---------------------------------------


@pytest.mark.parametrize(
    "key, code",
    [
        ("ark_test_" + "0" * 32, "invalid_api_key"),  # well-formed, unknown
        ("ark_live_" + "Zz9" * 10, "invalid_api_key"),
        ("sk_test_not_an_ark_key", "invalid_api_key"),  # outside the grammar
        ("ark_test_short", "invalid_api_key"),
    ],
)
def test_wrong_key_raises_authentication_error(key, code):
    rec = Recorder()
    with pytest.raises(ark.AuthenticationError) as e:
        sdk(key, rec).emails.send(**EMAIL)
    err = e.value
    assert err.status_code == 401
    assert err.body["success"] is False
    assert err.body["error"]["code"] == code
    assert err.body["meta"]["requestId"] == err.response.headers["x-request-id"]
    assert err.response.headers["www-authenticate"].startswith('Bearer realm="ark"')
    assert rec.statuses == [401], "a 401 is not retried"
    assert_no_secret(err, key)


def test_expired_key_raises_authentication_error(keys):
    with pytest.raises(ark.AuthenticationError) as e:
        sdk(keys["expired"]).emails.send(**EMAIL)
    assert e.value.body["error"]["code"] == "expired_api_key"
    assert_no_secret(e.value, keys["expired"])


def test_key_without_emails_send_raises_permission_denied(keys):
    rec = Recorder()
    with pytest.raises(ark.PermissionDeniedError) as e:
        sdk(keys["reader"], rec).emails.send(**EMAIL)
    err = e.value
    assert err.status_code == 403
    assert err.body["error"]["code"] == "permission_denied"
    assert "emails:send" in err.body["error"]["message"]
    assert err.response.headers["www-authenticate"] == (
        'Bearer realm="ark", error="insufficient_scope", scope="emails:send"'
    )
    assert "x-ratelimit-limit" in err.response.headers
    assert rec.statuses == [403], "a 403 is not retried"
    assert_no_secret(err, keys["reader"])
    # ...while what the key may do works.
    assert sdk(keys["reader"]).emails.list().success is True


# --- 429: absorbed by the SDK's retry -----------------------------------------------------


def test_rate_limited_key_is_absorbed_by_default_retry(base_url, keys):
    key = keys["limited"]  # 1 request per second
    # Exhaust the key with raw requests (no retry) and see the 429 itself.
    seen = [raw_request(base_url, "GET", "/limits", key) for _ in range(3)]
    limited = [(h, b) for (s, h, b) in seen if s == 429]
    assert limited, f"expected a 429, got {[s for s, _, _ in seen]}"
    headers, body = limited[0]
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert int(headers["Retry-After"]) >= 1
    assert headers["X-RateLimit-Limit"] == "1"
    assert headers["X-RateLimit-Remaining"] == "0"

    # The SDK, with its default retry policy, waits Retry-After and gets through.
    rec = Recorder()
    client = sdk(key, rec)
    assert client.max_retries == ark.DEFAULT_MAX_RETRIES
    started = time.monotonic()
    raw = client.emails.with_raw_response.send(**EMAIL)
    elapsed = time.monotonic() - started
    sent = raw.parse()
    assert sent.data.id.startswith("msg_") and sent.data.test is True
    assert raw.retries_taken >= 1
    assert 429 in rec.statuses and rec.statuses[-1] == 200, rec.statuses
    assert all(ra is not None and int(ra) >= 1 for ra in rec.retry_after)
    assert elapsed >= 0.9, "the SDK waited for Retry-After"


def test_hammering_a_rate_limited_key(keys):
    """Concurrent calls on a 2 requests/s key: every call succeeds, thanks to retries."""
    rec = Recorder()
    client = sdk(keys["hammer"], rec, max_retries=10)
    calls = 8
    with concurrent.futures.ThreadPoolExecutor(max_workers=calls) as pool:
        results = list(pool.map(lambda _: client.emails.send(**EMAIL), range(calls)))
    ids = {r.data.id for r in results}
    assert len(ids) == calls
    assert rec.statuses.count(200) == calls
    assert rec.statuses.count(429) >= 1, rec.statuses
