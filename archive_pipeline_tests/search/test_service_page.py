"""The search page (search/static/index.html) in a real browser: Debian's chromium, headless,
through Selenium, against the service over the small archive of test_search_service.py, at a
phone's width (375 px) and a desktop's (1280 px)."""

import pytest

from archive_pipeline_tests.helpers import served_over_http
from archive_pipeline_tests.search.test_search_service import build_archive


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The service over `build_archive`, on a real HTTP server (127.0.0.1, a free port)."""
    archive = build_archive(tmp_path_factory.mktemp("page"))
    with served_over_http(archive["client"].app) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def browser():
    from archive_pipeline_tests.helpers import chromium_browser

    driver = chromium_browser()
    yield driver
    driver.quit()


def no_sideways_scroll(browser) -> bool:
    return browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )


def search(browser, wait, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = browser.find_element(By.ID, "q")
    field.clear()
    field.send_keys(text)
    browser.find_element(By.ID, "go").click()
    wait.until(lambda b: "Searching" not in b.find_element(By.ID, "summary").text)


@pytest.mark.parametrize("width", [375, 1280])
def test_the_page_at_phone_and_desktop_width(site, browser, width):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(width, 900)
    wait = WebDriverWait(browser, 30)
    browser.get(f"{site}/?mode=text")
    assert browser.execute_script("return window.innerWidth") <= width
    # a hit plays from its time
    search(browser, wait, "remember walked")
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "li.group"))
    assert no_sideways_scroll(browser)
    groups = browser.find_elements(By.CSS_SELECTOR, "li.group")
    assert [g.get_attribute("data-media-id") for g in groups] == ["harbour"]
    hits = groups[0].find_elements(By.CSS_SELECTOR, "li.hit")
    walked = next(h for h in hits if "walked" in h.text)
    assert [m.text for m in walked.find_elements(By.TAG_NAME, "mark")] == ["remember", "walked"]
    hit_time = float(walked.get_attribute("data-time"))
    walked.click()
    player = wait.until(lambda b: b.find_element(By.ID, "player-media"))
    assert player.tag_name == "audio"
    seeked = wait.until(lambda b: player.get_attribute("data-seeked-at"))
    assert abs(float(seeked) - hit_time) < 0.1
    assert no_sideways_scroll(browser)
    # a new search stops the player
    browser.execute_script("window.previous = document.getElementById('player-media')")
    search(browser, wait, "tram")
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.group")) == 2)
    assert browser.execute_script(
        "return window.previous.paused && !window.previous.getAttribute('src')"
    )
    assert not browser.find_elements(By.ID, "player-media")
    # a facet narrows the results, its chip takes the filter away again
    decades = browser.find_element(By.CSS_SELECTOR, "[data-facet=decade]")
    eighties = next(
        b for b in decades.find_elements(By.TAG_NAME, "button") if b.text == "1980s (1)"
    )
    eighties.click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.group")) == 1)
    group = browser.find_element(By.CSS_SELECTOR, "li.group")
    assert group.get_attribute("data-media-id") == "harbour"
    assert "decade=1980s" in browser.current_url
    chip = browser.find_element(By.CSS_SELECTOR, "#chips .chip button")
    chip.click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.group")) == 2)
    # "more results" pages
    browser.get(f"{site}/?q=tram&mode=text&limit=1")
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.group")) == 1)
    more = browser.find_element(By.ID, "more")
    assert more.is_displayed() and "2 item(s)" in browser.find_element(By.ID, "summary").text
    more.click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "li.group")) == 2)
    assert not browser.find_element(By.ID, "more").is_displayed()
    # a scan: its page with the passage, "page 1" (not a time)
    search(browser, wait, "Fähre Kladow")
    hit = wait.until(
        lambda b: b.find_element(By.CSS_SELECTOR, "li.group[data-media-id=scan] li.hit")
    )
    assert "page 1" in hit.text and "0:00.0" not in hit.text
    page = hit.find_element(By.CSS_SELECTOR, ".thumb-box.page img")
    wait.until(lambda b: b.execute_script("return arguments[0].naturalWidth", page) > 0)
    hit.click()
    shown = wait.until(lambda b: b.find_element(By.ID, "player-media"))
    assert shown.tag_name == "img" and shown.get_attribute("src").endswith("/pages/scan/1")
    wait.until(lambda b: b.execute_script("return arguments[0].naturalWidth", shown) > 0)
    box = browser.find_element(By.ID, "passage-box")
    assert box.size["width"] > 0 and box.size["height"] > 0
    assert no_sideways_scroll(browser)
    # nothing found: a hint, no error
    search(browser, wait, "zeppelin")
    assert "Nothing found" in browser.find_element(By.ID, "results").text
    assert no_sideways_scroll(browser)
