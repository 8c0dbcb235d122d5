"""The local Zoho accounts simulator, exercised over real HTTP the way the refresher will meet it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from tests import leakguard
from zoho_token.simulator import Fault, SimClock, SimulatorSettings, ZohoSimulator

TOKEN_RE = re.compile(r"^1000\.[0-9a-f]{32}\.[0-9a-f]{32}$")
RATE_LIMIT_BODY = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. Please try again after some time.",
    "status": "failure",
}
# Short enough that a misbehaving test fails fast instead of hanging the suite.
TIMEOUT = 3.0


@pytest.fixture
def clock() -> SimClock:
    return SimClock(start=1_800_000_000.0)


@pytest.fixture
def make_sim(clock: SimClock) -> Iterator[Callable[..., ZohoSimulator]]:
    """Start simulators sharing the test's clock; stop them and hand their secrets to the leak guard."""
    started: list[ZohoSimulator] = []

    def make(dc: str = "eu", **settings: Any) -> ZohoSimulator:
        simulator = ZohoSimulator(dc, clock=clock, settings=SimulatorSettings(**settings)).start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        leakguard.register_all(simulator.issued_secrets())
        simulator.stop()


@pytest.fixture
def sim(make_sim: Callable[..., ZohoSimulator]) -> ZohoSimulator:
    return make_sim()


def post_token(sim: ZohoSimulator, **form: str) -> requests.Response:
    return requests.post(f"{sim.url}/oauth/v2/token", data=form, timeout=TIMEOUT)


def exchange(sim: ZohoSimulator, client_id: str, secret: str, code: str) -> requests.Response:
    return post_token(
        sim, grant_type="authorization_code", client_id=client_id, client_secret=secret, code=code
    )


def refresh(sim: ZohoSimulator, client_id: str, secret: str, refresh_token: str) -> requests.Response:
    return post_token(
        sim,
        grant_type="refresh_token",
        client_id=client_id,
        client_secret=secret,
        refresh_token=refresh_token,
    )


def bootstrap(sim: ZohoSimulator) -> tuple[str, str, dict[str, Any]]:
    client_id, secret = sim.register_client()
    body = exchange(sim, client_id, secret, sim.issue_grant_code(client_id)).json()
    assert "refresh_token" in body, body
    return client_id, secret, body


def api_get(sim: ZohoSimulator, token: str | None) -> requests.Response:
    headers = {} if token is None else {"Authorization": f"Zoho-oauthtoken {token}"}
    return requests.get(f"{sim.url}/crm/v8/users", headers=headers, timeout=TIMEOUT)


# -- exchange -------------------------------------------------------------------------------------------


def test_register_client_is_zoho_shaped(sim: ZohoSimulator) -> None:
    client_id, secret = sim.register_client()
    assert re.fullmatch(r"1000\.[A-Z0-9]{30}", client_id)
    assert re.fullmatch(r"[0-9a-f]{42}", secret)
    assert re.fullmatch(r"1000\.[0-9a-f]{32}\.[0-9a-f]{32}", sim.issue_grant_code(client_id))
    assert sim.url.startswith("http://127.0.0.1:")


def test_exchange_success_in_seconds(sim: ZohoSimulator) -> None:
    client_id, secret = sim.register_client()
    response = exchange(sim, client_id, secret, sim.issue_grant_code(client_id, scope="ZohoCRM.users.READ"))
    assert response.status_code == 200
    body = response.json()
    assert TOKEN_RE.match(body["access_token"])
    assert TOKEN_RE.match(body["refresh_token"])
    assert body["access_token"] != body["refresh_token"]
    assert body["expires_in"] == 3600
    assert "expires_in_sec" not in body
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "ZohoCRM.users.READ"
    # API calls must come back to the simulator unless the test chose otherwise.
    assert body["api_domain"] == sim.url
    assert sim.is_access_token_valid(body["access_token"])
    assert sim.is_refresh_token_valid(body["refresh_token"])
    assert sim.stats.mints == 1


def test_exchange_success_in_legacy_milliseconds(make_sim: Callable[..., ZohoSimulator]) -> None:
    sim = make_sim(legacy_expiry_format=True, api_domain="https://www.zohoapis.eu")
    _, _, body = bootstrap(sim)
    assert body["expires_in"] == 3_600_000
    assert body["expires_in_sec"] == 3600
    assert body["api_domain"] == "https://www.zohoapis.eu"


def test_grant_code_is_single_use(sim: ZohoSimulator) -> None:
    client_id, secret = sim.register_client()
    code = sim.issue_grant_code(client_id)
    assert "access_token" in exchange(sim, client_id, secret, code).json()
    assert exchange(sim, client_id, secret, code).json() == {"error": "invalid_code"}


def test_grant_code_expires_by_the_clock(sim: ZohoSimulator, clock: SimClock) -> None:
    client_id, secret = sim.register_client()
    fresh = sim.issue_grant_code(client_id)
    stale = sim.issue_grant_code(client_id)
    clock.advance(179)
    assert "access_token" in exchange(sim, client_id, secret, fresh).json()
    clock.advance(1)
    assert exchange(sim, client_id, secret, stale).json() == {"error": "invalid_code"}
    long_lived = sim.issue_grant_code(client_id, lifetime=600)
    clock.advance(599)
    assert "access_token" in exchange(sim, client_id, secret, long_lived).json()


def test_failed_exchange_burns_the_code(sim: ZohoSimulator) -> None:
    client_id, secret = sim.register_client()
    code = sim.issue_grant_code(client_id)
    assert exchange(sim, client_id, "0" * 42, code).json() == {"error": "invalid_client_secret"}
    # Zoho invalidates a code whose exchange failed, so a corrected retry still needs a new code.
    assert exchange(sim, client_id, secret, code).json() == {"error": "invalid_code"}


def test_online_code_gives_no_refresh_token(sim: ZohoSimulator) -> None:
    client_id, secret = sim.register_client()
    body = exchange(sim, client_id, secret, sim.issue_grant_code(client_id, offline=False)).json()
    assert "refresh_token" not in body
    assert sim.is_access_token_valid(body["access_token"])


def test_missing_parameters_and_wrong_method(sim: ZohoSimulator) -> None:
    client_id, _ = sim.register_client()
    assert post_token(sim, grant_type="authorization_code", client_id=client_id).json() == {
        "error": "invalid_request"
    }
    assert post_token(sim).json() == {"error": "invalid_request"}
    assert post_token(sim, grant_type="password").json() == {"error": "unsupported_grant_type"}
    response = requests.get(f"{sim.url}/oauth/v2/token", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"
    missing = requests.get(f"{sim.url}/nowhere", timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json()["code"] == "INVALID_URL_PATTERN"


# -- refresh --------------------------------------------------------------------------------------------


def test_refresh_success_keeps_refresh_token_and_old_access_token(sim: ZohoSimulator) -> None:
    client_id, secret, first = bootstrap(sim)
    response = refresh(sim, client_id, secret, first["refresh_token"])
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "scope", "api_domain", "token_type", "expires_in"}
    assert body["access_token"] != first["access_token"]
    # No rotation: concurrent refreshes must not invalidate each other's tokens.
    assert sim.is_access_token_valid(first["access_token"])
    assert sim.is_refresh_token_valid(first["refresh_token"])
    assert sim.stats.token_requests == {"authorization_code": 1, "refresh_token": 1}


def test_refresh_with_wrong_secret_or_unknown_client(sim: ZohoSimulator) -> None:
    client_id, _, body = bootstrap(sim)
    assert refresh(sim, client_id, "f" * 42, body["refresh_token"]).json() == {
        "error": "invalid_client_secret"
    }
    assert refresh(sim, "1000.NOSUCHCLIENT", "f" * 42, body["refresh_token"]).json() == {
        "error": "invalid_client"
    }
    assert sim.stats.errors_returned == {"invalid_client_secret": 1, "invalid_client": 1}


def test_client_of_another_data_center_is_invalid_client(
    make_sim: Callable[..., ZohoSimulator], sim: ZohoSimulator
) -> None:
    other = make_sim("us")
    client_id, secret, body = bootstrap(other)
    assert refresh(sim, client_id, secret, body["refresh_token"]).json() == {"error": "invalid_client"}
    assert api_get(sim, body["access_token"]).json()["code"] == "INVALID_TOKEN"
    assert refresh(other, client_id, secret, body["refresh_token"]).status_code == 200


def test_refresh_token_of_another_client_is_invalid_code(sim: ZohoSimulator) -> None:
    _, _, body = bootstrap(sim)
    other_id, other_secret = sim.register_client()
    assert refresh(sim, other_id, other_secret, body["refresh_token"]).json() == {"error": "invalid_code"}


# -- revocation -----------------------------------------------------------------------------------------


def test_revoke_endpoint_kills_refresh_and_access_tokens(sim: ZohoSimulator) -> None:
    client_id, secret, body = bootstrap(sim)
    assert api_get(sim, body["access_token"]).status_code == 200
    response = requests.post(
        f"{sim.url}/oauth/v2/token/revoke", data={"token": body["refresh_token"]}, timeout=TIMEOUT
    )
    assert (response.status_code, response.json()) == (200, {"status": "success"})
    assert refresh(sim, client_id, secret, body["refresh_token"]).json() == {"error": "invalid_code"}
    assert api_get(sim, body["access_token"]).status_code == 401
    again = requests.post(
        f"{sim.url}/oauth/v2/token/revoke", data={"token": body["refresh_token"]}, timeout=TIMEOUT
    )
    assert again.status_code == 400
    assert again.json() == {"status": "failure", "error": "invalid_token"}
    assert sim.stats.revokes == 1


def test_revoking_an_access_token_spares_its_refresh_token(sim: ZohoSimulator) -> None:
    client_id, secret, body = bootstrap(sim)
    response = requests.post(
        f"{sim.url}/oauth/v2/token/revoke", data={"token": body["access_token"]}, timeout=TIMEOUT
    )
    assert response.json() == {"status": "success"}
    assert not sim.is_access_token_valid(body["access_token"])
    assert refresh(sim, client_id, secret, body["refresh_token"]).status_code == 200


def test_admin_revoke_is_like_removing_the_app(sim: ZohoSimulator) -> None:
    client_id, secret, body = bootstrap(sim)
    sim.revoke(body["refresh_token"])
    assert not sim.is_refresh_token_valid(body["refresh_token"])
    assert refresh(sim, client_id, secret, body["refresh_token"]).json() == {"error": "invalid_code"}
    response = api_get(sim, body["access_token"])
    assert response.status_code == 401
    assert response.json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }
    with pytest.raises(KeyError):
        sim.revoke(body["refresh_token"])


# -- limits ---------------------------------------------------------------------------------------------


def test_mint_limit_deny_until_the_window_slides(sim: ZohoSimulator, clock: SimClock) -> None:
    client_id, secret, body = bootstrap(sim)  # the exchange is mint 1 of 10
    for _ in range(9):
        clock.advance(10)
        assert "access_token" in refresh(sim, client_id, secret, body["refresh_token"]).json()
    denied = refresh(sim, client_id, secret, body["refresh_token"])
    assert (denied.status_code, denied.json()) == (200, RATE_LIMIT_BODY)
    assert sim.stats.errors_returned == {"Access Denied": 1}
    # The exchange happened 90 s before the last refresh: it leaves the window 600 s after it was made.
    clock.advance(600 - 90 - 1)
    assert refresh(sim, client_id, secret, body["refresh_token"]).json() == RATE_LIMIT_BODY
    clock.advance(1)
    assert "access_token" in refresh(sim, client_id, secret, body["refresh_token"]).json()
    # "deny" refuses new tokens but leaves the ones already minted alone.
    assert sim.is_access_token_valid(body["access_token"])
    assert sim.stats.mints == 11


def test_mint_limit_retry_extends_block_when_modelled(
    make_sim: Callable[..., ZohoSimulator], clock: SimClock
) -> None:
    sim = make_sim(mint_limit=2, mint_retry_extends_block=True)
    client_id, secret, body = bootstrap(sim)
    assert "access_token" in refresh(sim, client_id, secret, body["refresh_token"]).json()
    clock.advance(300)
    assert refresh(sim, client_id, secret, body["refresh_token"]).json() == RATE_LIMIT_BODY
    # Without the retry the block would end at 600 s; the retry at 300 s pushed it to 900 s.
    clock.advance(301)
    assert refresh(sim, client_id, secret, body["refresh_token"]).json() == RATE_LIMIT_BODY
    clock.advance(600)
    assert "access_token" in refresh(sim, client_id, secret, body["refresh_token"]).json()


def test_mint_limit_evict_oldest(make_sim: Callable[..., ZohoSimulator]) -> None:
    sim = make_sim(mint_limit_mode="evict_oldest")
    client_id, secret, body = bootstrap(sim)
    tokens = [body["access_token"]]
    tokens += [
        refresh(sim, client_id, secret, body["refresh_token"]).json()["access_token"] for _ in range(9)
    ]
    assert all(sim.is_access_token_valid(t) for t in tokens)
    eleventh = refresh(sim, client_id, secret, body["refresh_token"]).json()
    assert sim.is_access_token_valid(eleventh["access_token"])
    assert not sim.is_access_token_valid(tokens[0])
    assert all(sim.is_access_token_valid(t) for t in tokens[1:])


def test_active_token_cap_silently_invalidates_the_oldest(make_sim: Callable[..., ZohoSimulator]) -> None:
    sim = make_sim(mint_limit=100, active_token_cap=3)
    client_id, secret, body = bootstrap(sim)
    second = refresh(sim, client_id, secret, body["refresh_token"]).json()["access_token"]
    refresh(sim, client_id, secret, body["refresh_token"])
    assert sim.is_access_token_valid(body["access_token"])
    refresh(sim, client_id, secret, body["refresh_token"])
    assert not sim.is_access_token_valid(body["access_token"])
    assert sim.is_access_token_valid(second)
    assert api_get(sim, body["access_token"]).json()["code"] == "INVALID_TOKEN"


def test_refresh_token_cap_deletes_oldest(make_sim: Callable[..., ZohoSimulator]) -> None:
    sim = make_sim(refresh_token_cap=2)
    client_id, secret = sim.register_client()
    bodies = [exchange(sim, client_id, secret, sim.issue_grant_code(client_id)).json() for _ in range(3)]
    assert [sim.is_refresh_token_valid(b["refresh_token"]) for b in bodies] == [False, True, True]
    assert not sim.is_access_token_valid(bodies[0]["access_token"])
    assert refresh(sim, client_id, secret, bodies[0]["refresh_token"]).json() == {"error": "invalid_code"}


def test_refresh_token_cap_deny(make_sim: Callable[..., ZohoSimulator]) -> None:
    sim = make_sim(refresh_token_cap=2, refresh_token_cap_mode="deny")
    client_id, secret = sim.register_client()
    bodies = [exchange(sim, client_id, secret, sim.issue_grant_code(client_id)).json() for _ in range(3)]
    assert bodies[2]["error"] == "Access Denied"
    assert "access_token" not in bodies[2]
    assert all(sim.is_refresh_token_valid(b["refresh_token"]) for b in bodies[:2])
    # Making room is the operator's way out: revoke one, and the next bootstrap succeeds.
    sim.revoke(bodies[0]["refresh_token"])
    assert "refresh_token" in exchange(sim, client_id, secret, sim.issue_grant_code(client_id)).json()


# -- faults ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "expected"),
    [
        (Fault.HTTP_500, 500, None),
        (Fault.HTML_503, 503, None),
        (Fault.MALFORMED_JSON, 200, None),
        (Fault.RATE_LIMIT, 200, RATE_LIMIT_BODY),
        (Fault.RATE_LIMIT_400, 400, RATE_LIMIT_BODY),
        (Fault.UNKNOWN_ERROR, 200, {"error": "something_new"}),
        (Fault.INVALID_CLIENT, 200, {"error": "invalid_client"}),
        (Fault.INVALID_CODE, 200, {"error": "invalid_code"}),
    ],
)
def test_fault_answers(
    sim: ZohoSimulator, fault: Fault, status: int, expected: dict[str, str] | None
) -> None:
    client_id, secret, body = bootstrap(sim)
    sim.inject(fault)
    response = refresh(sim, client_id, secret, body["refresh_token"])
    assert response.status_code == status
    if expected is None:
        with pytest.raises(requests.JSONDecodeError):
            response.json()
    else:
        assert response.json() == expected
    assert sim.stats.mints == 1  # a faulted request changes no state
    assert refresh(sim, client_id, secret, body["refresh_token"]).status_code == 200
    assert sim.stats.faults_served == 1
    assert sim.stats.faults_by_kind == {fault.value: 1}


def test_html_503_is_a_maintenance_page(sim: ZohoSimulator) -> None:
    sim.inject(Fault.HTML_503)
    response = post_token(sim, grant_type="refresh_token")
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text


def test_fault_missing_access_token(sim: ZohoSimulator) -> None:
    client_id, secret, body = bootstrap(sim)
    sim.inject(Fault.MISSING_ACCESS_TOKEN)
    answer = refresh(sim, client_id, secret, body["refresh_token"]).json()
    assert "access_token" not in answer
    assert "error" not in answer
    assert answer["api_domain"] == sim.url


def test_fault_absurd_expires_in_still_mints_a_real_token(sim: ZohoSimulator, clock: SimClock) -> None:
    client_id, secret, body = bootstrap(sim)
    sim.inject(Fault.ABSURD_EXPIRES_IN)
    answer = refresh(sim, client_id, secret, body["refresh_token"]).json()
    assert answer["expires_in"] == 10**12
    assert sim.is_access_token_valid(answer["access_token"])
    clock.advance(3600)  # the token really lives an hour, whatever the answer claimed
    assert not sim.is_access_token_valid(answer["access_token"])


def test_fault_timeout_holds_then_closes(sim: ZohoSimulator) -> None:
    client_id, secret, body = bootstrap(sim)
    sim.settings.hang_seconds = 0.4
    sim.inject(Fault.TIMEOUT, count=2)
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{sim.url}/oauth/v2/token",
            data={"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret},
            timeout=(TIMEOUT, 0.2),
        )
    # A patient client sees the connection closed unanswered once the hang ends.
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        refresh(sim, client_id, secret, body["refresh_token"])
    assert 0.3 < time.monotonic() - started < 2.0
    assert refresh(sim, client_id, secret, body["refresh_token"]).status_code == 200


def test_fault_connection_reset(sim: ZohoSimulator) -> None:
    client_id, secret, body = bootstrap(sim)
    sim.inject(Fault.CONNECTION_RESET)
    with requests.Session() as session, pytest.raises(requests.ConnectionError) as caught:
        session.post(
            f"{sim.url}/oauth/v2/token",
            data={"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret},
            timeout=TIMEOUT,
        )
    assert "reset" in str(caught.value).lower()
    assert refresh(sim, client_id, secret, body["refresh_token"]).status_code == 200


def test_fault_count_none_lasts_until_cleared(sim: ZohoSimulator) -> None:
    sim.inject(Fault.HTTP_500, count=None)
    assert [post_token(sim).status_code for _ in range(3)] == [500, 500, 500]
    sim.clear_faults()
    assert post_token(sim).json() == {"error": "invalid_request"}


def test_faults_queue_in_order(sim: ZohoSimulator) -> None:
    sim.inject(Fault.HTTP_500, count=2)
    sim.inject(Fault.HTML_503)
    assert [post_token(sim).status_code for _ in range(4)] == [500, 500, 503, 200]
    with pytest.raises(ValueError, match="count"):
        sim.inject(Fault.HTTP_500, count=0)


# -- API, clock, bookkeeping ----------------------------------------------------------------------------


def test_api_accepts_live_token_and_rejects_it_after_expiry(sim: ZohoSimulator, clock: SimClock) -> None:
    _, _, body = bootstrap(sim)
    live = api_get(sim, body["access_token"])
    assert (live.status_code, live.json()) == (200, {"users": [{"id": "1", "full_name": "Sim User"}]})
    clock.advance(3599)
    assert api_get(sim, body["access_token"]).status_code == 200
    clock.advance(1)
    dead = api_get(sim, body["access_token"])
    assert (dead.status_code, dead.json()["code"]) == (401, "INVALID_TOKEN")
    anonymous = api_get(sim, None)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "AUTHENTICATION_FAILURE")
    bearer = requests.get(
        f"{sim.url}/crm/v8/Leads",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        timeout=TIMEOUT,
    )
    assert bearer.json()["code"] == "AUTHENTICATION_FAILURE"
    stats = sim.stats
    assert (stats.api_calls, stats.api_rejections) == (5, 3)


def test_latency_delays_token_answers_only(sim: ZohoSimulator) -> None:
    client_id, secret, body = bootstrap(sim)
    sim.settings.latency_seconds = 0.15
    started = time.monotonic()
    assert refresh(sim, client_id, secret, body["refresh_token"]).status_code == 200
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    assert api_get(sim, body["access_token"]).status_code == 200
    assert time.monotonic() - started < 0.15


def test_credentials_in_query_are_counted_but_accepted(sim: ZohoSimulator) -> None:
    client_id, secret, body = bootstrap(sim)
    assert sim.stats.credentials_in_query == 0
    params = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": secret,
        "refresh_token": body["refresh_token"],
    }
    response = requests.post(f"{sim.url}/oauth/v2/token", params=params, timeout=TIMEOUT)
    assert "access_token" in response.json()
    requests.post(
        f"{sim.url}/oauth/v2/token/revoke", params={"token": body["refresh_token"]}, timeout=TIMEOUT
    )
    assert sim.stats.credentials_in_query == 2
    assert not sim.is_refresh_token_valid(body["refresh_token"])


def test_request_log_holds_no_secrets(sim: ZohoSimulator, clock: SimClock) -> None:
    client_id, secret, body = bootstrap(sim)
    refresh(sim, client_id, "0" * 42, body["refresh_token"])
    requests.post(f"{sim.url}/oauth/v2/token", params={"client_secret": secret}, timeout=TIMEOUT)
    log = sim.request_log
    assert [(e.path, e.grant_type, e.outcome) for e in log] == [
        ("/oauth/v2/token", "authorization_code", "issued"),
        ("/oauth/v2/token", "refresh_token", "error:invalid_client_secret"),
        ("/oauth/v2/token", None, "error:invalid_request"),
    ]
    assert log[0].time == clock()
    text = repr(log)
    for value in (secret, body["refresh_token"], body["access_token"], client_id):
        assert value not in text


def test_concurrent_refreshes_are_counted_exactly(make_sim: Callable[..., ZohoSimulator]) -> None:
    sim = make_sim(mint_limit=1000, active_token_cap=1000)
    client_id, secret, body = bootstrap(sim)
    results: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(10):
                answer = session.post(
                    f"{sim.url}/oauth/v2/token",
                    data={
                        "grant_type": "refresh_token",
                        "client_id": client_id,
                        "client_secret": secret,
                        "refresh_token": body["refresh_token"],
                    },
                    timeout=TIMEOUT,
                ).json()
                with lock:
                    results.append(answer["access_token"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 80
    assert sim.stats.mints == 81


def test_stop_is_quick_while_a_connection_hangs(make_sim: Callable[..., ZohoSimulator]) -> None:
    sim = make_sim(hang_seconds=30)
    sim.inject(Fault.TIMEOUT)
    errors: list[BaseException] = []

    def client() -> None:
        try:
            post_token(sim, grant_type="refresh_token")
        except requests.RequestException as err:
            errors.append(err)

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while sim.stats.faults_served == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 1.0
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], requests.ConnectionError)
    with pytest.raises(requests.ConnectionError):
        post_token(sim, grant_type="refresh_token")
    sim.stop()  # idempotent
    with pytest.raises(RuntimeError):
        sim.start()


def test_sim_clock() -> None:
    clock = SimClock(start=100.0)
    clock.advance(2.5)
    assert clock() == 102.5
    clock.set(50)
    assert clock() == 50.0
    assert abs(SimClock()() - time.time()) < 5


def test_settings_reject_unknown_modes() -> None:
    with pytest.raises(ValueError, match="mint_limit_mode"):
        SimulatorSettings(mint_limit_mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refresh_token_cap_mode"):
        SimulatorSettings(refresh_token_cap_mode="maybe")  # type: ignore[arg-type]
