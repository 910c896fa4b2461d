"""The model explorer in a real browser: Debian's headless chromium driven through its
chromedriver by Selenium, against `probelog serve --embedded --web-port` on the mini world
(tests/support/mini.py) with API keys, and `probelog serve web` as its own role."""

from __future__ import annotations

import asyncio
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from probelog.client import ProbeLogClient
from tests.support import mini, procs

READ_KEY, WRITE_KEY = "web-read-key-0123456789", "web-write-key-0123456789"
#: What the explorer is asked for in the tests: a concept the matcher model recognises.
CONCEPT = "pizza"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def explorer(mini_world, tmp_path_factory):
    """An embedded server with API keys and the web page on a second port; the mini world's
    models indexed, the matcher with its labels. Yields (page URL, gRPC service)."""
    work = tmp_path_factory.mktemp("web")
    flags = mini.service_flags(mini_world)
    web_port = free_port()
    env = procs.test_env(PROBELOG_API_KEYS=f"read:{READ_KEY},write:{WRITE_KEY}")
    service = procs.start("embedded-web", [
        "--embedded", "--store-url", f"file://{work / 'store'}", "--runner-url", f"onnx://{mini_world.hub}",
        *flags["clip"], *flags["orchestrator"], "--web-port", str(web_port),
    ], work, env=env)

    async def index() -> None:
        async with ProbeLogClient(service.address, token=WRITE_KEY) as client:
            for name in mini.MiniWorld.GOOD_MODELS:
                labels = mini.CONCEPTS if name == "matcher" else ()
                await client.index(name, labels=labels)

    asyncio.run(index())
    # The ready file is written once the page serves too.
    yield f"http://127.0.0.1:{web_port}", service
    assert service.stop() == 0, service.output()


@pytest.fixture(scope="module")
def browser():
    """Headless chromium through Debian's chromedriver: Selenium finds both on PATH and
    downloads nothing."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium and chromium-driver are installed by scripts/setup.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1000"):
        options.add_argument(arg)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser
        session = webdriver.Chrome(options=options, service=DriverService(executable_path=driver))
    session.set_page_load_timeout(120)
    yield session
    session.quit()


@pytest.fixture(scope="module")
def signed_in(explorer, browser):
    """The browser with the read key entered once on the key page."""
    url, _ = explorer
    browser.get(url + "/key")
    browser.find_element(By.ID, "key").send_keys(READ_KEY)
    browser.find_element(By.CSS_SELECTOR, "form[action='/key'] button").click()
    WebDriverWait(browser, 60).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".saved")))
    return browser


def images_loaded(browser, container) -> list[int]:
    """naturalWidth of each image in ``container`` once all have finished loading."""
    images = container.find_elements(By.TAG_NAME, "img")
    WebDriverWait(browser, 60).until(lambda _: all(browser.execute_script("return arguments[0].complete", i) for i in images))
    return [int(browser.execute_script("return arguments[0].naturalWidth", i)) for i in images]


def test_without_a_key_the_page_asks_for_one(explorer, browser):
    url, _ = explorer
    browser.delete_all_cookies()
    browser.get(url + "/?q=" + urllib.parse.quote(CONCEPT))
    assert browser.find_element(By.CSS_SELECTOR, ".error .code").text == "UNAUTHENTICATED"
    assert browser.find_element(By.LINK_TEXT, "Enter an API key").get_attribute("href") == url + "/key"


def test_search_by_text_shows_cards_with_evidence_images(signed_in):
    browser = signed_in
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/']").click()
    box = browser.find_element(By.ID, "q")
    box.send_keys(CONCEPT)
    box.submit()
    cards = WebDriverWait(browser, 60).until(
        expected_conditions.presence_of_all_elements_located((By.CSS_SELECTOR, "li.hit"))
    )
    assert len(cards) == len(mini.MiniWorld.GOOD_MODELS)  # one hit per model
    first = cards[0]
    assert first.find_element(By.CSS_SELECTOR, ".rank").text == "#1"
    assert first.find_element(By.CSS_SELECTOR, "a.model").text in {"matcher", "shuffled"}
    matcher = next(c for c in cards if c.find_element(By.CSS_SELECTOR, "a.model").text == "matcher")
    assert matcher.find_element(By.CSS_SELECTOR, ".label").text == CONCEPT
    assert "score" in matcher.find_element(By.CSS_SELECTOR, ".score").text
    widths = images_loaded(browser, matcher)
    assert len(widths) == 8 and all(w == 64 for w in widths)
    assert len(matcher.find_elements(By.CSS_SELECTOR, "meter.query")) == 8


def test_model_page_lists_logits_with_their_top_probes(explorer, signed_in):
    url, _ = explorer
    browser = signed_in
    browser.get(url + "/?q=" + urllib.parse.quote(CONCEPT))
    browser.find_element(By.LINK_TEXT, "matcher").click()
    WebDriverWait(browser, 60).until(expected_conditions.title_contains("matcher"))
    assert browser.find_element(By.CSS_SELECTOR, "h1.model-id").text == "matcher"
    logits = browser.find_elements(By.CSS_SELECTOR, "li.logit")
    assert [lg.find_element(By.CSS_SELECTOR, ".label").text for lg in logits] == mini.CONCEPTS
    for logit in logits:
        assert all(w == 64 for w in images_loaded(browser, logit))
        assert not logit.find_elements(By.CSS_SELECTOR, "meter.query")  # no query on a model page


def test_models_page_shows_the_index_status(explorer, signed_in):
    url, _ = explorer
    browser = signed_in
    browser.get(url + "/models")
    assert browser.find_element(By.CSS_SELECTOR, ".n-models").text == str(len(mini.MiniWorld.GOOD_MODELS))
    links = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.models a")]
    assert sorted(links) == sorted(mini.MiniWorld.GOOD_MODELS)
    assert f"{mini.N_PROBES} probes (default)" in browser.find_element(By.CSS_SELECTOR, ".status").text


def test_upload_of_an_example_image_shows_results(explorer, signed_in, mini_world, tmp_path):
    url, _ = explorer
    browser = signed_in
    example = tmp_path / "example.png"
    example.write_bytes(mini_world.query_image)
    browser.get(url + "/")
    browser.find_element(By.ID, "images").send_keys(str(example))
    browser.find_element(By.CSS_SELECTOR, "form.images button").click()
    cards = WebDriverWait(browser, 60).until(
        expected_conditions.presence_of_all_elements_located((By.CSS_SELECTOR, "li.hit"))
    )
    assert "example.png" in browser.find_element(By.CSS_SELECTOR, ".summary").text
    models = [c.find_element(By.CSS_SELECTOR, "a.model").text for c in cards]
    assert "imagematch" in models
    assert all(w == 64 for w in images_loaded(browser, cards[0]))


def test_a_query_with_html_and_script_is_shown_as_text(explorer, signed_in):
    url, _ = explorer
    browser = signed_in
    query = '<script>window.injected = 1</script><b id="bold">pizza</b> & "quotes"'
    browser.get(url + "/?q=" + urllib.parse.quote(query))
    shown = WebDriverWait(browser, 60).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".query-text"))
    )
    assert shown.text == query
    assert browser.find_element(By.ID, "q").get_attribute("value") == query
    assert not browser.find_elements(By.ID, "bold")
    assert browser.execute_script("return typeof window.injected") == "undefined"
    assert query in browser.title


def test_headers_and_errors_over_plain_http(explorer):
    url, _ = explorer
    with urllib.request.urlopen(url + "/") as response:
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    cookie = {"Cookie": f"probelog_key={READ_KEY}"}
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url + "/models/no-such-model", headers=cookie))
    assert err.value.code == 404 and "no-such-model" in err.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url + "/probes/ps-0000000000000000/0.png", headers=cookie))
    assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(url + "/search", data=b"", method="POST", headers=cookie))
    assert err.value.code == 400


def test_serve_web_is_its_own_role(explorer, tmp_path):
    _, grpc_service = explorer
    web = procs.start("web", ["web", "--search-address", grpc_service.address], tmp_path)
    try:
        request = urllib.request.Request(
            f"http://{web.address}/?q={CONCEPT}", headers={"Cookie": f"probelog_key={READ_KEY}"}
        )
        with urllib.request.urlopen(request) as response:
            page = response.read().decode()
        assert page.count('class="hit card"') == len(mini.MiniWorld.GOOD_MODELS)
        assert "/probes/ps-" in page
    finally:
        assert web.stop() == 0, web.output()


def test_the_page_says_when_search_service_is_unreachable(tmp_path):
    web = procs.start("web-alone", ["web", "--search-address", f"127.0.0.1:{free_port()}", "--web-timeout-s", "5"], tmp_path)
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://{web.address}/?q={CONCEPT}")
        page = err.value.read().decode()
        assert err.value.code == 503 and "UNAVAILABLE" in page and "Traceback" not in page
        with urllib.request.urlopen(f"http://{web.address}/healthz") as response:
            assert response.read() == b"ok"
    finally:
        assert web.stop() == 0, web.output()
