"""What work that makes no call pays: a lazy context is looked up only when a
call is captured, once, and a Hello's announced layout is found once per
worker information, not at every Hello."""

from __future__ import annotations

import requests

from egress_hook.interceptor import _core, _layout


def _describe_counting(seen):
    def describe(subject):
        seen.append(subject)
        return ("db_lazy", subject, 42)

    return describe


def test_a_lazy_context_is_read_only_by_a_captured_call(interceptor, receiver, http_srv):
    assert interceptor.install(receiver.path, "default_db", transport="python")
    receiver.messages()
    seen = []
    token = interceptor.set_lazy_context("http", _describe_counting(seen), "/route")
    try:
        assert interceptor.current_trigger_kind() == "http"
        assert seen == []  # no call yet: nothing looked up
        url = f"http://127.0.0.1:{http_srv.port}/lazy"
        requests.get(url)
        requests.get(url)
        assert tuple(interceptor.current_context()) == ("db_lazy", "http", "/route", 42)
    finally:
        interceptor.reset_context(token)
    assert seen == ["/route"]  # once for the work, whatever its calls
    calls = [c for c in receiver.calls() if c["path"] == "/lazy"]
    assert len(calls) == 2
    for call in calls:
        assert call["database"] == "db_lazy"
        assert call["trigger"] == ("http", "/route", 42)
    assert interceptor.current_context() == interceptor.Context()


def test_a_failing_description_keeps_the_call_and_its_trigger_kind(interceptor, receiver,
                                                                  http_srv):
    assert interceptor.install(receiver.path, "default_db", transport="python")
    errors = interceptor.stats()["interceptor_errors"]

    def broken(subject):
        raise RuntimeError("no such record")

    token = interceptor.set_lazy_context("cron", broken, None)
    try:
        requests.get(f"http://127.0.0.1:{http_srv.port}/broken")
    finally:
        interceptor.reset_context(token)
    calls = [c for c in receiver.calls() if c["path"] == "/broken"]
    assert len(calls) == 1
    assert calls[0]["database"] == "default_db"
    assert calls[0]["trigger"] == ("cron", "", None)
    assert interceptor.stats()["interceptor_errors"] == errors + 1


def test_the_hello_layout_is_found_once_per_worker_information(interceptor, receiver,
                                                              monkeypatch, http_srv):
    found = []
    announced = _layout.announced

    def counting(paths=()):
        found.append(list(paths))
        return announced(paths)

    monkeypatch.setattr(_layout, "announced", counting)
    monkeypatch.setattr(_core.state, "worker_info", _core.state.worker_info)
    assert interceptor.install(receiver.path, "db", transport="python")
    interceptor.set_worker_info(odoo_version="18.0", addons_paths=["/srv/a"])
    # The minute is over: the next call says Hello again, as found before.
    _core.state.hello_at -= 61 * 1_000_000_000
    requests.get(f"http://127.0.0.1:{http_srv.port}/hello")
    interceptor.set_worker_info(addons_paths=["/srv/b"])
    hellos = [m for kind, m in receiver.messages() if kind == "hello"]
    assert [h["addons_paths"][0] for h in hellos[-3:]] == ["/srv/a", "/srv/a", "/srv/b"]
    assert found[-2:] == [["/srv/a"], ["/srv/b"]]
    assert found.count(["/srv/a"]) == 1
